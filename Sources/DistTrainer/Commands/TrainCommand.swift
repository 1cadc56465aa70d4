// Train: `dist-trainer train`, the seed's training recipe as a data-parallel job.
//
// The same binary runs single-process (an MPI singleton: for debugging) or under mpirun/srun as
// one rank of a job. This file is the flags and the recipe: flags → TrainingConfig (or a
// checkpoint's configuration on --resume) → TrainingSetup (data, run directory; every rank agreeing
// on failures) → Core's Trainer, reported by RunReporter → the final evaluation and files.
import CoreSupport
import Kernels
import Collectives
import Model
import Training
import Formats
import ArgumentParser
import Foundation

extension AdamVariant: ExpressibleByArgument {}
extension BatchNormMode: ExpressibleByArgument {}
extension ProductPrecision: ExpressibleByArgument {}
extension GradientCompression: ExpressibleByArgument {}
extension LearningRateSchedule: ExpressibleByArgument {}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the seed's network (a learning-rate sweep); data-parallel under mpirun.",
        discussion: """
            Single process:  dist-trainer train
            Data-parallel:   mpirun -np 2 dist-trainer train   (each rank trains on a shard of every minibatch)
            Resume:          dist-trainer train --resume runs/20261125-010203 [--epochs 20]
            Requeued jobs:   dist-trainer train --run-dir runs/job42 --resume auto   (resumes if a checkpoint is there)
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

    @Option(help: "Number format of the matrix products: fp32, or bf16 (bfloat16 products with fp32 accumulation, master weights and optimizer, as PyTorch's CPU autocast; needs AVX512_BF16 or AMX). (default: fp32)")
    var precision: ProductPrecision?

    @Option(name: .customLong("grad-compression"), help: "Weight gradients between ranks: none (exact float32), bf16 or fp16 (16-bit transport, float32 sums, master weights and optimizer; half the traffic, not exact). (default: none)")
    var gradCompression: GradientCompression?

    // MARK: Beyond the seed's recipe (all off by default)

    @Option(help: "Learning-rate schedule of each run: constant (the seed's), cosine (to zero), or step (×0.1 at 1/2 and 3/4 of the epochs). (default: constant)")
    var lrSchedule: LearningRateSchedule?

    @Option(help: "Epochs of linear warm-up to the base learning rate at the start of each run. (default: 0)")
    var warmupEpochs: Double?

    @Option(help: "Decoupled weight decay (AdamW) of the Dense weights; biases and BatchNorm are not decayed. (default: 0)")
    var weightDecay: Double?

    @Option(help: "Label smoothing ε of the training loss. (default: 0)")
    var labelSmoothing: Double?

    @Flag(help: "Augment training images: random translations of up to 2 pixels (zero fill).")
    var augment = false

    @Option(help: "With augmentation: the largest translation in pixels. (default: 2 with --augment)")
    var augmentShift: Int?

    @Flag(help: "With --augment: also flip training images horizontally at random.")
    var augmentFlip = false

    @Option(help: ArgumentHelp("Stop a learning rate's run when validation macro-F1 has not improved for this many epochs. (default: off)", valueName: "patience"))
    var earlyStopping: Int?

    @Option(help: ArgumentHelp("Average the gradients of K minibatches before each reduction and optimizer step (gradient accumulation, as DDP's no_sync): K times fewer reductions per sample, for slow networks. (default: 1)", valueName: "K"))
    var accumulate: Int?

    @Option(help: ArgumentHelp("Every train setting from a JSON file (config.json's format: a past run's config.json replays it); flags override it.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Threads per process for the products (oneDNN's OpenMP threads).", discussion: "Default: $OMP_NUM_THREADS if set; else all cores for a single process, and under mpirun cores on the node / ranks on the node, at most the cores the rank is bound to (at least 1)."))
    var threads: Int?

    @Option(help: ArgumentHelp("Directory for config, metrics, checkpoints, summary and confusion matrices.", discussion: "Default: runs/<timestamp>.", valueName: "dir"))
    var runDir: String?

    @Option(help: ArgumentHelp("Continue the run in this directory from its last.safetensors, with its saved settings (on any number of ranks); 'auto' with --run-dir: continue the run there if it has a checkpoint, else start it.", valueName: "run-dir|auto"))
    var resume: String?

    @Flag(help: "Replace the run in --run-dir if it already holds one (otherwise that is refused).")
    var overwrite = false

    @Flag(help: ArgumentHelp("Print where this command's run directory is and exit without training (for scripts): 'given DIR' when --run-dir or --resume names it, 'new DIR' for the fresh runs/<timestamp> a run without them would create."))
    var printRunDir = false

    @Option(help: ArgumentHelp("End the job when a collective waits longer than this (a rank died or hung); 0 disables. (default: $DIST_TRAINER_COLLECTIVE_TIMEOUT, else 300)", valueName: "seconds"))
    var collectiveTimeout: Double?

    // MARK: - Configuration

    /// The configuration: the defaults (or `base`, a checkpoint's) with the given flags applied.
    /// With a `base`, flags that would change the math must agree with it; `--epochs` may grow.
    func makeConfig(base: TrainingConfig? = nil, source: String = "") throws -> TrainingConfig {
        if base != nil, let config { throw TrainerError("--config \(config): a resumed run keeps the settings of \(source)") }
        var c = try base ?? configFile() ?? TrainingConfig()
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
        try apply("--precision", precision, \.precision) { $0.rawValue }
        try apply("--grad-compression", gradCompression, \.gradientCompression) { $0.rawValue }
        try apply("--lr-schedule", lrSchedule, \.lrSchedule) { $0.rawValue }
        try apply("--warmup-epochs", warmupEpochs, \.warmupEpochs) { String($0) }
        try apply("--weight-decay", weightDecay, \.weightDecay) { String($0) }
        try apply("--label-smoothing", labelSmoothing, \.labelSmoothing) { String($0) }
        try apply("--augment", augmentShift ?? (augment ? 2 : nil), \.augmentShift) { $0 == 0 ? "off" : "\($0) px" }
        try apply("--augment-flip", augmentFlip ? true : nil, \.augmentFlip) { String($0) }
        try apply("--early-stopping", earlyStopping, \.earlyStopping) { String($0) }
        try apply("--accumulate", accumulate, \.accumulate) { String($0) }
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

    /// The settings of --config's file, or nil without one.
    func configFile() throws -> TrainingConfig? {
        guard let config else { return nil }
        let bytes: [UInt8]
        do { bytes = try readFile(config, limit: 1 << 20) } catch let e as TrainerError { throw TrainerError("--config \(e.message)") }
        return try JSONCoding.decode(TrainingConfig.self, from: bytes, what: "--config \(config)")
    }

    func validate() throws {
        do { _ = try makeConfig() } catch let e as TrainerError { throw ValidationError(e.message) }
        if let collectiveTimeout, !(collectiveTimeout >= 0) {
            throw ValidationError("--collective-timeout: expected seconds ≥ 0, found \(collectiveTimeout)")
        }
        if resume == "auto" {
            if runDir == nil { throw ValidationError("--resume auto: give the run directory with --run-dir") }
        } else if resume != nil, runDir != nil {
            throw ValidationError("--run-dir: a resumed run continues in its own directory; give only --resume")
        }
        if overwrite, resume != nil { throw ValidationError("--overwrite: a resumed run continues its directory; give one of --overwrite and --resume") }
    }

    func run() throws {
        if printRunDir { return print(runDirectoryReport()) }
        // Before anything else: a signal during start-up is remembered, not fatal.
        StopSignal.install()
        try withMPIJob(collectiveTimeout: collectiveTimeout) { mpi in try train(mpi: mpi) }
    }

    // MARK: - The job

    /// The job as a recipe: every step is a named call, in order.
    func train(mpi: MPICollective) throws {
        let resumePoint = try resumeDirectory(mpi: mpi).map { try ResumePoint.read(runDirectory: $0, mpi: mpi) }
        let threads = threadsPerRank(mpi: mpi)
        setComputeThreads(threads)
        let setup = try mpi.agreeing { try TrainingSetup.prepare(flags: self, resuming: resumePoint, mpi: mpi, threads: threads) }
        let trainer = try mpi.agreeing { try makeTrainer(setup, resuming: resumePoint, mpi: mpi) }
        let reporter = mpi.rank == 0 ? RunReporter(setup: setup, trainer: trainer, resumedFrom: resumePoint) : nil
        try mpi.agreeing { try reporter?.start(trainer: trainer) }
        try runTraining(trainer, setup: setup, reporter: reporter, mpi: mpi)
        let validation = try trainer.evaluateBest(on: setup.split.validation)
        let test = try trainer.evaluateBest(on: setup.test)
        let memory = try mpi.allreduceMinMax(peakResidentMegabytes())
        try reporter?.finish(trainer: trainer, validation: validation, test: test, memory: memory)
    }

    /// `--print-run-dir`'s line: the run directory the flags name, or the fresh one a run would make.
    func runDirectoryReport() -> String {
        if let runDir { return "given \(runDir)" }
        if let resume, resume != "auto" { return "given \(resume)" }
        return "new \(TrainingSetup.defaultRunDirectory())"
    }

    /// The run directory to resume: --resume's, or with `--resume auto` the --run-dir when rank 0
    /// finds a checkpoint there (nil: a fresh run).
    func resumeDirectory(mpi: MPICollective) throws -> String? {
        guard let resume else { return nil }
        guard resume == "auto", let runDir else { return resume }
        let found = try mpi.rootReads { [FileManager.default.fileExists(atPath: runDir + "/" + RunFiles.last) ? 1 : 0] }
        return found == [1] ? runDir : nil
    }

    /// Threads per rank for the products: --threads, else the default (see MPICollective). The
    /// results do not depend on it (oneDNN's kernels give the same bits with any thread count), so a
    /// resumed run uses the threads of the job that resumes it.
    func threadsPerRank(mpi: MPICollective) -> Int {
        threads ?? mpi.defaultThreadsPerRank
    }

    /// The trainer for `setup`, restored to the resume point if there is one.
    func makeTrainer(_ setup: TrainingSetup, resuming point: ResumePoint?, mpi: MPICollective) throws -> Trainer {
        let trainer = try Trainer(config: setup.config, split: setup.split, collective: mpi)
        if let point { try trainer.restore(from: point.checkpoint.snapshot, path: point.path) }
        return trainer
    }

    /// Trains with signals and fault injection wired in; an interruption becomes an error that
    /// exits like the signal, after the state is saved.
    func runTraining(_ trainer: Trainer, setup: TrainingSetup, reporter: RunReporter?, mpi: MPICollective) throws {
        trainer.observer = reporter
        let fault = FaultInjection(rank: mpi.rank)
        trainer.stopRequested = {
            fault?.beforeStep()
            return StopSignal.requested()
        }
        guard try trainer.run() != .completed else { return }
        let p = trainer.position, lrs = setup.config.learningRates
        throw TrainerError("interrupted by \(StopSignal.name) at lr \(lrs[min(p.lrIndex, lrs.count - 1)]) epoch \(p.epochsDone + 1) step \(p.stepInEpoch); "
            + "state saved in \(setup.runDirectory)/\(RunFiles.last); resume with: dist-trainer train --resume \(setup.runDirectory)",
            agreed: true, exitCode: StopSignal.exitCode)
    }
}
