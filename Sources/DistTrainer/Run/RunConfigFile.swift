// RunConfigFile: config.json — every setting of a run (TrainingConfig itself, at the top level, so
// the file is a recipe: `--config config.json` replays the run) plus the record of the network, the
// job and the data it ran on.
//
// Written by `train` at the start of a run, read by `summarize`, `--config` and the scripts
// (plot_metrics.py, bench_hosts.sh, the Slurm test). Field names on disk are snake case
// (JSONCoding) and stable.
import CoreSupport
import Foundation
import Model
import Training

/// The contents of config.json: the settings and the record, side by side in one JSON object.
struct RunConfigFile: Codable, Equatable {
    var settings: TrainingConfig
    var record: RunRecord

    init(settings: TrainingConfig, record: RunRecord) {
        self.settings = settings
        self.record = record
    }

    init(from decoder: Decoder) throws {
        settings = try TrainingConfig(from: decoder)
        record = try RunRecord(from: decoder)
    }

    func encode(to encoder: Encoder) throws {
        try settings.encode(to: encoder)
        try record.encode(to: encoder)
    }

    /// The object of settings in a `--config` file's bytes: a recipe's whole object, or from a run's
    /// config.json everything but the record's keys.
    static func settingsObject(_ bytes: [UInt8]) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw TrainerError("expected a JSON object of settings")
        }
        let recordKeys = Set(RunRecord.CodingKeys.allCases.map { settingKey($0.stringValue) })
        return object.filter { !recordKeys.contains($0.key) }
    }
}

/// What config.json records besides the settings: the network, the job, the data, the program.
struct RunRecord: Codable, Equatable {
    /// The network the settings and the data gave, and its widths as "784-512-128-64-10".
    var architecture: Architecture
    var widths: String
    var ranks: Int
    var hosts: Int
    var threadsPerRank: Int
    var dataDir: String
    var trainSamples: Int
    var validationSamples: Int
    var testSamples: Int
    /// The command line of the process that wrote the file (rank 0's).
    var command: String
    var resumed: Bool
    /// dist-trainer's version and the source revision of the binary.
    var version: String
    var revision: String

    /// The keys (declared, so `--config` can tell a record's keys from a misspelled setting; the
    /// compiler refuses a property missing here).
    enum CodingKeys: String, CodingKey, CaseIterable {
        case architecture, widths, ranks, hosts, threadsPerRank, dataDir, trainSamples, validationSamples, testSamples
        case command, resumed, version, revision
    }

    init(architecture arch: Architecture, job: JobShape, data: DataCounts, command: String, resumed: Bool) {
        architecture = arch
        widths = arch.widthsDescription
        ranks = job.ranks
        hosts = job.hosts
        threadsPerRank = job.threadsPerRank
        dataDir = data.directory
        trainSamples = data.train
        validationSamples = data.validation
        testSamples = data.test
        self.command = command
        self.resumed = resumed
        version = DistTrainerVersion.number
        revision = BuildDescription.revision
    }
}

/// The shape of the MPI job: ranks, hosts and threads per rank.
struct JobShape: Equatable {
    var ranks: Int
    var hosts: Int
    var threadsPerRank: Int
    /// Each rank's host name (index = rank).
    var hostNames: [String] = []
    /// MPI's shared-memory transport parameters as it reports them (MPICollective.transportSettings).
    var transport: [String: Int] = [:]
}

/// Where the data came from and how many samples each split has.
struct DataCounts: Equatable {
    var directory: String
    var train: Int
    var validation: Int
    var test: Int
}
