// TrainingConfig: every setting that determines a run's numbers, and its validation.
//
// The CLI builds one of these from flags; checkpoints store it so that a resumed run uses the
// same math. Settings that only affect speed or where files go (threads, run directory) are not
// part of it.
import CoreSupport
import Kernels
import Collectives
import Model
import Foundation

/// The settings that determine a training run's results.
public struct TrainingConfig: Codable, Equatable, Sendable {
    /// Seed preset (1, 2, 3); `hidden` may override its widths.
    public var model: ModelPreset = .model2
    /// Hidden widths; nil means the preset's.
    public var hidden: [Int]? = nil
    public var epochs: Int = 10
    /// Global minibatch size, split across ranks.
    public var batchSize: Int = 128
    /// One run per learning rate, in order (the seed's sweep by default).
    public var learningRates: [Double] = [0.005, 0.001, 0.0005, 0.0001]
    /// Dropout drop probability (PyTorch's p); keep probability is 1 − dropout.
    public var dropout: Double = 0.5
    public var seed: UInt64 = 12
    /// Fraction of the training file held out for validation.
    public var valFraction: Double = 0.2
    public var optimizer: AdamVariant = .adam
    public var batchNorm: BatchNormMode = .sync
    /// Number format of the matrix products (fp32, or bf16 with fp32 accumulation and master weights).
    public var precision: ProductPrecision = .fp32
    /// How the weight gradients travel between ranks (none: exact float32).
    public var gradientCompression: GradientCompression = .none
    // Beyond the seed's recipe; every one off by default.
    /// How the learning rate moves over each run (the base rate is the sweep's).
    public var lrSchedule: LearningRateSchedule = .constant
    /// Epochs of linear warm-up to the base rate at the start of each run.
    public var warmupEpochs: Double = 0
    /// Decoupled weight decay (AdamW) of the Dense weights; biases and BatchNorm are not decayed.
    public var weightDecay: Double = 0
    /// Label smoothing ε of the training loss (validation and test report plain cross-entropy).
    public var labelSmoothing: Double = 0
    /// Random translations of up to this many pixels (zero fill) of each training image; 0: none.
    public var augmentShift: Int = 0
    /// Random horizontal flips of training images (with augmentation).
    public var augmentFlip: Bool = false
    /// Stop a learning rate's run when validation macro-F1 has not improved for this many epochs; 0: never.
    public var earlyStopping: Int = 0
    /// Minibatches of `batchSize` whose gradients are averaged before one reduction and optimizer
    /// step (gradient accumulation, as DDP's `no_sync`); 1: none. BatchNorm normalises each
    /// minibatch on its own, so this is not the same as a K times larger batch.
    public var accumulate: Int = 1

    public init() {}

    /// Samples behind one optimizer step: the global minibatch times the accumulated minibatches.
    public var samplesPerStep: Int { batchSize * accumulate }

    /// The network for data of `inputWidth` pixels and `classCount` classes.
    public func architecture(inputWidth: Int, classCount: Int) -> Architecture {
        model.architecture(inputWidth: inputWidth, classCount: classCount, hidden: hidden)
    }

    /// Checks ranges that do not depend on the data, and that this CPU can compute in the chosen
    /// precision; one line naming the flag on failure.
    public func validate() throws {
        try validateValues()
        try precision.checkSupported()
    }

