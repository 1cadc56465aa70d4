// Checkpoint: a trainer's state as a safetensors file, and back.
//
// Two kinds, both plain safetensors readable by any safetensors library:
//  - best: the model only (every Dense weight and bias, every BatchNorm scale, shift, running mean
//    and running variance) with its architecture, configuration and metrics in the metadata;
//  - last: the model plus everything needed to resume exactly — Adam's moments and step count,
//    the sweep position (learning rate, epoch, step within an interrupted epoch and its running
//    sums), the best model so far with its metrics, the metrics history and abandoned rates.
// Tensor names are stable and readable: layers.{i}.dense.weight [fan_in × fan_out] (the seed's
// layout, y = x·W + b), layers.{i}.dense.bias, layers.{i}.bn.{weight,bias,running_mean,running_var},
// head.weight, head.bias. Nothing here touches files: see Safetensors and AtomicFile.
import Foundation

/// Building and reading checkpoint files.
public enum Checkpoint {
    /// Metadata value of `format`; readers refuse other formats.
    public static let format = "dist-trainer"
    /// Metadata value of `format_version`.
    public static let formatVersion = "1"

    // MARK: - Model tensors

    /// The named tensors of a model held in flat `parameters` and `running` buffers.
    public static func modelTensors(_ arch: Architecture, parameters: [Float], running: [Float]) -> [Tensor] {
        let layout = ParameterLayout(arch), stats = RunningStatsLayout(arch)
        precondition(parameters.count == layout.count && running.count == stats.count)
        func slice(_ a: [Float], _ offset: Int, _ n: Int) -> [Float] { Array(a[offset..<(offset + n)]) }
        var tensors: [Tensor] = []
        for l in 0..<arch.blockCount {
            let d = layout.dense[l], n = layout.norm[l]
            tensors += [
                Tensor(name: "layers.\(l).dense.weight", shape: [d.fanIn, d.fanOut], values: slice(parameters, d.weight, d.fanIn * d.fanOut)),
                Tensor(name: "layers.\(l).dense.bias", shape: [d.fanOut], values: slice(parameters, d.bias, d.fanOut)),
                Tensor(name: "layers.\(l).bn.weight", shape: [n.width], values: slice(parameters, n.scale, n.width)),
                Tensor(name: "layers.\(l).bn.bias", shape: [n.width], values: slice(parameters, n.shift, n.width)),
                Tensor(name: "layers.\(l).bn.running_mean", shape: [n.width], values: slice(running, stats.mean[l], n.width)),
                Tensor(name: "layers.\(l).bn.running_var", shape: [n.width], values: slice(running, stats.variance[l], n.width)),
            ]
        }
        let h = layout.head
        tensors += [
            Tensor(name: "head.weight", shape: [h.fanIn, h.fanOut], values: slice(parameters, h.weight, h.fanIn * h.fanOut)),
            Tensor(name: "head.bias", shape: [h.fanOut], values: slice(parameters, h.bias, h.fanOut)),
        ]
        return tensors
    }

    /// Reads the model tensors of `file` (named `path` in errors) into flat buffers for `arch`;
    /// `prefix` selects e.g. the best model stored inside a last checkpoint.
    public static func readModel(_ file: SafetensorsFile, arch: Architecture, path: String, prefix: String = "")
        throws -> (parameters: [Float], running: [Float])
    {
        let layout = ParameterLayout(arch), stats = RunningStatsLayout(arch)
        var parameters = [Float](repeating: 0, count: layout.count)
        var running = [Float](repeating: 0, count: stats.count)
        func copy(_ name: String, _ shape: [Int], into a: inout [Float], at offset: Int) throws {
            let t = try file.tensor(prefix + name, shape: shape, file: path)
            a.replaceSubrange(offset..<(offset + t.values.count), with: t.values)
        }
        for l in 0..<arch.blockCount {
            let d = layout.dense[l], n = layout.norm[l]
            try copy("layers.\(l).dense.weight", [d.fanIn, d.fanOut], into: &parameters, at: d.weight)
            try copy("layers.\(l).dense.bias", [d.fanOut], into: &parameters, at: d.bias)
            try copy("layers.\(l).bn.weight", [n.width], into: &parameters, at: n.scale)
            try copy("layers.\(l).bn.bias", [n.width], into: &parameters, at: n.shift)
            try copy("layers.\(l).bn.running_mean", [n.width], into: &running, at: stats.mean[l])
            try copy("layers.\(l).bn.running_var", [n.width], into: &running, at: stats.variance[l])
        }
        let h = layout.head
        try copy("head.weight", [h.fanIn, h.fanOut], into: &parameters, at: h.weight)
        try copy("head.bias", [h.fanOut], into: &parameters, at: h.bias)
        for (l, w) in arch.hidden.enumerated() {
            for j in 0..<w where !(running[stats.variance[l] + j] >= 0) || !running[stats.mean[l] + j].isFinite {
                throw TrainerError("\(path): \(prefix)layers.\(l).bn running statistics at unit \(j) are invalid (variance must be finite and ≥ 0)")
            }
        }
        return (parameters, running)
    }

