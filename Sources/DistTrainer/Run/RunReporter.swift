// RunReporter: rank 0's view of training — console lines, a live progress line on a terminal,
// and the run directory's files (config, metrics, checkpoints, summary, confusion matrices).
//
// It implements Core's TrainingObserver; the trainer calls it on rank 0 only. It writes; it never
// decides anything about the math.
import CoreSupport
import Formats
import Foundation
import Kernels
import Training

final class RunReporter: TrainingObserver {
    let setup: TrainingSetup
    let console = Console()
    /// The checkpoint header of this job: configuration, data directory, ranks and threads (so a
    /// resume finds the same data and, on the same ranks, rounds identically).
    var job: CheckpointHeader
    let resumedFrom: ResumePoint?
    var directory: String { setup.runDirectory }

    init(setup: TrainingSetup, trainer: Trainer, resumedFrom: ResumePoint?) {
        self.setup = setup
        self.resumedFrom = resumedFrom
        job = CheckpointHeader(
            kind: .last, architecture: trainer.network.architecture, config: setup.config,
            dataDirectory: URL(fileURLWithPath: setup.dataDirectory).standardizedFileURL.path,
            ranks: setup.job.ranks, threadsPerRank: setup.job.threadsPerRank, producer: "dist-trainer " + BuildDescription.full)
        job.dataSource = setup.source.absolute()
        job.classNames = setup.split.train.classNames
        job.input = setup.input
    }

    // MARK: Start and finish

    /// The start lines, config.json, and the metrics files (a resumed run's start from its history).
    func start(trainer: Trainer) throws {
        let (job, config, arch) = (setup.job, setup.config, trainer.network.architecture)
        func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        console.line("dist-trainer: \(plural(job.ranks, "rank")) on \(plural(job.hosts, "host")), "
            + "\(plural(job.threadsPerRank, "thread")) per rank (\(matrixLibraryDescription())), BN \(config.batchNorm.rawValue), "
            + "model \(arch.widthsDescription) (\(trainer.network.layout.count) parameters), optimizer \(config.optimizer.rawValue), "
            + "\(config.precision.rawValue) products\(config.gradientCompression == .none ? "" : ", \(config.gradientCompression.rawValue) gradient transport"), "
            + "dist-trainer \(BuildDescription.full)")
        for warning in setup.warnings { console.line("warning: " + warning) }
        let (train, source) = (setup.split.train, setup.source)
        let files = [source.data] + [source.testData, source.valData].compactMap { $0 }
        console.line("data: \(files.joined(separator: ", ")): \(train.width) \(train.encoding == .bytes ? "bytes (scaled by 1/255)" : "features (\(setup.config.normalize ?? .standard == .standard ? "standardised" : "unscaled"))") per sample, \(train.classCount) classes; "
            + "\(setup.split.train.count) train / \(setup.split.validation.count) validation / \(setup.test.count) test; "
            + "batch \(config.batchSize)\(config.accumulate > 1 ? " × \(config.accumulate) accumulated" : ""), \(trainer.stepsPerEpoch) steps per epoch; run directory \(directory)")
        if let point = resumedFrom {
            let p = trainer.position
            console.line("resuming from \(point.path): lr \(min(p.lrIndex + 1, config.learningRates.count))/\(config.learningRates.count), "
                + "\(plural(p.epochsDone, "epoch")) done\(p.stepInEpoch > 0 ? " + \(p.stepInEpoch) steps" : ""), "
                + "\(trainer.history.count) epochs in the history")
        }
        let file = RunConfigFile(settings: config, record: RunRecord(
            architecture: arch, job: job, data: setup.dataCounts, command: CommandLine.arguments.joined(separator: " "), resumed: resumedFrom != nil))
        try RunFiles.writeJSON(file, to: directory, RunFiles.config)
        try RunFiles.writeMetrics(trainer.history, to: directory)
    }

