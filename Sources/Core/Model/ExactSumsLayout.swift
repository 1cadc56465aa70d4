// ExactSumsLayout: where each value sits in a Network's Double reduction buffer (`exactSums`).
//
// The per-feature gradients, loss sums and local-mode BatchNorm sums are reduced in Double (see
// Network for why); they travel together in one allreduce per step. A caller may append slots of
// its own ("riders") that ride in the same reduction at no extra cost; the network never reads them.

/// Where each value sits in `Network.exactSums`: for every dense layer (hidden blocks, then the head)
/// its bias gradient; for every BatchNorm its scale and shift gradients; the loss sum and correct
/// count; then (BatchNorm mode `local`) each block's Σa and Σa² in RunningStatsLayout order; then
/// the caller's riders.
public struct ExactSumsLayout: Equatable, Sendable {
    /// Offset of dense layer `l`'s bias gradient (`l == blockCount` is the head).
    public let bias: [Int]
    public let scale: [Int]
    public let shift: [Int]
    /// Offset of the loss sum; the correct count follows it.
    public let loss: Int
    /// Offset of the local-mode BatchNorm sums.
    public let statistics: Int
    /// Slots owned by whoever drives the step (the Trainer's stop vote, say): summed across ranks
    /// with everything else, never read or written by the Network.
    public let riders: Range<Int>
    public let count: Int

    public init(_ layout: ParameterLayout, _ stats: RunningStatsLayout, riders riderCount: Int = 0) {
        var offset = 0
        func take(_ n: Int) -> Int { defer { offset += n }; return offset }
        bias = layout.allDense.map { take($0.fanOut) }
        scale = layout.norm.map { take($0.width) }
        shift = layout.norm.map { take($0.width) }
        loss = take(2)
        statistics = take(stats.count)
        riders = take(riderCount)..<offset
        count = offset
    }
}
