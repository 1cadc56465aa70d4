// TrainingSetup: everything a training job settles before its first step — the configuration, the
// data and its split, the run directory and the shape of the job.
//
// Built once per rank inside one agreement (every step here can fail on one rank only: a file it
// cannot read, a directory it cannot create), so that all ranks stop together with one message.
import CoreSupport
import Datasets
import Foundation
import Model
import Training

struct TrainingSetup {
    var config: TrainingConfig
    var split: DataSplit
    var test: LabeledData
    /// Where the data was read from, and how the raw values were scaled.
    var source: DataSource
    var input: InputTransform
    /// Lines worth saying about the data (a class with no training sample), said by rank 0.
    var warnings: [String]
    /// The run directory (rank 0 only; empty on other ranks, which write nothing).
    var runDirectory: String
    var job: JobShape

    var dataDirectory: String { source.data }

    /// Builds the configuration from the flags (over a resumed run's saved one), loads and splits
    /// the data and scales its features, and on rank 0 creates the run directory.
    static func prepare(flags: TrainCommand, resuming point: ResumePoint?, mpi: MPICollective, threads: Int) throws -> TrainingSetup {
        let config = try flags.makeConfig(base: point?.checkpoint.header.config, source: point?.runDirectory ?? "")
        let source = try flags.dataSource() ?? point?.checkpoint.header.recordedSource ?? DataSource(data: FashionMNIST.resolveDirectory())
        var data = try source.load()
        if config.augmentShift > 0 && !data.train.isImage {
            throw settingsError(flags, SettingError("augment_shift", "shifts and flips need images; \(source.data) holds \(data.train.width) features per sample"))
        }
        var runDirectory = ""
        if mpi.rank == 0 {
            runDirectory = point?.runDirectory ?? flags.runDir ?? defaultRunDirectory()
            try RunFiles.prepareDirectory(runDirectory)
            if point == nil { try RunFiles.claim(runDirectory, overwrite: flags.overwrite) }
        }
        var split: DataSplit
        if let validation = data.validation {
            split = DataSplit(train: data.train, validation: validation)
        } else {
            // Hand the training file over to the split without keeping a reference, so it is
            // shuffled in place rather than copied (47 MB less peak memory for Fashion-MNIST).
            let trainFile = data.train
            data.train = trainFile.emptied()
            split = DataSplit(trainFile, valFraction: config.valFraction, seed: config.seed)
        }
        let input = InputTransform.forTraining(split.train, normalization: config.normalize ?? .standard)
        if split.train.encoding == .floats {
            input.apply(to: &split.train.features)
            input.apply(to: &split.validation.features)
            input.apply(to: &data.test.features)
        }
        return TrainingSetup(config: config, split: split, test: data.test, source: source, input: input, warnings: data.warnings,
                             runDirectory: runDirectory,
                             job: JobShape(ranks: mpi.size, hosts: mpi.nodeCount, threadsPerRank: threads, hostNames: mpi.hostNames,
                                           transport: mpi.size > 1 ? mpi.transportSettings : [:]))
    }

    /// A setting the data refuses, presented like the flag (or --config key) that set it.
    static func settingsError(_ flags: TrainCommand, _ e: SettingError) -> TrainerError {
        flags.settings.present(e, configFile: flags.config)
    }

    /// runs/<timestamp>, with a suffix if that exists already.
    static func defaultRunDirectory() -> String {
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

    /// The sample counts and data directory, for config.json.
    var dataCounts: DataCounts {
        DataCounts(directory: dataDirectory, train: split.train.count, validation: split.validation.count, test: test.count)
    }
}
