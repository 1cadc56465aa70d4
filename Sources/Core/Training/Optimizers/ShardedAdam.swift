// ShardedAdam: the data-parallel optimizer step with Adam's work split across ranks (ZeRO stage 1),
// the default (exact float32 gradients); with gradient compression the step is ReplicatedAdam's.
//
// Communication and the order of the step only: Adam's arithmetic is AdamState.update (Adam.swift)
// and the split of the flat buffer into per-rank parts is Partition (Collectives).
import Collectives
import Model

/// The data-parallel optimizer step with the work split across ranks (ZeRO stage 1): the weight
/// gradients are reduce-scattered, so each rank receives the global sum of its part only; it adds
/// the exactly reduced per-feature gradients, applies Adam to its part of the parameters, and the
/// parts are allgathered. The communication volume equals one allreduce (which is a reduce-scatter
/// followed by an allgather), but each rank does 1/N of Adam's work, which is memory-bound and
/// otherwise repeated identically on every rank. Moments stay full-size on every rank (only this
/// rank's part is current) and are gathered before a checkpoint.
public final class ShardedAdam: DataParallelOptimizer {
    public let adam: AdamState
    public let partition: Partition
    public let rank: Int

    public init(adam: AdamState, collective: Collective) {
        self.adam = adam
        rank = collective.rank
        partition = ShardedAdam.partition(count: adam.m.count, collective: collective)
    }

    /// How `count` parameters are split among the ranks of `collective`.
    public static func partition(count: Int, collective: Collective) -> Partition { Partition(count: count, parts: collective.size) }

    public var updatedRange: Range<Int> { partition.range(rank) }

    /// The reduce-scatter of the weight gradients (in place), and this rank's part of the exactly
    /// reduced per-feature gradients. Where the ranks of a node share the products' operands
    /// (`Network.weightGradientsPending`), this rank's part of the weight gradients is computed
    /// from every rank's rows instead, and nothing is reduced: the same values.
    public func reduce(_ network: Network, collective: Collective) throws {
        let range = updatedRange
        if network.weightGradientsPending {
            precondition(network.sharedOperands?.partition == partition, "the shared operands are laid out for another partition")
            try network.computeSharedWeightGradients(collective: collective)
        } else {
            try collective.reduceScatterSum(network.gradients.all, partition: partition)
        }
        network.writeExactGradients(into: network.gradients.pointer + range.lowerBound, range: range)
    }

    /// Adam on this rank's part (in bf16 precision writing its part of the weights' bf16 copy as
    /// it goes), then the allgather of the parameters. The other parts of a bf16 copy of its own a
    /// rank converts afterwards; a copy the node's ranks share has all its parts written by then.
    public func update(_ network: Network, collective: Collective, lr: Float, weightDecay: Float = 0) throws {
        let range = updatedRange
        adam.update(params: network.parameters.pointer, grads: network.gradients.pointer + range.lowerBound, range: range, lr: lr,
                    weightDecay: weightDecay, decayed: network.layout.denseWeights, bf16Copy: network.weightCopy)
        try collective.allgather(network.parameters.all, partition: partition)
        if network.weightCopyShared { network.weightCopyWritten() } else { network.refreshWeightCopy(except: range) }
    }

    /// Makes the moments current on every rank (each rank's own part to all), for checkpoints.
    public func gatherMoments(collective: Collective) throws {
        try collective.allgather(adam.m.all, partition: partition)
        try collective.allgather(adam.v.all, partition: partition)
    }
}
