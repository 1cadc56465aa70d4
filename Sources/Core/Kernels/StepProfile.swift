// StepProfile: where the time of a training step goes — the matrix products by kind, every pass
// between them, the optimizer, and the collectives — measured with the binary's own clock
// (`train --profile`, `scripts/bench.sh`).
//
// Phases are wall-clock times of disjoint parts of a step. The matrix products are timed around
// each call; a coarse phase (the BatchNorm passes of the forward pass, say) is its wall time minus
// the products and the communication that happened inside it, so nothing is counted twice and the
// phases add up to the step. Communication is the collective's own timing (which includes waiting
// for the slower rank). Reading the clock costs ~25 ns; a step reads it ~40 times.
import Dispatch

public enum StepPhase: Int, CaseIterable, Sendable {
    case gather, forwardProducts, forwardPasses, loss, inputGradientProducts, backwardPasses
    case weightGradientProducts, exactSums, optimizer, communication

    /// How the phase is named in reports.
    public var name: String {
        switch self {
        case .gather: return "gather the batch (bytes to Floats, augmentation)"
        case .forwardProducts: return "products: forward (bias, ReLU fused)"
        case .forwardPasses: return "BatchNorm forward, dropout (elementwise)"
        case .loss: return "softmax cross-entropy"
        case .inputGradientProducts: return "products: input gradients"
        case .backwardPasses: return "BatchNorm backward, ReLU, bias gradients"
        case .weightGradientProducts: return "products: weight gradients"
        case .exactSums: return "exact sums: column maxima, operand rounding"
        case .optimizer: return "Adam (this rank's part), accumulation"
        case .communication: return "collectives (including waiting for the slower rank)"
        }
    }
}

/// Accumulated phase times of the steps measured so far.
public final class StepProfile {
    public private(set) var seconds = [Double](repeating: 0, count: StepPhase.allCases.count)
    public var steps = 0

    public init() {}

    @inline(__always) public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Adds the time since `start` to `phase`.
    @inline(__always) public func add(_ phase: StepPhase, since start: UInt64) {
        seconds[phase.rawValue] += Double(StepProfile.now() &- start) / 1e9
    }

    /// Adds `value` seconds to `phase` (negative: time another phase has claimed).
    public func add(_ phase: StepPhase, seconds value: Double) { seconds[phase.rawValue] += value }

    public func reset() {
        seconds = [Double](repeating: 0, count: StepPhase.allCases.count)
        steps = 0
    }

    /// Milliseconds per step of every phase, and the total.
    public func perStep() -> (phases: [(StepPhase, Double)], total: Double) {
        let n = Double(max(steps, 1))
        let phases = StepPhase.allCases.map { ($0, 1000 * seconds[$0.rawValue] / n) }
        return (phases, phases.reduce(0) { $0 + $1.1 })
    }
}
