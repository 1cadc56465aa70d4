// TrainingObserver: what the training loop tells rank 0's reporter (console, run files,
// checkpoints), what it is told back at the end of each epoch, and why the loop returned.
//
// The trainer decides nothing about files; the observer decides nothing about the math. The only
// thing an observer returns is the per-epoch decision, which the trainer broadcasts from rank 0 so
// every rank acts on it together.
import Collectives

/// What rank 0 is told while training runs. Only rank 0 has an observer.
public protocol TrainingObserver: AnyObject {
    /// A learning rate's run starts (fresh parameters).
    func runStarted(lr: Double, lrIndex: Int, stepsPerEpoch: Int)
    /// A step finished.
    func stepFinished(_ report: StepReport)
    /// An epoch finished; `isBest` says it set a new best validation macro-F1 (its model is `trainer.best`).
    /// The decision is broadcast from rank 0, so every rank acts on it together.
    func epochFinished(_ record: EpochRecord, isBest: Bool, trainer: Trainer) throws -> EpochDecision
    /// The loss became non-finite; this learning rate's run is abandoned and the sweep goes on.
    func diverged(lr: Double, lrIndex: Int, epoch: Int, step: Int)
    /// Training stopped mid-epoch because a stop was requested (a signal); the trainer's state is
    /// complete and consistent, so a checkpoint written now resumes exactly.
    func interrupted(trainer: Trainer) throws
    /// A checkpoint within an epoch is due (`Trainer.checkpointEvery`, or a rank's request): the
    /// state is complete and consistent after a step, as for `interrupted`.
    func checkpointDue(trainer: Trainer) throws
}

extension TrainingObserver {
    public func checkpointDue(trainer: Trainer) throws {}
}

/// Why `Trainer.run` returned.
public enum TrainingOutcome: Equatable, Sendable {
    case completed
    /// A stop was requested (on some rank) and training stopped after the current step, with the
    /// state saved by the observer (`interrupted`, or `epochFinished` when it was the epoch's last).
    case interrupted
}

/// What rank 0 decides at the end of every epoch.
public enum EpochDecision: UInt8, Equatable, Sendable {
    /// Go on with the sweep.
    case proceed = 1
    /// End this learning rate's run (early stopping) and go on with the next one.
    case endLearningRate = 2
}

/// One finished step, as rank 0's observer sees it.
public struct StepReport: Sendable {
    /// 1-based epoch and step within it, and the epoch's steps.
    public var epoch: Int, step: Int, steps: Int
    /// Samples behind one optimizer step (the global batch times the accumulated minibatches).
    public var samplesPerStep: Int
    /// 1-based step over the whole learning rate's run (TensorBoard's x axis).
    public var runStep: Int
    /// This step's mean batch loss, and the running mean over the epoch so far.
    public var loss: Double, lossSoFar: Double
    /// The learning rate this step used (the schedule's value).
    public var learningRate: Double
    /// Training samples per second over the epoch so far.
    public var samplesPerSecond: Double

    /// Seconds until the epoch's last step at the epoch's rate so far.
    public var secondsLeftInEpoch: Double {
        Double((steps - step) * samplesPerStep) / max(samplesPerSecond, 1e-9)
    }
}

extension Collective {
    /// Rank `root`'s decision, on every rank.
    public func broadcast(_ decision: EpochDecision, root: Int) throws -> EpochDecision {
        var bytes = [decision.rawValue]
        try broadcast(&bytes, root: root)
        // Every rank runs this code, so the byte is always one of ours.
        return bytes.first.flatMap(EpochDecision.init(rawValue:)) ?? .proceed
    }
}