    /// The best model's results: console lines, confusion matrices and summary.json.
    func finish(trainer: Trainer, validation: Evaluation, test: Evaluation, memory: (min: Double, max: Double)) throws {
        try writer.finish()
        guard let best = trainer.best else {
            console.line("no model to evaluate: every learning rate diverged")
            return
        }
        let epochSeconds = median(trainer.history.map(\.trainSeconds))
        console.line("best: lr \(best.record.lr) epoch \(best.record.epoch), val macro-F1 \(String(format: "%.4f", best.record.valMacroF1))")
        console.line("validation confusion matrix (best model; rows = true class, columns = predicted):")
        console.line(formatMatrix(validation.confusion))
        console.line(String(format: "test: loss %.4f accuracy %.4f macro-F1 %.4f", test.loss, test.accuracy, test.macroF1))
        console.line("test confusion matrix:")
        console.line(formatMatrix(test.confusion))
        let summary = RunSummary(
            best: .init(best.record), validation: EvaluationSummary(validation), test: EvaluationSummary(test),
            epochSecondsMedian: epochSeconds, divergedLrs: trainer.diverged.map { setup.config.learningRates[$0] },
            ranks: setup.job.ranks, peakRssMb: .init(minOverRanks: memory.min, maxOverRanks: memory.max),
            collectives: trainer.collective.operationTotals,
            earlyStopped: trainer.history.filter { $0.earlyStopped == true }.map { .init(lr: $0.lr, epoch: $0.epoch) },
            exactSumRedos: trainer.network.sumRedos, checkpointsWithinEpochs: inEpochCheckpoints, checkpointWaitSeconds: writer.waitedSeconds,
            restarts: Optional(RestartRecord.read(directory + "/" + RunFiles.restarts)).flatMap { $0.isEmpty ? nil : $0 },
            stepProfile: trainer.profile.map(profileTable), mpiTransport: setup.job.transport.isEmpty ? nil : setup.job.transport)
        let names = setup.split.train.classNames
        try RunFiles.writeConfusion(validation.confusion, names: names, to: directory + "/" + RunFiles.validationConfusion)
        try RunFiles.writeConfusion(test.confusion, names: names, to: directory + "/" + RunFiles.testConfusion)
        try RunFiles.writeJSON(summary, to: directory, RunFiles.summary)
        console.line(String(format: "median epoch %.3f s; peak memory per rank %.0f MB (max over ranks)", epochSeconds, memory.max))
        console.line("wrote \(directory)/{\(RunFiles.config), \(RunFiles.metricsJSONL), \(RunFiles.metricsCSV), \(RunFiles.best), \(RunFiles.last), \(RunFiles.summary), confusion_*.csv}")
    }

    /// The step's breakdown as lines on the console, and as milliseconds by phase for the summary.
    func profileTable(_ profile: StepProfile) -> [String: Double] {
        let (phases, total) = profile.perStep()
        console.line(String(format: "step profile (rank 0, %d steps, %.3f ms per step):", profile.steps, total))
        for (phase, ms) in phases {
            let name = phase.name.padding(toLength: 54, withPad: " ", startingAt: 0)
            console.line("  " + name + String(format: "%8.3f ms  %5.1f %%", ms, 100 * ms / max(total, 1e-12)))
        }
        var table = Dictionary(uniqueKeysWithValues: phases.map { ("\($0.0)", $0.1) })
        table["total"] = total
        return table
    }

    // MARK: TrainingObserver

    func runStarted(lr: Double, lrIndex: Int, stepsPerEpoch: Int) {
        console.line("lr \(lr) (\(lrIndex + 1)/\(setup.config.learningRates.count)): fresh weights, \(stepsPerEpoch) steps per epoch")
        openEvents(lrIndex: lrIndex)
    }

    // MARK: TensorBoard

    /// The live TensorBoard event file of the learning rate being trained (one directory per rate:
    /// <run>/tensorboard/lr_<rate>, so TensorBoard shows the rates of a sweep as runs).
    private var events: TensorBoardWriter?
    private var eventsLRIndex = -1

    func openEvents(lrIndex: Int) {
        guard eventsLRIndex != lrIndex else { return }
        try? events?.flush()
        eventsLRIndex = lrIndex
        let lr = setup.config.learningRates[lrIndex]
        // TensorBoard is a convenience: a failure to write it is reported once and training goes on.
        do { events = try TensorBoardWriter(directory: directory + "/tensorboard/lr_\(lr)") } catch {
            console.line("warning: no TensorBoard events: \(error)")
            events = nil
        }
    }

    func writeEpochEvents(_ r: EpochRecord, trainer: Trainer) {
        openEvents(lrIndex: r.lrIndex)
        let step = r.epoch * trainer.stepsPerEpoch
        events?.add(step: step, [
            ("val/loss", Float(r.valLoss)), ("val/accuracy", Float(r.valAccuracy)), ("val/macro_f1", Float(r.valMacroF1)),
            ("train/epoch_loss", Float(r.trainLoss)), ("train/epoch_accuracy", Float(r.trainAccuracy)),
            ("time/epoch_seconds", Float(r.trainSeconds)), ("time/communication_share", Float(r.communicationSeconds / max(r.trainSeconds, 1e-9))),
            ("time/epoch", Float(r.epoch)),
        ])
        try? events?.flush()
    }

