// RunReporter: rank 0's view of training — console lines, a live progress line on a terminal,
// and the run directory's files.
//
// It implements Core's TrainingObserver; the trainer calls it on rank 0 only. It writes; it never
// decides anything about the math.
import Core
import Foundation

final class RunReporter: TrainingObserver {
    let directory: String
    let console: Console
    private var epochs: Int
    private var learningRates: [Double]
    private var batchSize: Int

    /// Recorded in the checkpoints: the data directory (so --resume and evaluate find the same data)
    /// and the job's ranks and threads (so a resume on the same ranks rounds identically).
    let checkpointMetadata: [String: String]

    init(directory: String, console: Console, config: TrainingConfig, checkpointMetadata: [String: String]) {
        self.directory = directory
        self.checkpointMetadata = checkpointMetadata
        self.console = console
        epochs = config.epochs
        learningRates = config.learningRates
        batchSize = config.batchSize
    }

    // MARK: TrainingObserver

    func runStarted(lr: Double, lrIndex: Int, stepsPerEpoch: Int) {
        console.line("lr \(lr) (\(lrIndex + 1)/\(learningRates.count)): fresh weights, \(stepsPerEpoch) steps per epoch")
    }

    func stepFinished(epoch: Int, step: Int, steps: Int, lossSoFar: Double, samplesPerSecond: Double) {
        console.progress(force: step == steps) {
            let eta = Double((steps - step) * batchSize) / max(samplesPerSecond, 1e-9)
            return String(format: "  epoch %d/%d  step %d/%d  %.0f samples/s  loss %.4f  ETA %.1fs",
                          epoch, epochs, step, steps, samplesPerSecond, lossSoFar, eta)
        }
    }

    func epochFinished(_ r: EpochRecord, isBest: Bool, trainer: Trainer) throws -> Bool {
        let samples = Double(trainer.stepsPerEpoch * trainer.config.batchSize)
        console.line(String(
            format: "lr %@ epoch %2d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f f1 %.4f  %.2fs (%.0f samples/s, comm %.0f%%)%@",
            "\(r.lr)", r.epoch, epochs, r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy, r.valMacroF1,
            r.trainSeconds, samples / max(r.trainSeconds, 1e-9), 100 * r.communicationSeconds / max(r.trainSeconds, 1e-9),
            isBest ? "  *best" : ""))
        try saveCheckpoints(trainer, best: isBest)
        return true
    }

    func interrupted(trainer: Trainer) throws {
        console.clearProgress()
        try saveCheckpoints(trainer, best: false)
    }

    /// Writes best.safetensors (when there is a new best), then last.safetensors, then the metrics
    /// files: in that order, so a crash between any two leaves files a resume can reconcile (it
    /// rewrites the metrics from the last checkpoint's history).
    func saveCheckpoints(_ trainer: Trainer, best isBest: Bool) throws {
        let extra = checkpointMetadata
        if isBest, var best = Checkpoint.best(trainer) {
            best.metadata.merge(extra) { ours, _ in ours }
            try writeSafetensors(best, path: directory + "/" + RunFiles.best)
        }
        try writeSafetensors(Checkpoint.last(trainer, extra: extra), path: directory + "/" + RunFiles.last)
        try RunFiles.writeMetrics(trainer.history, to: directory)
    }

    func diverged(lr: Double, lrIndex: Int, epoch: Int, step: Int) {
        console.line("lr \(lr): loss became non-finite at epoch \(epoch) step \(step); abandoning this learning rate (best model untouched)")
    }
}
