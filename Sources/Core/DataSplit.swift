// DataSplit: the seeded train/validation split of the training file, as the seed makes it.
//
// The seed shuffles the 60 000 training images and keeps the first round((1 − ratio) · m) for
// training (48 000) and the rest for validation (12 000); the t10k file is the test set. The
// shuffle here is CounterRandom's, so every rank computes the same split without communicating.

/// Training and validation parts of a training file.
public struct DataSplit: Sendable {
    public var train: LabeledImages
    public var validation: LabeledImages

    /// Shuffles `all` with `seed` and holds out `valFraction` of it for validation.
    public init(_ all: LabeledImages, valFraction: Double, seed: UInt64) {
        let order = permutation(all.count, key: RandomKey(seed: seed, .split))
        let cut = Int((Double(all.count) * (1 - valFraction)).rounded(.toNearestOrEven))
        train = all.subset(order[..<cut])
        validation = all.subset(order[cut...])
    }
}
