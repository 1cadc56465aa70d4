// TrainingFlags: the command line's flag for every training setting, and how the flags given reach
// Core's TrainingConfig.
//
// A flag here is named after the TrainingConfig property it sets (`batchSize` → `--batch-size`; a
// few keep shorter historical names, see `flagNames`) and is nil unless given. The flags given are
// collected by name (`given`) and merged in Core (`TrainingConfig.merging`), which holds the rules
// for recipes and resumed runs; their help shows the defaults of `TrainingConfig()`. So a new
// setting is a property of TrainingConfig plus its flag here, and nothing else. Not here: flags
// that are not settings (threads, run directory, resume), which stay in TrainCommand.
import ArgumentParser
import Collectives
import CoreSupport
import Kernels
import Model
import Training

extension AdamVariant: ExpressibleByArgument {}
extension BatchNormMode: ExpressibleByArgument {}
extension ProductPrecision: ExpressibleByArgument {}
extension GradientCompression: ExpressibleByArgument {}
extension LearningRateSchedule: ExpressibleByArgument {}
extension ModelPreset: ExpressibleByArgument {}
extension FeatureNormalization: ExpressibleByArgument {}

struct TrainingFlags: ParsableArguments {
    @Option(help: setting("model", "The seed's model: 1 = 784-128-64-10, 2 = 784-512-128-64-10, 3 = 784-512-128-64-32-10."))
    var model: ModelPreset?

    @Option(help: setting("hidden", "Hidden widths overriding the preset's, e.g. 512,128,64 (dropout placement follows the preset).",
                          none: "the preset's", valueName: "w1,w2,..."),
            transform: { try flagValue(parseHiddenWidths($0)) })
    var hidden: [Int]?

    @Option(help: setting("epochs", "Epochs per learning rate; on --resume it may be raised to train longer."))
    var epochs: Int?

    @Option(help: setting("batch_size", "Global minibatch size, split across ranks; the last partial batch of an epoch is dropped."))
    var batchSize: Int?

    @Option(name: .customLong("lr"), help: setting("learning_rates", "Learning rate, or a comma-separated sweep, one fresh run per rate.", valueName: "lr[,lr...]"),
            transform: { try flagValue(parseLearningRates($0)) })
    var learningRates: [Double]?

    @Option(help: setting("dropout", "Dropout drop probability, as PyTorch's p (the seed's keep probability 0.5 is the same)."))
    var dropout: Double?

    @Option(help: setting("seed", "Seed of the split, initial weights, shuffles and dropout masks."))
    var seed: UInt64?

    @Option(help: setting("val_fraction", "Fraction of the training file held out for validation."))
    var valFraction: Double?

    @Option(help: setting("optimizer", "adam (bias-corrected, as PyTorch) or adam-seed (the notebook's update without bias correction)."))
    var optimizer: AdamVariant?

    @Option(name: .customLong("bn"), help: setting("batch_norm", "BatchNorm statistics across ranks: sync (global batch; rank-count invariant) or local (per shard, as PyTorch DDP)."))
    var batchNorm: BatchNormMode?

    @Option(help: setting("precision", "Number format of the matrix products: fp32, or bf16 (bfloat16 products with fp32 accumulation, master weights and optimizer, as PyTorch's CPU autocast; needs AVX512_BF16 or AMX)."))
    var precision: ProductPrecision?

    @Option(name: .customLong("grad-compression"), help: setting("gradient_compression", "Weight gradients between ranks: none (exact float32), bf16 or fp16 (16-bit transport, float32 sums, master weights and optimizer; half the traffic, not exact)."))
    var gradientCompression: GradientCompression?

    // MARK: Beyond the seed's recipe (all off by default)

    @Option(help: setting("lr_schedule", "Learning-rate schedule of each run: constant (the seed's), cosine (to zero), or step (×0.1 at 1/2 and 3/4 of the epochs)."))
    var lrSchedule: LearningRateSchedule?

    @Option(help: setting("warmup_epochs", "Epochs of linear warm-up to the base learning rate at the start of each run."))
    var warmupEpochs: Double?

    @Option(help: setting("weight_decay", "Decoupled weight decay (AdamW) of the Dense weights; biases and BatchNorm are not decayed."))
    var weightDecay: Double?

