// ReplicatedAdam: the data-parallel optimizer step with compressed gradients — a 16-bit ring
// allreduce of the weight gradients, then the same Adam update of all parameters on every rank.
//
// With compression the sharded step (ShardedAdam) would have to allgather parameters in 16 bits,
// and a rank that kept its own part in float32 would then disagree with the others; here every
// rank holds the same rounded gradient sum and applies the same float32 update, so the replicas
// stay identical and the parameters never travel. Half the bytes of the exact step's traffic.
import Collectives
import Model

public final class ReplicatedAdam: DataParallelOptimizer {
    public let adam: AdamState
    public let compression: GradientCompression

    public init(adam: AdamState, compression: GradientCompression) {
        precondition(compression != .none, "use ShardedAdam for uncompressed gradients")
        self.adam = adam
        self.compression = compression
    }

    public var updatedRange: Range<Int> { 0..<adam.m.count }

    public func reduce(_ network: Network, collective: Collective) throws {
        // Its ranks keep copies of their own: the trainer shares no operands with a compressed step.
        precondition(!network.weightGradientsPending, "a compressed allreduce needs each rank's partial weight gradients")
        try collective.allreduceSumCompressed(network.gradients.all, format: compression)
        network.writeExactGradients(into: network.gradients.pointer, range: 0..<network.layout.count)
    }

    public func update(_ network: Network, collective: Collective, lr: Float, weightDecay: Float = 0) throws {
        adam.update(params: network.parameters.pointer, grads: network.gradients.pointer, lr: lr,
                    weightDecay: weightDecay, decayed: network.layout.denseWeights, bf16Copy: network.weightCopy)
        network.weightCopyWritten()
    }

    /// Every rank updates every moment: nothing to gather.
    public func gatherMoments(collective: Collective) throws {}
}