    /// The range checks of `validate` alone (for configurations read from files).
    public func validateValues() throws {
        if epochs < 1 { throw TrainerError("--epochs: expected at least 1, found \(epochs)") }
        if batchSize < 1 { throw TrainerError("--batch-size: expected at least 1, found \(batchSize)") }
        if learningRates.isEmpty { throw TrainerError("--lr: expected at least one learning rate") }
        for lr in learningRates where !(lr > 0 && lr.isFinite) {
            throw TrainerError("--lr: expected positive learning rates, found \(lr)")
        }
        if !(dropout >= 0 && dropout < 1) {
            throw TrainerError("--dropout: expected a drop probability in [0, 1), found \(dropout)")
        }
        if !(valFraction > 0 && valFraction < 1) {
            throw TrainerError("--val-fraction: expected a value strictly between 0 and 1, found \(valFraction)")
        }
        if let hidden, hidden.isEmpty || hidden.count > 64 || hidden.contains(where: { $0 < 1 || $0 > 1 << 20 }) {
            throw TrainerError("--hidden: expected 1 to 64 positive layer widths of at most \(1 << 20), found \(hidden)")
        }
        if epochs > 1_000_000 { throw TrainerError("--epochs: expected at most 1000000, found \(epochs)") }
        if !(warmupEpochs >= 0 && warmupEpochs <= Double(epochs)) {
            throw TrainerError("--warmup-epochs: expected 0 to --epochs (\(epochs)), found \(warmupEpochs)")
        }
        if !(weightDecay >= 0 && weightDecay < 1) { throw TrainerError("--weight-decay: expected a value in [0, 1), found \(weightDecay)") }
        if !(labelSmoothing >= 0 && labelSmoothing < 1) { throw TrainerError("--label-smoothing: expected a value in [0, 1), found \(labelSmoothing)") }
        if !(0...8).contains(augmentShift) { throw TrainerError("--augment-shift: expected 0 to 8 pixels, found \(augmentShift)") }
        if augmentFlip && augmentShift == 0 { throw TrainerError("--augment-flip: needs --augment (random shifts) too") }
        if earlyStopping < 0 { throw TrainerError("--early-stopping: expected a number of epochs ≥ 0, found \(earlyStopping)") }
        if batchSize > 1 << 24 { throw TrainerError("--batch-size: expected at most \(1 << 24), found \(batchSize)") }
        if !(1...4096).contains(accumulate) { throw TrainerError("--accumulate: expected 1 to 4096 minibatches per step, found \(accumulate)") }
    }

    /// Checks the settings against the data and the number of ranks.
    public func validate(trainingSamples: Int, ranks: Int) throws {
        if batchSize < ranks {
            throw TrainerError("--batch-size: \(batchSize) is smaller than the number of ranks (\(ranks)); every rank needs at least one sample per step")
        }
        if batchSize > trainingSamples {
            throw TrainerError("--batch-size: \(batchSize) is larger than the training split (\(trainingSamples) samples)")
        }
        if samplesPerStep > trainingSamples {
            throw TrainerError("--accumulate: \(accumulate) minibatches of \(batchSize) are \(samplesPerStep) samples per step, more than the training split (\(trainingSamples))")
        }
    }
}

/// Parses a comma-separated list of learning rates (`--lr 0.005,0.001`).
public func parseLearningRates(_ text: String) throws -> [Double] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    var rates: [Double] = []
    for p in parts {
        guard let v = Double(p), v.isFinite, v > 0 else {
            throw TrainerError("--lr: expected positive numbers separated by commas (e.g. 0.005,0.001), found '\(p)' in '\(text)'")
        }
        rates.append(v)
    }
    return rates
}

extension TrainingConfig {
    /// Reads a configuration in which any setting may be missing (a checkpoint or config file
    /// written before the setting existed, or a partial file): a missing setting takes its default.
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func read<T: Decodable>(_ key: CodingKeys, _ path: WritableKeyPath<TrainingConfig, T>) throws {
            if let value = try c.decodeIfPresent(T.self, forKey: key) { self[keyPath: path] = value }
        }
        try read(.model, \.model)
        hidden = try c.decodeIfPresent([Int].self, forKey: .hidden)
        try read(.epochs, \.epochs)
        try read(.batchSize, \.batchSize)
        try read(.learningRates, \.learningRates)
        try read(.dropout, \.dropout)
        try read(.seed, \.seed)
        try read(.valFraction, \.valFraction)
        try read(.optimizer, \.optimizer)
        try read(.batchNorm, \.batchNorm)
        try read(.precision, \.precision)
        try read(.gradientCompression, \.gradientCompression)
        try read(.lrSchedule, \.lrSchedule)
        try read(.warmupEpochs, \.warmupEpochs)
        try read(.weightDecay, \.weightDecay)
        try read(.labelSmoothing, \.labelSmoothing)
        try read(.augmentShift, \.augmentShift)
        try read(.augmentFlip, \.augmentFlip)
        try read(.earlyStopping, \.earlyStopping)
        try read(.accumulate, \.accumulate)
    }
}
