// Train: `dist-trainer train`, the seed's training recipe as a data-parallel job.
//
// The same binary runs single-process (an MPI singleton: for debugging) or under mpirun/srun as
// one rank of a job. This file is the flags and the recipe: flags → TrainingConfig (or a
// checkpoint's configuration on --resume) → TrainingSetup (data, run directory; every rank agreeing
// on failures) → Core's Trainer, reported by RunReporter → the final evaluation and files.
import ArgumentParser
import CoreSupport
import Formats
import Foundation
import Kernels
import Model
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

    @OptionGroup(title: "Data") var data: DataFlags

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

    @Flag(help: ArgumentHelp("With --resume: print where the resume would start and exit without training (for scripts): 'resume-point lr_index=L epochs_done=E step_in_epoch=S steps_per_epoch=P epochs=N file=PATH' (the path last, as it may hold spaces), or 'none' for --resume auto without a checkpoint."))
    var printResumePoint = false

    @Option(help: ArgumentHelp("End the job when a collective waits longer than this (a rank died or hung); 0 disables. (default: $DIST_TRAINER_COLLECTIVE_TIMEOUT, else 300)", valueName: "seconds"))
    var collectiveTimeout: Double?

    @Flag(help: "Account for every step by phase (products by kind, the passes between them, Adam, collectives) and print the breakdown at the end (also in summary.json).")
    var profile = false

    @Option(help: ArgumentHelp("Also save last.safetensors every this many steps within epochs, in the background (0: at epoch ends only).", valueName: "steps"))
    var checkpointEvery = 0

    @Option(help: ArgumentHelp("Also save last.safetensors within epochs when this many seconds have passed since the last save (0: never).", valueName: "seconds"))
    var checkpointInterval = 0.0

    // MARK: - Configuration

    /// The configuration: the defaults, or --config's file, or on --resume `base` (the checkpoint's,
    /// from `source`), with the flags given merged in by Core's rules (TrainingConfig.merging).
    func makeConfig(base: TrainingConfig? = nil, source: String = "") throws -> TrainingConfig {
        let start = try base ?? configFile() ?? TrainingConfig()
        do {
            // A resumed run whose command names a --config recipe (a requeued or restarted job
            // repeats its command): the recipe and flags must describe the saved run.
            if let base, let recipe = try configFile() {
                let c = try base.resumed(as: try recipe.merging(settings.given), source: source)
                try c.validate()
                return c
            }
            let c = try start.merging(settings.given, resuming: base == nil ? nil : source)
            try c.validate()
            return c
        } catch let e as SettingError {
            throw settings.present(e, configFile: config)
        }
    }

    /// The settings of --config's file, or nil without one: a recipe (an object of settings) or a
    /// run's config.json (its settings; the record of the job is ignored).
    func configFile() throws -> TrainingConfig? {
        guard let config else { return nil }
        let bytes: [UInt8]
        do { bytes = try readFile(config, limit: 1 << 20) } catch let e as TrainerError {
            throw TrainerError("--config \(e.message)", exitCode: ExitStatus.badInput)
        }
        do {
            return try TrainingConfig(recipe: try RunConfigFile.settingsObject(bytes))
        } catch let e as SettingError {
            throw TrainerError("--config \(config): \(e)", exitCode: ExitStatus.badInput)
        } catch {
            throw TrainerError("--config \(config): not a JSON object of settings (\(error))", exitCode: ExitStatus.badInput)
        }
    }

    func validate() throws {
        do { _ = try makeConfig() } catch let e as TrainerError { throw ValidationError(e.message) }
        if let threads, threads < 1 { throw ValidationError("--threads: expected at least 1, found \(threads)") }
        if let collectiveTimeout, !(collectiveTimeout >= 0) {
            throw ValidationError("--collective-timeout: expected seconds ≥ 0, found \(collectiveTimeout)")
        }
        if checkpointEvery < 0 { throw ValidationError("--checkpoint-every: expected a number of steps ≥ 0, found \(checkpointEvery)") }
        if !(checkpointInterval >= 0 && checkpointInterval.isFinite) {
            throw ValidationError("--checkpoint-interval: expected seconds ≥ 0, found \(checkpointInterval)")
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
        if printResumePoint { return print(try resumePointReport()) }
        // Before anything else: a signal during start-up is remembered, not fatal.
        StopSignal.install()
        try withMPIJob(collectiveTimeout: collectiveTimeout) { mpi in try train(mpi: mpi) }
    }

    // MARK: - The job

    /// The job as a recipe: every step is a named call, in order. A failure before training is bad
    /// input (or a refused flag: its error says so), one while writing the run's first files a
    /// write failure (see ExitStatus).
    func train(mpi: MPICollective) throws {
        let resumePoint = try exiting(ExitStatus.badInput) { try resumeDirectory(mpi: mpi).map { try ResumePoint.read(runDirectory: $0, mpi: mpi) } }
        let threads = threadsPerRank(mpi: mpi)
        setComputeThreads(threads)
        let setup = try exiting(ExitStatus.badInput) {
            try mpi.agreeing { try TrainingSetup.prepare(flags: self, resuming: resumePoint, mpi: mpi, threads: threads) }
        }
        let trainer = try exiting(ExitStatus.badInput) { try mpi.agreeing { try makeTrainer(setup, resuming: resumePoint, mpi: mpi) } }
        let reporter = mpi.rank == 0 ? RunReporter(setup: setup, trainer: trainer, resumedFrom: resumePoint) : nil
        try exiting(ExitStatus.cannotWrite) { try mpi.agreeing { try reporter?.start(trainer: trainer) } }
        try runTraining(trainer, setup: setup, reporter: reporter, mpi: mpi)
        guard trainer.best != nil else {
            throw TrainerError("every learning rate diverged (the loss became non-finite); there is no model to evaluate: try smaller rates",
                               agreed: true, exitCode: ExitStatus.diverged)
        }
        let validation = try trainer.evaluateBest(on: setup.split.validation)
        let test = try trainer.evaluateBest(on: setup.test)
        let memory = try mpi.allreduceMinMax(peakResidentMegabytes())
        try reporter?.finish(trainer: trainer, validation: validation, test: test, memory: memory)
    }

    /// The data the flags name (nil: none named, the default or the resumed run's is used).
    func dataSource() throws -> DataSource? { try data.source() }

    /// `body`'s TrainerErrors, ending the process with `status` unless they name their own.
    func exiting<T>(_ status: Int32, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as TrainerError { throw e.exiting(status) }
    }

    /// `--print-resume-point`'s line: where `--resume` would continue (the checkpoint it would use,
    /// falling back as a resume does), read without MPI; bad input exits 65 like the resume would.
    func resumePointReport() throws -> String {
        guard let resume else { throw ValidationError("--print-resume-point: give the run to resume with --resume") }
        let directory = resume == "auto" ? runDir ?? "" : resume
        let newest = directory + "/" + RunFiles.last
        if resume == "auto" && !FileManager.default.fileExists(atPath: newest) { return "none" }
        do {
            let path = try ResumePoint.usableCheckpoint(runDirectory: directory, newest: newest)
            let snapshot = try LastCheckpoint(readSafetensors(path: path), path: path).snapshot
            let (p, c) = (snapshot.sweep.position, snapshot.config)
            let steps = snapshot.sweep.data.trainSamples / max(c.samplesPerStep, 1)
            return "resume-point lr_index=\(p.lrIndex) epochs_done=\(p.epochsDone) step_in_epoch=\(p.stepInEpoch) "
                + "steps_per_epoch=\(steps) epochs=\(c.epochs) file=\(path)"
        } catch let e as TrainerError {
            throw e.exiting(ExitStatus.badInput)
        }
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
        trainer.checkpointEvery = checkpointEvery
        if profile { trainer.profile = StepProfile() }
        if mpi.rank == 0 && checkpointInterval > 0 {
            // Rank 0's clock decides; its vote rides in the step's reduction to every rank.
            var last = DispatchTime.now().uptimeNanoseconds
            let interval = UInt64(checkpointInterval * 1e9)
            trainer.checkpointRequested = {
                let now = DispatchTime.now().uptimeNanoseconds
                guard now - last >= interval else { return false }
                last = now
                return true
            }
        }
        guard try trainer.run() != .completed else { return }
        let p = trainer.position, lrs = setup.config.learningRates
        throw TrainerError("interrupted by \(StopSignal.name) at lr \(lrs[min(p.lrIndex, lrs.count - 1)]) epoch \(p.epochsDone + 1) step \(p.stepInEpoch); "
            + "state saved in \(setup.runDirectory)/\(RunFiles.last); resume with: dist-trainer train --resume \(setup.runDirectory)",
            agreed: true, exitCode: StopSignal.exitCode)
    }
}
