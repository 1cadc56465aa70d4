// RunConfigFile: config.json, every setting of a run plus the job and data it ran on.
//
// Written by `train` at the start of a run, read by `summarize` and the scripts (plot_metrics.py,
// the sweep tools). Field names on disk are snake case (JSONCoding) and stable.
import CoreSupport
import Kernels
import Collectives
import Model
import Training

/// The contents of config.json.
struct RunConfigFile: Codable, Equatable {
    // The model.
    var model: Int
    var hidden: [Int]
    var dropoutAfter: [Bool]
    var inputWidth: Int
    var classes: Int
    /// "784-512-128-64-10".
    var widths: String
    // The recipe (TrainingConfig's settings).
    var epochs: Int
    var batchSize: Int
    var learningRates: [Double]
    var dropout: Double
    var seed: UInt64
    var valFraction: Double
    var optimizer: AdamVariant
    var batchNorm: BatchNormMode
    // Settings newer than the first config.json files (optional so that older run directories
    // still read).
    var precision: ProductPrecision?
    var gradientCompression: GradientCompression?
    var lrSchedule: LearningRateSchedule?
    var warmupEpochs: Double?
    var weightDecay: Double?
    var labelSmoothing: Double?
    var augmentShift: Int?
    var augmentFlip: Bool?
    var earlyStopping: Int?
    var accumulate: Int?
    // The job and the data.
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
    var version: String?
    var revision: String?

    init(config c: TrainingConfig, architecture arch: Architecture, job: JobShape, data: DataCounts, command: String, resumed: Bool) {
        model = c.model.rawValue
        hidden = arch.hidden
        dropoutAfter = arch.dropoutAfter
        inputWidth = arch.inputWidth
        classes = arch.classCount
        widths = arch.widthsDescription
        epochs = c.epochs
        batchSize = c.batchSize
        learningRates = c.learningRates
        dropout = c.dropout
        seed = c.seed
        valFraction = c.valFraction
        optimizer = c.optimizer
        batchNorm = c.batchNorm
        precision = c.precision
        gradientCompression = c.gradientCompression
        lrSchedule = c.lrSchedule
        warmupEpochs = c.warmupEpochs
        weightDecay = c.weightDecay
        labelSmoothing = c.labelSmoothing
        augmentShift = c.augmentShift
        augmentFlip = c.augmentFlip
        earlyStopping = c.earlyStopping
        accumulate = c.accumulate
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
}

/// Where the data came from and how many samples each split has.
struct DataCounts: Equatable {
    var directory: String
    var train: Int
    var validation: Int
    var test: Int
}