    /// A network holding the (top-level) model of `file`, for evaluation in chunks of `capacity` rows.
    public static func network(_ file: SafetensorsFile, path: String, capacity: Int) throws -> Network {
        let (_, arch, _) = try describe(file, path: path)
        let model = try readModel(file, arch: arch, path: path)
        let net = Network(architecture: arch, capacity: capacity)
        net.load(parameters: model.parameters, runningStats: model.running)
        return net
    }

    // MARK: - Metadata

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ file: SafetensorsFile, key: String, path: String) throws -> T {
        let text = try file.metadata(key, file: path)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(type, from: Data(text.utf8)) } catch {
            throw TrainerError("\(path): metadata '\(key)' is not valid (\(error))")
        }
    }

    /// Metadata every checkpoint carries: format, architecture, configuration.
    static func commonMetadata(kind: String, arch: Architecture, config: TrainingConfig) -> [String: String] {
        [
            "format": format, "format_version": formatVersion, "kind": kind,
            "architecture": json(arch), "widths": arch.widthsDescription,
            "dropout_after": arch.dropoutAfter.map { $0 ? "1" : "0" }.joined(separator: ","),
            "model": String(config.model.rawValue), "config": json(config), "seed": String(config.seed),
        ]
    }

    /// The architecture and configuration stored in `file`, after checking it is ours.
    public static func describe(_ file: SafetensorsFile, path: String) throws -> (kind: String, architecture: Architecture, config: TrainingConfig) {
        let fmt = try file.metadata("format", file: path)
        guard fmt == format else { throw TrainerError("\(path): not a dist-trainer checkpoint (format '\(fmt)')") }
        let version = try file.metadata("format_version", file: path)
        guard version == formatVersion else {
            throw TrainerError("\(path): checkpoint format version \(version), this dist-trainer reads version \(formatVersion)")
        }
        let arch = try decode(Architecture.self, file, key: "architecture", path: path)
        guard arch.hidden.count == arch.dropoutAfter.count, arch.inputWidth > 0, arch.classCount > 1,
              arch.hidden.allSatisfy({ $0 > 0 }) else {
            throw TrainerError("\(path): metadata 'architecture' describes an impossible network (\(arch.widthsDescription))")
        }
        return (try file.metadata("kind", file: path), arch, try decode(TrainingConfig.self, file, key: "config", path: path))
    }

    // MARK: - Best and last

    /// The best model so far as a standalone checkpoint.
    public static func best(_ trainer: Trainer) -> SafetensorsFile? {
        guard let best = trainer.best else { return nil }
        let arch = trainer.network.architecture
        var metadata = commonMetadata(kind: "best", arch: arch, config: trainer.config)
        metadata["lr"] = String(best.record.lr)
        metadata["epoch"] = String(best.record.epoch)
        metadata["val_macro_f1"] = String(best.record.valMacroF1)
        metadata["val_accuracy"] = String(best.record.valAccuracy)
        metadata["val_loss"] = String(best.record.valLoss)
        metadata["record"] = json(best.record)
        return SafetensorsFile(tensors: modelTensors(arch, parameters: best.parameters, running: best.runningStats), metadata: metadata)
    }

    /// Everything needed to continue the sweep exactly where it is; `extra` adds metadata (e.g. the
    /// data directory, so a resume finds the same data by default).
    public static func last(_ trainer: Trainer, extra: [String: String] = [:]) -> SafetensorsFile {
        let net = trainer.network, arch = net.architecture
        var tensors = modelTensors(arch, parameters: net.parameters.array, running: net.runningStats.array)
        tensors.append(Tensor(name: "optimizer.exp_avg", shape: [net.layout.count], values: trainer.adam.m.array))
        tensors.append(Tensor(name: "optimizer.exp_avg_sq", shape: [net.layout.count], values: trainer.adam.v.array))
        if let best = trainer.best {
            tensors += modelTensors(arch, parameters: best.parameters, running: best.runningStats).map {
                Tensor(name: "best." + $0.name, shape: $0.shape, values: $0.values)
            }
        }
        var metadata = commonMetadata(kind: "last", arch: arch, config: trainer.config)
        metadata["position"] = json(trainer.position)
        // Readable at a glance: the learning rate in progress and its finished epochs.
        let lrs = trainer.config.learningRates
        metadata["lr"] = String(lrs[min(trainer.position.lrIndex, lrs.count - 1)])
        metadata["epoch"] = String(trainer.position.epochsDone)
        if let last = trainer.history.last {
            metadata["val_macro_f1"] = String(last.valMacroF1)
            metadata["val_accuracy"] = String(last.valAccuracy)
            metadata["val_loss"] = String(last.valLoss)
        }
        metadata["optimizer_step"] = String(trainer.adam.step)
        metadata["history"] = json(trainer.history)
        metadata["best"] = trainer.best.map { json($0.record) } ?? "null"
        metadata["diverged"] = json(trainer.diverged)
        metadata["data"] = json(["train_samples": trainer.train.count, "validation_samples": trainer.validation.count,
                                 "input_width": trainer.train.width])
        metadata.merge(extra) { ours, _ in ours }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }
}

