// TrainingConfig: every setting that determines a run's numbers, and its validation.
//
// The one description of a run's settings: a property here, with its default, is a setting. Its
// key in files is the property's name in snake case (`batchSize` → `batch_size`); config.json,
// `--config` recipes and checkpoint metadata all encode this type (synthesized Codable), and the
// command line's flags are merged into it by name (SettingValues.swift). Settings that only affect
// speed or where files go (threads, run directory) are not part of it.
import Collectives
import CoreSupport
import Foundation
import Kernels
import Model

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
    /// How real-valued features (a CSV's, a .npz's floats) are scaled: standardised with the
    /// training split's statistics (nil, the default, means `standard`) or left as they are. Images
    /// (bytes) are always scaled by 1/255.
    public var normalize: FeatureNormalization? = nil

    public init() {}

    /// Samples behind one optimizer step: the global minibatch times the accumulated minibatches.
    public var samplesPerStep: Int { batchSize * accumulate }

    /// The network for data of `inputWidth` pixels and `classCount` classes.
    public func architecture(inputWidth: Int, classCount: Int) -> Architecture {
        model.architecture(inputWidth: inputWidth, classCount: classCount, hidden: hidden)
    }

    /// Checks ranges that do not depend on the data, and that this CPU can compute in the chosen
    /// precision; a SettingError naming the setting on failure.
    public func validate() throws {
        try validateValues()
        try precision.checkSupported()
    }

    /// The range checks of `validate` alone (for configurations read from files, which may have been
    /// written on another CPU).
    public func validateValues() throws(SettingError) {
        func check(_ ok: Bool, _ setting: String, _ problem: @autoclosure () -> String) throws(SettingError) {
            if !ok { throw SettingError(setting, problem()) }
        }
        try check((1...1_000_000).contains(epochs), "epochs", "expected 1 to 1000000, found \(epochs)")
        try check((1...(1 << 24)).contains(batchSize), "batch_size", "expected 1 to \(1 << 24), found \(batchSize)")
        try check(!learningRates.isEmpty, "learning_rates", "expected at least one learning rate")
        for lr in learningRates { try check(lr > 0 && lr.isFinite, "learning_rates", "expected positive learning rates, found \(lr)") }
        try check(dropout >= 0 && dropout < 1, "dropout", "expected a drop probability in [0, 1), found \(dropout)")
        try check(valFraction > 0 && valFraction < 1, "val_fraction", "expected a value strictly between 0 and 1, found \(valFraction)")
        if let hidden {
            try check(!hidden.isEmpty && hidden.count <= 64 && hidden.allSatisfy({ (1...(1 << 20)).contains($0) }), "hidden",
                      "expected 1 to 64 positive layer widths of at most \(1 << 20), found \(hidden)")
        }
        try check(warmupEpochs >= 0 && warmupEpochs <= Double(epochs), "warmup_epochs",
                  "expected 0 to `epochs` (\(epochs)), found \(warmupEpochs)")
        try check(weightDecay >= 0 && weightDecay < 1, "weight_decay", "expected a value in [0, 1), found \(weightDecay)")
        try check(labelSmoothing >= 0 && labelSmoothing < 1, "label_smoothing", "expected a value in [0, 1), found \(labelSmoothing)")
        try check((0...8).contains(augmentShift), "augment_shift", "expected 0 to 8 pixels, found \(augmentShift)")
        try check(!augmentFlip || augmentShift > 0, "augment_flip", "needs random shifts too (`augment_shift` > 0)")
        try check(earlyStopping >= 0, "early_stopping", "expected a number of epochs ≥ 0, found \(earlyStopping)")
        try check((1...4096).contains(accumulate), "accumulate", "expected 1 to 4096 minibatches per step, found \(accumulate)")
    }

    /// Checks the settings against the data and the number of ranks.
    public func validate(trainingSamples: Int, ranks: Int) throws(SettingError) {
        if batchSize < ranks {
            throw SettingError("batch_size", "\(batchSize) is smaller than the number of ranks (\(ranks)); every rank needs at least one sample per step")
        }
        if batchSize > trainingSamples {
            throw SettingError("batch_size", "\(batchSize) is larger than the training split (\(trainingSamples) samples)")
        }
        if samplesPerStep > trainingSamples {
            throw SettingError("accumulate", "\(accumulate) minibatches of \(batchSize) are \(samplesPerStep) samples per step, more than the training split (\(trainingSamples))")
        }
    }
}

/// Parses a comma-separated list of learning rates (`0.005,0.001`).
public func parseLearningRates(_ text: String) throws -> [Double] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    var rates: [Double] = []
    for p in parts {
        guard let v = Double(p), v.isFinite, v > 0 else {
            throw SettingError("learning_rates", "expected positive numbers separated by commas (e.g. 0.005,0.001), found '\(p)' in '\(text)'")
        }
        rates.append(v)
    }
    return rates
}
