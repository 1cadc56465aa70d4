// Train: `dist-trainer train`, the seed's training recipe as a data-parallel job.
//
// The same binary runs single-process (an MPI singleton: for debugging) or under mpirun/srun as
// one rank of a job. This file is wiring only: flags → TrainingConfig, MPI set-up, loading data
// with every rank agreeing on failures, then Core's Trainer, then the final evaluation and files.
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
            Results do not depend on the number of ranks (with --bn sync). Rank 0 prints one line per
            epoch and writes the run directory; other ranks print only errors.
            """)

    @Option(help: ArgumentHelp(
        "Directory with the four Fashion-MNIST IDX files (.gz or plain).",
        discussion: "Default: $FASHION_MNIST_DIR, else ./data/fashion-mnist, else /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).",
        valueName: "dir"))
    var dataDir: String?

    @Option(help: "The seed's model: 1 = 784-128-64-10, 2 = 784-512-128-64-10, 3 = 784-512-128-64-32-10.")
    var model: Int = 2

    @Option(help: ArgumentHelp("Hidden widths overriding the preset's, e.g. 512,128,64 (dropout placement follows the preset).", valueName: "w1,w2,..."))
    var hidden: String?

    @Option(help: "Epochs per learning rate.")
    var epochs: Int = 10

    @Option(help: "Global minibatch size, split across ranks; the last partial batch of an epoch is dropped.")
    var batchSize: Int = 128

    @Option(help: ArgumentHelp("Learning rate, or a comma-separated sweep (one fresh run per rate).", valueName: "lr[,lr...]"))
    var lr: String = "0.005,0.001,0.0005,0.0001"

    @Option(help: "Dropout drop probability, as PyTorch's p (the seed's keep probability 0.5 is the same).")
    var dropout: Double = 0.5

    @Option(help: "Seed of the split, initial weights, shuffles and dropout masks.")
    var seed: UInt64 = 12

    @Option(help: "Fraction of the training file held out for validation.")
    var valFraction: Double = 0.2

    @Option(help: "adam (bias-corrected, as PyTorch) or adam-seed (the notebook's update without bias correction).")
    var optimizer: AdamVariant = .adam

    @Option(help: "BatchNorm statistics across ranks: sync (global batch; rank-count invariant) or local (per shard, as PyTorch DDP).")
    var bn: BatchNormMode = .sync

    @Option(help: ArgumentHelp("OpenBLAS threads per process.", discussion: "Default: all cores for a single process; under mpirun, cores on the node / ranks on the node (at least 1)."))
    var threads: Int?

    @Option(help: ArgumentHelp("Directory for config, metrics, summary and confusion matrices.", discussion: "Default: runs/<timestamp>.", valueName: "dir"))
    var runDir: String?

    /// The validated training configuration from the flags.
    func makeConfig() throws -> TrainingConfig {
        var c = TrainingConfig()
        guard let preset = ModelPreset(rawValue: model) else {
            throw TrainerError("--model: expected 1, 2 or 3, found \(model)")
        }
        c.model = preset
        c.hidden = try hidden.map(parseHiddenWidths)
        c.epochs = epochs
        c.batchSize = batchSize
        c.learningRates = try parseLearningRates(lr)
        c.dropout = dropout
        c.seed = seed
        c.valFraction = valFraction
        c.optimizer = optimizer
        c.batchNorm = bn
        try c.validate()
        if let threads, threads < 1 { throw TrainerError("--threads: expected at least 1, found \(threads)") }
        return c
    }

    func validate() throws {
        do { _ = try makeConfig() } catch let e as TrainerError { throw ValidationError(e.message) }
    }

    func run() throws {
        let config = try makeConfig()
        try withMPIJob { mpi in try train(config, mpi: mpi) }
    }

    // MARK: - The job

    func train(_ config: TrainingConfig, mpi: MPICollective) throws {
        let threadsPerRank = threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / mpi.localSize)
        setBlasThreads(threadsPerRank)

        // Everything that can fail on one rank only happens here, before the first training
        // collective, and ends in an agreement so that all ranks stop together.
        let (data, dataDirectory, directory) = try mpi.agreeing { () throws -> ((train: LabeledImages, test: LabeledImages), String, String) in
            let dir = try dataDir ?? FashionMNIST.resolveDirectory()
            let data = try FashionMNIST.load(directory: dir)
            var runDirectory = ""
            if mpi.rank == 0 {
                runDirectory = runDir ?? defaultRunDirectory()
                try RunFiles.prepareDirectory(runDirectory)
            }
            return (data, dir, runDirectory)
        }
        let split = DataSplit(data.train, valFraction: config.valFraction, seed: config.seed)
        let trainer = try mpi.agreeing { try Trainer(config: config, split: split, collective: mpi) }
        let arch = trainer.network.architecture

        let console = Console()
        var reporter: RunReporter?
        if mpi.rank == 0 {
            console.line("dist-trainer: \(mpi.size) rank\(mpi.size == 1 ? "" : "s") on \(mpi.nodeCount) host\(mpi.nodeCount == 1 ? "" : "s"), "
                + "\(threadsPerRank) BLAS thread\(threadsPerRank == 1 ? "" : "s") per rank, BN \(config.batchNorm.rawValue), "
                + "model \(arch.widthsDescription) (\(trainer.network.layout.count) parameters), optimizer \(config.optimizer.rawValue)")
            console.line("data: \(dataDirectory): \(split.train.count) train / \(split.validation.count) validation / \(data.test.count) test; "
                + "batch \(config.batchSize), \(trainer.stepsPerEpoch) steps per epoch; run directory \(directory)")
            reporter = RunReporter(directory: directory, console: console, config: config)
        }
        try mpi.agreeing {
            if mpi.rank == 0 {
                try writeFileAtomically(directory + "/" + RunFiles.config, text: RunFiles.json(configJSON(
                    config, arch: arch, mpi: mpi, threads: threadsPerRank, dataDirectory: dataDirectory,
                    split: split, testCount: data.test.count)))
            }
        }
        trainer.observer = reporter

        _ = try trainer.run()

        let validation = try trainer.evaluateBest(on: split.validation)
        let test = try trainer.evaluateBest(on: data.test)
        let (rssMin, rssMax) = try mpi.allreduceMinMax(peakResidentMegabytes())
        guard let reporter, let best = trainer.best else { return }
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
        console.line("wrote \(directory)/{\(RunFiles.config), \(RunFiles.metricsJSONL), \(RunFiles.metricsCSV), \(RunFiles.summary), confusion_*.csv}")
        _ = reporter
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
            "command": CommandLine.arguments.joined(separator: " "),
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
