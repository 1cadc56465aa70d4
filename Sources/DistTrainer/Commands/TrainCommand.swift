// Train: `dist-trainer train`, the seed's training recipe as a data-parallel job.
//
// The same binary runs single-process (an MPI singleton: for debugging) or under mpirun/srun as
// one rank of a job. This file is the flags and the recipe: flags → TrainingConfig (or a
// checkpoint's configuration on --resume) → TrainingSetup (data, run directory; every rank agreeing
// on failures) → Core's Trainer, reported by RunReporter → the final evaluation and files.
import ArgumentParser
import CoreSupport
import Foundation
import Kernels
import Training


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

    /// Every training setting's flag (nil unless given): see TrainingFlags.
    @OptionGroup(title: "Training settings") var settings: TrainingFlags

    @Option(help: ArgumentHelp(
        "Directory with the four Fashion-MNIST IDX files (.gz or plain).",
        discussion: "Default: $FASHION_MNIST_DIR, else ./data/fashion-mnist, else /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).",
        valueName: "dir"))
    var dataDir: String?

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

    /// The configuration: the defaults, or --config's file, or on --resume `base` (the checkpoint's,
    /// from `source`), with the flags given merged in by Core's rules (TrainingConfig.merging).
    func makeConfig(base: TrainingConfig? = nil, source: String = "") throws -> TrainingConfig {
        if base != nil, let config { throw TrainerError("--config \(config): a resumed run keeps the settings of \(source)") }
        let start = try base ?? configFile() ?? TrainingConfig()
        do {
            let c = try start.merging(settings.given, resuming: base == nil ? nil : source)
            try c.validate()
            return c
        } catch let e as SettingError {
            throw settings.present(e, configFile: base == nil ? config : nil)
        }
    }

    /// The settings of --config's file, or nil without one: a recipe (an object of settings) or a
    /// run's config.json (its settings; the record of the job is ignored).
    func configFile() throws -> TrainingConfig? {
        guard let config else { return nil }
        let bytes: [UInt8]
        do { bytes = try readFile(config, limit: 1 << 20) } catch let e as TrainerError { throw TrainerError("--config \(e.message)") }
        do {
            return try TrainingConfig(recipe: try RunConfigFile.settingsObject(bytes))
        } catch let e as SettingError {
            throw TrainerError("--config \(config): \(e)")
        } catch {
            throw TrainerError("--config \(config): not a JSON object of settings (\(error))")
        }
    }

    func validate() throws {
        do { _ = try makeConfig() } catch let e as TrainerError { throw ValidationError(e.message) }
        if let threads, threads < 1 { throw ValidationError("--threads: expected at least 1, found \(threads)") }
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
        let trainer: Trainer
        do { trainer = try Trainer(config: setup.config, split: setup.split, collective: mpi) } catch let e as SettingError {
            throw settings.present(e, configFile: point == nil ? config : nil)
        }
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
