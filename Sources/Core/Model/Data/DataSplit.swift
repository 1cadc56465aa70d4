// DataSplit: the seeded train/validation split of the training file, as the seed makes it.
//
// The seed shuffles the 60 000 training images and keeps the first round((1 − ratio) · m) for
// training (48 000) and the rest for validation (12 000); the t10k file is the test set. The
// shuffle here is CounterRandom's, so every rank computes the same split without communicating.
import Kernels

/// Training and validation parts of a training file.
public struct DataSplit: Sendable {
    public var train: LabeledImages
    public var validation: LabeledImages

    /// Shuffles `all` with `seed` and holds out `valFraction` of it for validation.
    ///
    /// Takes ownership of `all` and reorders its rows in place, so the split costs no second copy
    /// of the images (peak memory is the file plus the validation part, not twice the file).
    public init(_ all: consuming LabeledImages, valFraction: Double, seed: UInt64) {
        let order = permutation(all.count, key: RandomKey(seed: seed, .split))
        let cut = Int((Double(all.count) * (1 - valFraction)).rounded(.toNearestOrEven))
        let (width, rows, cols, classes) = (all.width, all.rows, all.cols, all.classCount)
        var pixels = all.pixels
        var labels = all.labels
        all = LabeledImages(pixels: [], labels: [], rows: rows, cols: cols, classCount: classes)  // drop the last reference
        applyPermutation(order, rowsOf: &pixels, width: width)
        applyPermutation(order, rowsOf: &labels, width: 1)
        validation = LabeledImages(pixels: Array(pixels[(cut * width)...]), labels: Array(labels[cut...]), rows: rows, cols: cols, classCount: classes)
        pixels.removeSubrange((cut * width)...)
        labels.removeSubrange(cut...)
        train = LabeledImages(pixels: pixels, labels: labels, rows: rows, cols: cols, classCount: classes)
    }
}

/// Reorders the rows of a row-major [order.count × width] array in place so that new row i is old
/// row order[i], following each cycle of the permutation with one row of scratch space.
func applyPermutation(_ order: [Int], rowsOf values: inout [UInt8], width: Int) {
    var done = [Bool](repeating: false, count: order.count)
    var saved = [UInt8](repeating: 0, count: width)
    values.withUnsafeMutableBufferPointer { v in
        let base = v.baseAddress!
        for start in 0..<order.count where !done[start] {
            saved.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: base + start * width, count: width) }
            var i = start
            while true {
                done[i] = true
                let next = order[i]
                if next == start {
                    saved.withUnsafeBufferPointer { (base + i * width).update(from: $0.baseAddress!, count: width) }
                    break
                }
                (base + i * width).update(from: base + next * width, count: width)
                i = next
            }
        }
    }
}
