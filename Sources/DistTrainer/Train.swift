// Train: `dist-trainer train`, the seed's training recipe as a data-parallel job.
//
// The same binary runs single-process (an MPI singleton: for debugging) or under mpirun/srun as
// one rank of a job. This file is wiring only: flags → TrainingConfig (or a checkpoint's
// configuration on --resume), MPI set-up, loading data with every rank agreeing on failures, then
// Core's Trainer, then the final evaluation and files.
import ArgumentParser
import Core
import Foundation

extension AdamVariant: ExpressibleByArgument {}
extension BatchNormMode: ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the seed's network (a learning-rate sweep); data-parallel under mpirun.",
        discussion: """
            Single process:  dist-trainer train
            Data-parallel:   mpirun -np 2 dist-trainer train   (each rank trains on a shard of every minibatch)
            Resume:          dist-trainer train --resume runs/20261125-010203 [--epochs 20]
            With --bn sync the math does not depend on the number of ranks. Rank 0 prints one line per
            epoch and writes the run directory; other ranks print only errors. SIGINT/SIGTERM finish
            the current step, save last.safetensors and exit with status 130/143.
            """)

    // Flags that change the math are optional here: nil means "the default", or on --resume
    // "the checkpoint's value", and a resumed run refuses any that differ from the checkpoint.

    @Option(help: ArgumentHelp(
        "Directory with the four Fashion-MNIST IDX files (.gz or plain).",
        discussion: "Default: $FASHION_MNIST_DIR, else ./data/fashion-mnist, else /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).",
        valueName: "dir"))
    var dataDir: String?

    @Option(help: "The seed's model: 1 = 784-128-64-10, 2 = 784-512-128-64-10, 3 = 784-512-128-64-32-10. (default: 2)")
    var model: Int?

    @Option(help: ArgumentHelp("Hidden widths overriding the preset's, e.g. 512,128,64 (dropout placement follows the preset).", valueName: "w1,w2,..."))
    var hidden: String?

    @Option(help: "Epochs per learning rate; on --resume it may be raised to train longer. (default: 10)")
    var epochs: Int?

    @Option(help: "Global minibatch size, split across ranks; the last partial batch of an epoch is dropped. (default: 128)")
    var batchSize: Int?

    @Option(help: ArgumentHelp("Learning rate, or a comma-separated sweep, one fresh run per rate. (default: 0.005,0.001,0.0005,0.0001)", valueName: "lr[,lr...]"))
    var lr: String?

    @Option(help: "Dropout drop probability, as PyTorch's p (the seed's keep probability 0.5 is the same). (default: 0.5)")
    var dropout: Double?

    @Option(help: "Seed of the split, initial weights, shuffles and dropout masks. (default: 12)")
    var seed: UInt64?

    @Option(help: "Fraction of the training file held out for validation. (default: 0.2)")
    var valFraction: Double?

    @Option(help: "adam (bias-corrected, as PyTorch) or adam-seed (the notebook's update without bias correction). (default: adam)")
    var optimizer: AdamVariant?

    @Option(help: "BatchNorm statistics across ranks: sync (global batch; rank-count invariant) or local (per shard, as PyTorch DDP). (default: sync)")
    var bn: BatchNormMode?

    @Option(help: ArgumentHelp("OpenBLAS threads per process.", discussion: "Default: all cores for a single process; under mpirun, cores on the node / ranks on the node, at most the cores the rank is bound to (at least 1)."))
    var threads: Int?

    @Option(help: ArgumentHelp("Directory for config, metrics, checkpoints, summary and confusion matrices.", discussion: "Default: runs/<timestamp>.", valueName: "dir"))
    var runDir: String?

    @Option(help: ArgumentHelp("Continue the run in this directory from its last.safetensors, with its saved settings (on any number of ranks).", valueName: "run-dir"))
    var resume: String?

    @Option(help: ArgumentHelp("End the job when a collective waits longer than this (a rank died or hung); 0 disables.", valueName: "seconds"))
    var collectiveTimeout: Double = 300

    // MARK: - Configuration

    /// The configuration: the defaults (or `base`, a checkpoint's) with the given flags applied.
    /// With a `base`, flags that would change the math must agree with it; `--epochs` may grow.
    func makeConfig(base: TrainingConfig? = nil, source: String = "") throws -> TrainingConfig {
        var c = base ?? TrainingConfig()
        func apply<T: Equatable>(_ flag: String, _ value: T?, _ path: WritableKeyPath<TrainingConfig, T>, describe: (T) -> String) throws {
            guard let value else { return }
            if base != nil, value != c[keyPath: path] {
                throw TrainerError("\(flag) \(describe(value)): the run in \(source) was trained with \(describe(c[keyPath: path])); a resumed run keeps its settings (only --epochs may be raised)")
            }
            c[keyPath: path] = value
        }
        if let model {
            guard let preset = ModelPreset(rawValue: model) else { throw TrainerError("--model: expected 1, 2 or 3, found \(model)") }
            try apply("--model", preset, \.model) { String($0.rawValue) }
        }
        if let hidden { try apply("--hidden", Optional(try parseHiddenWidths(hidden)), \.hidden) { $0.map { $0.map(String.init).joined(separator: ",") } ?? "the preset's" } }
        try apply("--batch-size", batchSize, \.batchSize) { String($0) }
        if let lr { try apply("--lr", try parseLearningRates(lr), \.learningRates) { $0.map { String($0) }.joined(separator: ",") } }
        try apply("--dropout", dropout, \.dropout) { String($0) }
        try apply("--seed", seed, \.seed) { String($0) }
        try apply("--val-fraction", valFraction, \.valFraction) { String($0) }
        try apply("--optimizer", optimizer, \.optimizer) { $0.rawValue }
        try apply("--bn", bn, \.batchNorm) { $0.rawValue }
        if let epochs {
            if let base, epochs < base.epochs {
                throw TrainerError("--epochs \(epochs): the run in \(source) was set to \(base.epochs) epochs; a resumed run may only raise it")
            }
            c.epochs = epochs
        }
        try c.validate()
        if let threads, threads < 1 { throw TrainerError("--threads: expected at least 1, found \(threads)") }
        return c
    }

    func validate() throws {
        do { _ = try makeConfig() } catch let e as TrainerError { throw ValidationError(e.message) }
        if !(collectiveTimeout >= 0) {
            throw ValidationError("--collective-timeout: expected seconds ≥ 0, found \(collectiveTimeout)")
        }
        if resume != nil, runDir != nil {
            throw ValidationError("--run-dir: a resumed run continues in its own directory; give only --resume")
        }
    }

    func run() throws {
        try withMPIJob { mpi in try train(mpi: mpi) }
    }

    // MARK: - The job

    func train(mpi: MPICollective) throws {
        mpi.startWatchdog(timeout: collectiveTimeout)
        var threadsPerRank = threads ?? mpi.defaultThreadsPerRank

        // A resumed run's checkpoint is read by rank 0 (the run directory need not be shared) and
        // sent to every rank; then every rank parses it, so every rank can fail alike.
        var checkpoint: SafetensorsFile?
        var checkpointPath = ""
        if let resume {
            checkpointPath = resume + "/" + RunFiles.last
            var bytes: [UInt8] = []
            try mpi.agreeing {
                if mpi.rank == 0 { bytes = try readCheckpointBytes(run: resume, path: checkpointPath) }
            }
            try mpi.broadcast(&bytes, root: 0)
            checkpoint = try mpi.agreeing { try decodeSafetensors(bytes, name: checkpointPath) }
            // OpenBLAS rounds differently with another thread count, so a resume on the same number
            // of ranks keeps the run's threads (unless told otherwise) to stay bitwise identical.
            if threads == nil, checkpoint?.metadata["ranks"] == String(mpi.size),
               let saved = checkpoint?.metadata["threads_per_rank"].flatMap(Int.init), saved > 0 {
                threadsPerRank = saved
            }
        }
        setBlasThreads(threadsPerRank)

        // Everything that can fail on one rank only happens here, before the first training
        // collective, and ends in an agreement so that all ranks stop together.
        var setup = try mpi.agreeing { () throws -> (TrainingConfig, (train: LabeledImages, test: LabeledImages), String, String) in
            var config = try makeConfig()
            var savedDataDirectory: String?
            if let checkpoint {
                let saved = try Checkpoint.describe(checkpoint, path: checkpointPath)
                config = try makeConfig(base: saved.config, source: resume!)
                savedDataDirectory = checkpoint.metadata["data_dir"]
            }
            let dir = try dataDir ?? savedDataDirectory ?? FashionMNIST.resolveDirectory()
            let data = try FashionMNIST.load(directory: dir)
            var runDirectory = ""
            if mpi.rank == 0 {
                runDirectory = resume ?? runDir ?? defaultRunDirectory()
                try RunFiles.prepareDirectory(runDirectory)
            }
            return (config, data, dir, runDirectory)
        }
        let (config, dataDirectory, directory, testImages) = (setup.0, setup.2, setup.3, setup.1.test)
        // Hand the training file over to the split without keeping a reference, so it is shuffled
        // in place rather than copied (47 MB less peak memory).
        let trainFile = setup.1.train
        setup.1.train = LabeledImages(pixels: [], labels: [], rows: 0, cols: 0)
        let split = DataSplit(trainFile, valFraction: config.valFraction, seed: config.seed)
        let trainer = try mpi.agreeing { () throws -> Trainer in
            let t = try Trainer(config: config, split: split, collective: mpi)
            if let checkpoint { try t.restore(from: checkpoint, path: checkpointPath) }
            return t
        }
        let arch = trainer.network.architecture

        let console = Console()
        var reporter: RunReporter?
        if mpi.rank == 0 {
            console.line("dist-trainer: \(mpi.size) rank\(mpi.size == 1 ? "" : "s") on \(mpi.nodeCount) host\(mpi.nodeCount == 1 ? "" : "s"), "
                + "\(threadsPerRank) BLAS thread\(threadsPerRank == 1 ? "" : "s") per rank, BN \(config.batchNorm.rawValue), "
                + "model \(arch.widthsDescription) (\(trainer.network.layout.count) parameters), optimizer \(config.optimizer.rawValue)")
            console.line("data: \(dataDirectory): \(split.train.count) train / \(split.validation.count) validation / \(testImages.count) test; "
                + "batch \(config.batchSize), \(trainer.stepsPerEpoch) steps per epoch; run directory \(directory)")
            if resume != nil {
                let p = trainer.position
                console.line("resuming from \(checkpointPath): lr \(min(p.lrIndex + 1, config.learningRates.count))/\(config.learningRates.count), "
                    + "\(p.epochsDone) epoch\(p.epochsDone == 1 ? "" : "s") done\(p.stepInEpoch > 0 ? " + \(p.stepInEpoch) steps" : ""), "
                    + "\(trainer.history.count) epochs in the history")
            }
            reporter = RunReporter(directory: directory, console: console, config: config, checkpointMetadata: [
                "data_dir": URL(fileURLWithPath: dataDirectory).standardizedFileURL.path,
                "ranks": String(mpi.size), "threads_per_rank": String(threadsPerRank),
            ])
        }
        try mpi.agreeing {
            if mpi.rank == 0 {
                try writeFileAtomically(directory + "/" + RunFiles.config, text: RunFiles.json(configJSON(
                    config, arch: arch, mpi: mpi, threads: threadsPerRank, dataDirectory: dataDirectory,
                    split: split, testCount: testImages.count)))
                // A resumed run's metrics files start from the checkpoint's history.
                try RunFiles.writeMetrics(trainer.history, to: directory)
            }
        }
        trainer.observer = reporter
        let fault = FaultInjection(rank: mpi.rank)
        trainer.stopRequested = {
            fault?.step()
            return StopSignal.requested()
        }
        StopSignal.install()

        let outcome = try trainer.run()
        if outcome != .completed {
            // A signal: the state is saved (rank 0 wrote last.safetensors); exit like the signal.
            let p = trainer.position
            let signalName = StopSignal.exitCode == 130 ? "SIGINT" : StopSignal.exitCode == 143 ? "SIGTERM" : "a signal"
            throw TrainerError("interrupted by \(signalName) at lr \(config.learningRates[min(p.lrIndex, config.learningRates.count - 1)]) epoch \(p.epochsDone + 1) step \(p.stepInEpoch); "
                + "state saved in \(directory)/\(RunFiles.last); resume with: dist-trainer train --resume \(directory)",
                agreed: true, exitCode: StopSignal.exitCode)
        }

        let validation = try trainer.evaluateBest(on: split.validation)
        let test = try trainer.evaluateBest(on: testImages)
        let (rssMin, rssMax) = try mpi.allreduceMinMax(peakResidentMegabytes())
        guard reporter != nil else { return }
        guard let best = trainer.best else {
            console.line("no model to evaluate: every learning rate diverged")
            return
        }
        console.line("best: lr \(best.record.lr) epoch \(best.record.epoch), val macro-F1 \(String(format: "%.4f", best.record.valMacroF1))")
        console.line("validation confusion matrix (best model; rows = true class, columns = predicted):")
        console.line(formatMatrix(validation.confusion))
        console.line(String(format: "test: loss %.4f accuracy %.4f macro-F1 %.4f", test.loss, test.accuracy, test.macroF1))
        console.line("test confusion matrix:")
        console.line(formatMatrix(test.confusion))
        let summary: [String: Any] = [
            "best": ["lr": best.record.lr, "epoch": best.record.epoch, "val_macro_f1": best.record.valMacroF1,
                     "val_accuracy": best.record.valAccuracy, "val_loss": best.record.valLoss],
            "validation": RunFiles.evaluation(validation),
            "test": RunFiles.evaluation(test),
            "epoch_seconds_median": median(trainer.history.map(\.trainSeconds)),
            "diverged_lrs": trainer.diverged.map { config.learningRates[$0] },
            "ranks": mpi.size,
            "peak_rss_mb": ["min_over_ranks": rssMin, "max_over_ranks": rssMax],
        ]
        try RunFiles.writeConfusion(validation.confusion, to: directory + "/" + RunFiles.validationConfusion)
        try RunFiles.writeConfusion(test.confusion, to: directory + "/" + RunFiles.testConfusion)
        try writeFileAtomically(directory + "/" + RunFiles.summary, text: RunFiles.json(summary))
        console.line(String(format: "median epoch %.3f s; peak memory per rank %.0f MB (max over ranks)",
                            median(trainer.history.map(\.trainSeconds)), rssMax))
        console.line("wrote \(directory)/{\(RunFiles.config), \(RunFiles.metricsJSONL), \(RunFiles.metricsCSV), \(RunFiles.best), \(RunFiles.last), \(RunFiles.summary), confusion_*.csv}")
    }

    /// The bytes of a run's last checkpoint, with errors that say what is wrong with the directory.
    func readCheckpointBytes(run: String, path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: run, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainerError("--resume \(run): no such run directory")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainerError("--resume \(run): no \(RunFiles.last) in the directory (the run never finished an epoch, or this is not a run directory)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainerError("\(path): cannot read the file") }
        return [UInt8](data)
    }

    func defaultRunDirectory() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.locale = Locale(identifier: "en_US_POSIX")
        let base = "runs/" + f.string(from: Date())
        var candidate = base
        var n = 2
        while FileManager.default.fileExists(atPath: candidate) {
            candidate = base + "-\(n)"
            n += 1
        }
        return candidate
    }

    func configJSON(_ c: TrainingConfig, arch: Architecture, mpi: MPICollective, threads: Int, dataDirectory: String,
                    split: DataSplit, testCount: Int) -> [String: Any] {
        [
            "model": c.model.rawValue, "hidden": arch.hidden, "dropout_after": arch.dropoutAfter,
            "input_width": arch.inputWidth, "classes": arch.classCount, "widths": arch.widthsDescription,
            "epochs": c.epochs, "batch_size": c.batchSize, "learning_rates": c.learningRates,
            "dropout": c.dropout, "seed": c.seed, "val_fraction": c.valFraction,
            "optimizer": c.optimizer.rawValue, "batch_norm": c.batchNorm.rawValue,
            "ranks": mpi.size, "hosts": mpi.nodeCount, "threads_per_rank": threads,
            "data_dir": dataDirectory, "train_samples": split.train.count,
            "validation_samples": split.validation.count, "test_samples": testCount,
            "command": CommandLine.arguments.joined(separator: " "), "resumed": resume != nil,
        ]
    }
}

/// The confusion matrix as aligned text rows, one per true class.
func formatMatrix(_ m: ConfusionMatrix) -> String {
    let width = max(4, String(m.counts.flatMap { $0 }.max() ?? 0).count + 1)
    return m.counts.map { row in
        row.map { String(repeating: " ", count: max(0, width - String($0).count)) + String($0) }.joined()
    }.joined(separator: "\n")
}

/// This process's peak resident memory in MB (ru_maxrss is in kilobytes on Linux, bytes on macOS).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    #if os(macOS)
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1_048_576
    #else
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
    #endif
}
