// Checkpoint: a trainer's state as a safetensors file, and the typed values read back from one.
//
// Two kinds, both plain safetensors readable by any safetensors library:
//  - best: the model only (every Dense weight and bias, every BatchNorm scale, shift, running mean
//    and running variance) with its architecture, configuration and metrics in the metadata;
//  - last: the model plus everything needed to resume exactly — Adam's moments and step count,
//    the sweep position (learning rate, epoch, step within an interrupted epoch and its running
//    sums), the best model so far with its metrics, the metrics history and abandoned rates.
// Tensor names: ModelTensors.swift; metadata keys: CheckpointMetadata.swift. Nothing here touches
// files: see Safetensors and AtomicFile.

/// Building checkpoint files from a trainer.
public enum Checkpoint {
    /// Adam's moments in a `last` checkpoint, flat in ParameterLayout order.
    static let firstMoments = "optimizer.exp_avg", secondMoments = "optimizer.exp_avg_sq"
    /// Prefix of the best model's tensors inside a `last` checkpoint.
    static let bestPrefix = "best."

    /// The best model so far as a standalone checkpoint (nil before the first epoch); `job` fills
    /// the header's data directory, ranks and threads.
    public static func best(_ trainer: Trainer, job: CheckpointHeader) throws -> SafetensorsFile? {
        guard let best = trainer.best else { return nil }
        let arch = trainer.network.architecture
        var header = job
        header.kind = .best
        var metadata = try header.metadata()
        metadata["lr"] = String(best.record.lr)
        metadata["epoch"] = String(best.record.epoch)
        metadata["val_macro_f1"] = String(best.record.valMacroF1)
        metadata["val_accuracy"] = String(best.record.valAccuracy)
        metadata["val_loss"] = String(best.record.valLoss)
        metadata["record"] = try JSONCoding.text(best.record)
        return SafetensorsFile(tensors: best.state.tensors(arch), metadata: metadata)
    }

    /// Everything needed to continue the sweep exactly where it is.
    public static func last(_ trainer: Trainer, job: CheckpointHeader) throws -> SafetensorsFile {
        let net = trainer.network, arch = net.architecture
        var tensors = net.state.tensors(arch)
        tensors.append(Tensor(name: firstMoments, shape: [net.layout.count], values: trainer.adam.m.array))
        tensors.append(Tensor(name: secondMoments, shape: [net.layout.count], values: trainer.adam.v.array))
        if let best = trainer.best { tensors += best.state.tensors(arch, prefix: bestPrefix) }
        var header = job
        header.kind = .last
        let sweep = SweepState(
            position: trainer.position, optimizerStep: trainer.adam.step, history: trainer.history,
            best: trainer.best?.record, diverged: trainer.diverged,
            data: DataShape(trainSamples: trainer.train.count, validationSamples: trainer.validation.count,
                            inputWidth: trainer.train.width))
        let metadata = try header.metadata().merging(try sweep.metadata(learningRates: trainer.config.learningRates)) { a, _ in a }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }
}

/// A checkpoint's model (for a `last` checkpoint, its current model) and header: what `evaluate`,
/// `summarize` and the exporters need.
public struct ModelCheckpoint: Sendable {
    public var header: CheckpointHeader
    public var state: ModelState

    /// Reads and checks `file` (called `path` in errors).
    public init(_ file: SafetensorsFile, path: String) throws {
        header = try CheckpointHeader(file, path: path)
        state = try ModelState(file, arch: header.architecture, path: path)
    }

    /// A network holding this model, for evaluation in chunks of `capacity` rows, computing in the
    /// precision it was trained in.
    public func network(capacity: Int) throws -> Network {
        try header.config.precision.checkSupported()
        let net = Network(architecture: header.architecture, capacity: capacity, precision: header.config.precision)
        net.load(state)
        return net
    }
}

/// A `last` checkpoint read back in full, once: everything a resume needs.
public struct LastCheckpoint: Sendable {
    public var header: CheckpointHeader
    public var sweep: SweepState
    public var model: ModelState
    /// Adam's first and second moments.
    public var moments: (m: [Float], v: [Float])
    /// The best model so far, when the sweep has one.
    public var bestModel: ModelState?

    /// Reads and checks `file` (called `path` in errors); a `best` checkpoint is refused.
    public init(_ file: SafetensorsFile, path: String) throws {
        header = try CheckpointHeader(file, path: path)
        guard header.kind == .last else {
            throw TrainerError("\(path): a '\(header.kind.rawValue)' checkpoint has no optimizer state; resume needs last.safetensors")
        }
        let arch = header.architecture
        model = try ModelState(file, arch: arch, path: path)
        let count = ParameterLayout(arch).count
        moments = (try file.tensor(Checkpoint.firstMoments, shape: [count], file: path).values,
                   try file.tensor(Checkpoint.secondMoments, shape: [count], file: path).values)
        sweep = try SweepState(file, path: path)
        bestModel = sweep.best == nil ? nil : try ModelState(file, arch: arch, path: path, prefix: Checkpoint.bestPrefix)
    }
}
