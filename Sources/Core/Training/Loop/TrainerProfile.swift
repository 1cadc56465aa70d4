// TrainerProfile: the training step accounted for by phase when a StepProfile is set
// (`train --profile`): the step's parts are called one by one and timed, the products inside them
// are the network's own timings, and the communication inside a part (the collective's clock) is
// moved to the communication phase, so that the phases add up to the step. Without a profile the
// step runs as it always does (Network.computeLocalGradients); the numbers are the same either way.
import Kernels
import Model

extension Trainer {
    /// `body`'s wall time into `phase`, less the products (`products`) and the communication that
    /// happened inside it (which goes to `.communication`).
    func timed<T>(_ phase: StepPhase, products: StepPhase? = nil, _ body: () throws -> T) rethrows -> T {
        guard let profile else { return try body() }
        let (start, comm) = (StepProfile.now(), collective.communicationSeconds)
        let before = products.map { profile.seconds[$0.rawValue] } ?? 0
        let value = try body()
        let communicated = collective.communicationSeconds - comm
        profile.add(phase, since: start)
        profile.add(phase, seconds: -communicated - (products.map { profile.seconds[$0.rawValue] } ?? 0) + before)
        profile.add(.communication, seconds: communicated)
        return value
    }

    /// The optimizer's part of a step, timed when profiling; the weight-gradient products it
    /// computes from operands the ranks share (ShardedAdam.reduce) count as products.
    func timedOptimizer(_ body: () throws -> Void) throws {
        guard profile != nil else { return try body() }
        network.profile = profile
        defer { network.profile = nil }
        try timed(.optimizer, products: .weightGradientProducts, body)
    }

    /// A minibatch's local gradients (Network.computeLocalGradients), its parts timed when profiling.
    func localGradients(_ ctx: StepContext) throws -> LossTally {
        guard profile != nil else { return try network.computeLocalGradients(ctx, collective: collective) }
        network.profile = profile
        defer { network.profile = nil }
        try timed(.forwardPasses, products: .forwardProducts) { try network.forwardTrain(ctx, collective: collective) }
        _ = timed(.loss) { network.lossAndGradient(ctx) }
        try timed(.backwardPasses, products: .inputGradientProducts) { try network.backward(ctx, collective: collective) }
        return try timed(.exactSums, products: .weightGradientProducts) { try network.finishStep(ctx, collective: collective) }
    }
}