    @Option(help: setting("label_smoothing", "Label smoothing ε of the training loss."))
    var labelSmoothing: Double?

    /// Not a setting: `--augment` alone means `--augment-shift 2` (see `given`).
    @Flag(help: "Augment training images: random translations of up to 2 pixels (zero fill); the same as --augment-shift 2.")
    var augment = false

    @Option(help: setting("augment_shift", "The largest random translation of a training image in pixels (zero fill); 0: no augmentation."))
    var augmentShift: Int?

    @Flag(inversion: .prefixedNo, help: setting("augment_flip", "With augmentation: also flip training images horizontally at random."))
    var augmentFlip: Bool?

    @Option(help: setting("early_stopping", "Stop a learning rate's run when validation macro-F1 has not improved for this many epochs (0: never).", valueName: "patience"))
    var earlyStopping: Int?

    @Option(help: setting("normalize", "How real-valued features are scaled: standard (minus the training split's mean, over its standard deviation) or none; images are always scaled by 1/255.", none: "standard"))
    var normalize: FeatureNormalization?

    @Option(help: setting("accumulate", "Average the gradients of K minibatches before each reduction and optimizer step (gradient accumulation, as DDP's no_sync): K times fewer reductions per sample, for slow networks.", valueName: "K"))
    var accumulate: Int?

    // MARK: The flags given

    /// The settings given as flags, by setting key, with their values.
    var given: [String: any Encodable] {
        var values: [String: any Encodable] = [:]
        for child in Mirror(reflecting: self).children {
            guard let label = child.label, label.hasPrefix("_"), let flag = child.value as? GivenFlag, let value = flag.givenValue else { continue }
            let key = settingKey(String(label.dropFirst()))
            if TrainingConfig.settingKeys.contains(key) { values[key] = value }
        }
        if augment && values["augment_shift"] == nil { values["augment_shift"] = 2 }
        return values
    }

    // MARK: Flag names

    /// Settings whose flag is not their key in kebab case.
    static let flagNames = ["learning_rates": "--lr", "batch_norm": "--bn", "gradient_compression": "--grad-compression"]

    /// The flag that sets setting `key`.
    static func flag(_ key: String) -> String { flagNames[key] ?? "--" + key.replacingOccurrences(of: "_", with: "-") }

    /// A Core SettingError as the command line says it: by the flag, or for a setting that came
    /// from a --config file and not a flag, by the file and key.
    func present(_ error: SettingError, configFile: String?) -> TrainerError {
        if let configFile, given[error.setting] == nil { return TrainerError("--config \(configFile): \(error)", exitCode: ExitStatus.badInput) }
        return TrainerError(error.presented(naming: Self.flag), exitCode: ExitStatus.usage)
    }
}

/// Help for the flag of setting `key`: `abstract` and the default from `TrainingConfig()` (`none`
/// when the default is "not set").
func setting(_ key: String, _ abstract: String, none: String? = nil, valueName: String? = nil) -> ArgumentHelp {
    precondition(TrainingConfig.settingKeys.contains(key), "no setting \(key)")
    let value = TrainingConfig.defaultText(key)
    return ArgumentHelp("\(abstract) (default: \(value == "none" ? none ?? value : value))", valueName: valueName)
}

/// A parsed flag value, or the problem of a SettingError as ArgumentParser's message for the flag.
func flagValue<T>(_ parse: @autoclosure () throws -> T) throws -> T {
    do { return try parse() } catch let e as SettingError { throw ValidationError(e.problem) }
}

/// An ArgumentParser property wrapper whose value may have been given.
protocol GivenFlag { var givenValue: (any Encodable)? { get } }

extension Option: GivenFlag {
    var givenValue: (any Encodable)? { unwrapGiven(wrappedValue) }
}

extension Flag: GivenFlag {
    var givenValue: (any Encodable)? { unwrapGiven(wrappedValue) }
}

/// The value inside an optional flag's value, nil when the flag was not given (or is not optional).
private func unwrapGiven(_ value: Any) -> (any Encodable)? {
    let mirror = Mirror(reflecting: value)
    guard mirror.displayStyle == .optional, let inner = mirror.children.first?.value else { return nil }
    return inner as? any Encodable
}