    func stepFinished(_ r: StepReport) {
        console.progress(force: r.step == r.steps) {
            String(format: "  epoch %d/%d  step %d/%d  %.0f samples/s  loss %.4f  ETA %.1fs",
                   r.epoch, setup.config.epochs, r.step, r.steps, r.samplesPerSecond, r.lossSoFar, r.secondsLeftInEpoch)
        }
        events?.add(step: r.runStep, [("train/loss", Float(r.loss)), ("train/learning_rate", Float(r.learningRate)),
                                      ("train/samples_per_second", Float(r.samplesPerSecond))])
    }

    func epochFinished(_ r: EpochRecord, isBest: Bool, trainer: Trainer) throws -> EpochDecision {
        let samples = Double(trainer.stepsPerEpoch * trainer.config.samplesPerStep)
        console.line(String(
            format: "lr %@ epoch %2d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f f1 %.4f  %.2fs (%.0f samples/s, comm %.0f%%%@)%@",
            "\(r.lr)", r.epoch, setup.config.epochs, r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy, r.valMacroF1,
            r.trainSeconds, samples / max(r.trainSeconds, 1e-9), 100 * r.communicationSeconds / max(r.trainSeconds, 1e-9),
            straggler(r), isBest ? "  *best" : ""))
        if r.earlyStopped == true {
            console.line("lr \(r.lr): validation macro-F1 has not improved for \(setup.config.earlyStopping) epochs; stopping this learning rate early")
        }
        writeEpochEvents(r, trainer: trainer)
        try saveCheckpoints(trainer, best: isBest)
        return .proceed
    }

    /// ", slowest rank 1 (node2) +0.42s": who the others waited for and how long, when it matters
    /// (more than 5 % of the epoch); empty for a single process.
    func straggler(_ r: EpochRecord) -> String {
        guard setup.job.ranks > 1, r.straggleSeconds > 0.05 * r.trainSeconds else { return "" }
        let host = setup.job.hosts > 1 && setup.job.hostNames.indices.contains(r.slowestRank) ? " (\(setup.job.hostNames[r.slowestRank]))" : ""
        return String(format: ", slowest rank %d%@ +%.2fs", r.slowestRank, host, r.straggleSeconds)
    }

    func interrupted(trainer: Trainer) throws {
        console.clearProgress()
        try saveCheckpoints(trainer, best: false)
    }

    /// In-epoch checkpoints go to the background writer (see CheckpointWriter); a snapshot is a copy,
    /// so training goes on while it is written.
    let writer = CheckpointWriter()

    /// Checkpoints saved within epochs so far.
    var inEpochCheckpoints = 0

    func checkpointDue(trainer: Trainer) throws {
        inEpochCheckpoints += 1
        try writer.submit(header: job, path: directory + "/" + RunFiles.last) { trainer.snapshot(reusing: &$0) }
    }

    func diverged(lr: Double, lrIndex: Int, epoch: Int, step: Int) {
        console.line("lr \(lr): loss became non-finite at epoch \(epoch) step \(step); abandoning this learning rate (best model untouched)")
    }

    /// Writes best.safetensors (when there is a new best), then last.safetensors, then the metrics
    /// files: in that order, so a crash between any two leaves files a resume can reconcile (it
    /// rewrites the metrics from the last checkpoint's history).
    func saveCheckpoints(_ trainer: Trainer, best isBest: Bool) throws {
        try writer.finish()
        do {
            if isBest, let best = trainer.best {
                // Streamed from the best model's arrays (no copy of it in memory; see docs/performance.md, memory).
                let (tensors, metadata) = try Checkpoint.bestParts(best, architecture: trainer.network.architecture, header: job)
                try writeSafetensors(tensors, metadata: metadata, path: directory + "/" + RunFiles.best)
            }
            // The last checkpoint through the writer (the same path as within epochs), waited for.
            try writer.submit(header: job, path: directory + "/" + RunFiles.last) { trainer.snapshot(reusing: &$0) }
            try writer.finish()
            try RunFiles.writeMetrics(trainer.history, to: directory)
        } catch let e as TrainerError {
            throw e.exiting(ExitStatus.cannotWrite)
        }
    }
}