extension Trainer {
    /// Restores the state saved by `Checkpoint.last` (the trainer must have been built with the
    /// checkpoint's configuration, except that `epochs` may have been raised).
    public func restore(from file: SafetensorsFile, path: String) throws {
        let (kind, arch, _) = try Checkpoint.describe(file, path: path)
        guard kind == "last" else {
            throw TrainerError("\(path): a '\(kind)' checkpoint has no optimizer state; resume needs last.safetensors")
        }
        guard arch == network.architecture else {
            throw TrainerError("\(path): checkpoint is for model \(arch.widthsDescription), the data and flags give \(network.architecture.widthsDescription)")
        }
        let data = try Checkpoint.decode([String: Int].self, file, key: "data", path: path)
        guard data["train_samples"] == train.count, data["validation_samples"] == validation.count else {
            throw TrainerError("\(path): checkpoint was trained on \(data["train_samples"] ?? 0) train / \(data["validation_samples"] ?? 0) validation samples, the data gives \(train.count) / \(validation.count)")
        }
        let model = try Checkpoint.readModel(file, arch: arch, path: path)
        network.load(parameters: model.parameters, runningStats: model.running)
        let count = network.layout.count
        adam.m.load(try file.tensor("optimizer.exp_avg", shape: [count], file: path).values)
        adam.v.load(try file.tensor("optimizer.exp_avg_sq", shape: [count], file: path).values)
        guard let step = Int(try file.metadata("optimizer_step", file: path)), step >= 0 else {
            throw TrainerError("\(path): metadata 'optimizer_step' is not a count")
        }
        adam.step = step
        position = try Checkpoint.decode(TrainingPosition.self, file, key: "position", path: path)
        history = try Checkpoint.decode([EpochRecord].self, file, key: "history", path: path)
        diverged = try Checkpoint.decode([Int].self, file, key: "diverged", path: path)
        if let record = try Checkpoint.decode(EpochRecord?.self, file, key: "best", path: path) {
            let bestModel = try Checkpoint.readModel(file, arch: arch, path: path, prefix: "best.")
            best = BestModel(record: record, parameters: bestModel.parameters, runningStats: bestModel.running)
        } else {
            best = nil
        }
        guard position.lrIndex <= config.learningRates.count, position.stepInEpoch <= stepsPerEpoch else {
            throw TrainerError("\(path): checkpoint position (lr \(position.lrIndex), step \(position.stepInEpoch)) does not fit the configuration")
        }
    }
}
