// RunningStatsLayout: where BatchNorm's running means and variances sit in their flat buffer.
//
// They are not trained (no gradient, no Adam moments), so they live apart from the parameters:
// in checkpoints, in the cross-rank merge of `local` BatchNorm mode and in inference.

/// Where BatchNorm running statistics live: for each block its mean [width] then variance [width].
public struct RunningStatsLayout: Equatable, Sendable {
    public let mean: [Int]
    public let variance: [Int]
    public let count: Int

    public init(_ arch: Architecture) {
        var offset = 0
        var mean: [Int] = []
        var variance: [Int] = []
        for w in arch.hidden {
            mean.append(offset)
            variance.append(offset + w)
            offset += 2 * w
        }
        self.mean = mean
        self.variance = variance
        count = offset
    }
}
