// LearningRateSchedule: the learning rate of every step of a learning rate's run — constant (the
// seed's), cosine decay or step decay, after an optional linear warm-up — as a pure function of the
// step, so every rank computes the same value and a resumed run continues the schedule exactly.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the learning rate moves over a run.
public enum LearningRateSchedule: String, Codable, CaseIterable, Sendable {
    /// The base rate throughout (the seed's recipe).
    case constant
    /// Half a cosine from the base rate down to zero over the run (after the warm-up).
    case cosine
    /// The base rate, ×0.1 from half the epochs on, ×0.01 from three quarters on.
    case step
}

extension TrainingConfig {
    /// The learning rate of step `step` (0-based, over the whole run: epoch × steps per epoch +
    /// step in the epoch) of a run with base rate `base` and `stepsPerEpoch` steps per epoch.
    /// With a warm-up of W epochs, the first W × steps steps rise linearly to the base rate.
    public func learningRate(base: Double, step: Int, stepsPerEpoch: Int) -> Double {
        let total = Double(max(epochs * stepsPerEpoch, 1))
        let warmup = warmupEpochs * Double(stepsPerEpoch)
        let t = Double(step)
        if t < warmup { return base * (t + 1) / warmup }
        switch lrSchedule {
        case .constant:
            return base
        case .cosine:
            let progress = min(max((t - warmup) / max(total - warmup, 1), 0), 1)
            return base * 0.5 * (1 + cos(Double.pi * progress))
        case .step:
            let epoch = t / Double(max(stepsPerEpoch, 1))
            let e = Double(epochs)
            return base * (epoch >= 0.75 * e ? 0.01 : epoch >= 0.5 * e ? 0.1 : 1)
        }
    }
}
