// DataSplit: the seeded train/validation split of the training file, as the seed makes it.
//
// The seed shuffles the 60 000 training images and keeps the first round((1 − ratio) · m) for
// training (48 000) and the rest for validation (12 000); the t10k file is the test set. The
// shuffle here is CounterRandom's, so every rank computes the same split without communicating.
import Kernels

/// Training and validation parts of a training file.
public struct DataSplit: Sendable {
    public var train: LabeledData
    public var validation: LabeledData

    /// Shuffles `all` with `seed` and holds out `valFraction` of it for validation.
    ///
    /// Takes ownership of `all` and reorders its rows in place, so the split costs no second copy
    /// of the images (peak memory is the file plus the validation part, not twice the file).
    public init(_ all: consuming LabeledData, valFraction: Double, seed: UInt64) {
        let order = permutation(all.count, key: RandomKey(seed: seed, .split))
        let cut = Int((Double(all.count) * (1 - valFraction)).rounded(.toNearestOrEven))
        var data = all
        all = data.emptied()  // drop the caller's reference: the rows are reordered in place
        let (width, count) = (data.width, data.count)
        switch data.encoding {
        case .bytes: applyPermutation(order, rowsOf: &data.pixels, width: width)
        case .floats: applyPermutation(order, rowsOf: &data.features, width: width)
        }
        applyPermutation(order, rowsOf: &data.labels, width: 1)
        validation = data.slice(cut..<count)
        data.labels.removeSubrange(cut...)
        switch data.encoding {
        case .bytes: data.pixels.removeSubrange((cut * width)...)
        case .floats: data.features.removeSubrange((cut * width)...)
        }
        train = data
    }

    /// A split given as two data sets (a separate validation file).
    public init(train: LabeledData, validation: LabeledData) {
        self.train = train
        self.validation = validation
    }
}

/// Reorders the rows of a row-major [order.count × width] array in place so that new row i is old
/// row order[i], following each cycle of the permutation with one row of scratch space.
func applyPermutation<T: BitwiseCopyable>(_ order: [Int], rowsOf values: inout [T], width: Int) {
    var done = [Bool](repeating: false, count: order.count)
    guard let first = values.first else { return }
    var saved = [T](repeating: first, count: width)
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
