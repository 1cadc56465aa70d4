// DataParallelOptimizer: what the training loop asks of the optimizer step of a data-parallel job —
// reduce the ranks' gradients and leave the same updated parameters on every rank — so the loop is
// written once for the sharded step (ShardedAdam) and the compressed one (ReplicatedAdam).
import Collectives
import Model

/// The optimizer step of a data-parallel job: reduces the weight gradients and updates the
/// parameters identically on every rank. A step is `reduce` then `update`; gradient accumulation
/// reduces every minibatch and updates once.
public protocol DataParallelOptimizer: AnyObject {
    var adam: AdamState { get }
    /// The parameters this rank updates (all of them for a replicated step).
    var updatedRange: Range<Int> { get }
    /// Reduces the network's local gradients: afterwards `gradients[updatedRange]` holds the global
    /// gradient of those parameters, weights and per-feature ones alike (collective).
    func reduce(_ network: Network, collective: Collective) throws
    /// Adam with learning rate `lr` (and AdamW's `weightDecay` of the Dense weights) on
    /// `updatedRange` from `gradients`; afterwards every rank holds every parameter (collective).
    func update(_ network: Network, collective: Collective, lr: Float, weightDecay: Float) throws
    /// Makes Adam's moments current on every rank, for checkpoints (collective).
    func gatherMoments(collective: Collective) throws
}

extension DataParallelOptimizer {
    /// One step from the network's local gradients: `reduce`, then `update`.
    public func step(_ network: Network, collective: Collective, lr: Float, weightDecay: Float = 0) throws {
        try reduce(network, collective: collective)
        try update(network, collective: collective, lr: lr, weightDecay: weightDecay)
    }
}
