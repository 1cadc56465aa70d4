// Evaluate: a model's loss, accuracy, macro-F1 and confusion matrix on a data split, in
// inference mode (running statistics, no dropout; the seed evaluated in training mode, a bug we
// do not copy).
//
// The split is divided among the ranks in contiguous parts; each rank runs its part in chunks of
// the network's capacity and the per-rank loss sums (exact: on a grid set by the largest row loss)
// and confusion counts are summed, so the result is the same bits for any number of ranks and every
// rank receives it.
import Collectives
import Kernels
import Model

/// Evaluates `net` on all of `images`. Collective: every rank must call it. If `logits` is given
/// ([images.count × classes], zeroed by the caller) each rank writes the logits of its part there;
/// summing the buffers over ranks then gives every sample's logits.
public func evaluate(_ net: Network, on images: LabeledData, collective: Collective,
                     logits: UnsafeMutablePointer<Float>? = nil) throws -> Evaluation {
    let classes = net.architecture.classCount
    let part = shardRange(batch: images.count, rank: collective.rank, size: collective.size)
    // [loss sum, confusion counts row-major]; Doubles count exactly up to 2^53.
    let totals = Buffer<Double>(count: 1 + classes * classes)
    let predictions = Buffer<Int32>(count: net.capacity)
    let rowLosses = Buffer<Double>(count: part.count)
    var indices = [Int](repeating: 0, count: net.capacity)
    var start = part.lowerBound
    while start < part.upperBound {
        let n = min(net.capacity, part.upperBound - start)
        for i in 0..<n { indices[i] = start + i }
        indices.withUnsafeBufferPointer { net.gather(images, indices: UnsafeBufferPointer(rebasing: $0[0..<n])) }
        net.forwardInference(rows: n)
        let tally = softmaxCrossEntropy(
            logits: net.logits.pointer, labels: net.labels.pointer, rows: n, classes: classes,
            gradScale: 0, dLogits: nil, predictions: predictions.pointer, rowLosses: rowLosses.pointer + (start - part.lowerBound))
        _ = tally
        logits?.advanced(by: start * classes).update(from: net.logits.pointer, count: n * classes)
        for i in 0..<n {
            totals.pointer[1 + Int(net.labels.pointer[i]) * classes + Int(predictions.pointer[i])] += 1
        }
        start += n
    }
    // The loss sum exact, so the same for any split (ExactSum.swift): the largest row loss of the
    // split first, then the sum on the grid it sets, reduced with the confusion counts.
    let largest = Buffer<Double>(count: 1)
    for i in 0..<part.count { largest.pointer[0] = rowLosses.pointer[i].isFinite ? max(largest.pointer[0], rowLosses.pointer[i]) : .infinity }
    try collective.allreduceSumAndMax(sums: UnsafeMutableBufferPointer(start: nil, count: 0), maxima: largest.all)
    let grid = sumGrid(bound: largest.pointer[0], rows: max(images.count, 1))
    for i in 0..<part.count { totals.pointer[0] += gridSteps(rowLosses.pointer[i], grid.scale) }
    try collective.allreduceSum(totals.all)
    totals.pointer[0] /= grid.scale
    var confusion = ConfusionMatrix(classes: classes)
    for t in 0..<classes {
        for p in 0..<classes { confusion.counts[t][p] = Int(totals.pointer[1 + t * classes + p]) }
    }
    return Evaluation(loss: images.count == 0 ? 0 : totals.pointer[0] / Double(images.count), confusion: confusion)
}
