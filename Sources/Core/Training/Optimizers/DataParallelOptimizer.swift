// DataParallelOptimizer: what the training loop asks of the optimizer step of a data-parallel job —
// reduce the ranks' gradients and leave the same updated parameters on every rank — so the loop is
// written once for the sharded step (ShardedAdam) and the compressed one (ReplicatedAdam).
import Collectives
import Model

/// The optimizer step of a data-parallel job: reduces the weight gradients and updates the
/// parameters identically on every rank.
public protocol DataParallelOptimizer: AnyObject {
    var adam: AdamState { get }
    /// One step with learning rate `lr` (and AdamW's `weightDecay` of the Dense weights) from the
    /// network's local gradients (collective).
    func step(_ network: Network, collective: Collective, lr: Float, weightDecay: Float) throws
    /// Makes Adam's moments current on every rank, for checkpoints (collective).
    func gatherMoments(collective: Collective) throws
}
