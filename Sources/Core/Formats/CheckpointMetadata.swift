// CheckpointMetadata: the typed contents of a checkpoint's string metadata, and their on-disk keys.
//
// safetensors metadata is a flat map of strings. Every checkpoint carries a header (format, kind,
// architecture, configuration, the job that wrote it); a `last` checkpoint adds the sweep state
// that a resume needs besides tensors. Structured values are compact JSON (JSONCoding); a few
// plain copies (`widths`, `lr`, `epoch`, `val_macro_f1`, ...) are there for people and tools that
// read the metadata directly, and are never read back. The keys are stable: scripts and users read
// them.
import CoreSupport
import Foundation
import Model
import Training

/// Which of the two checkpoint files this is.
public enum CheckpointKind: String, Codable, Sendable {
    /// The model only (best.safetensors).
    case best
    /// Everything needed to resume (last.safetensors).
    case last
}

/// What every checkpoint says about itself.
public struct CheckpointHeader: Equatable, Sendable {
    /// Metadata value of `format`; readers refuse other formats.
    public static let format = "dist-trainer"
    /// Metadata value of `format_version`.
    public static let formatVersion = "1"

    public var kind: CheckpointKind
    public var architecture: Architecture
    public var config: TrainingConfig
    /// The job that wrote it: where its data was (so a resume or an evaluation finds the same data
    /// by default), its ranks and threads per rank. Absent in files written by other tools.
    public var dataDirectory: String?
    public var ranks: Int?
    public var threadsPerRank: Int?
    /// The program that wrote it, with version and source revision.
    public var producer: String?
    /// Where the data was and how it was read (files of older versions: only `dataDirectory`).
    public var dataSource: DataSource?
    /// The classes' names by label, and the scaling of the raw inputs (older files: none; their
    /// data was Fashion-MNIST's bytes, scaled by 1/255).
    public var classNames: [String]?
    public var input: InputTransform?

    /// Where the data was: the recorded source, or an older file's data directory.
    public var recordedSource: DataSource? { dataSource ?? dataDirectory.map { DataSource(data: $0) } }

    /// The transform a file's raw values need before this model sees them.
    public var inputTransform: InputTransform { input ?? .bytes(width: architecture.inputWidth) }

    public init(kind: CheckpointKind, architecture: Architecture, config: TrainingConfig,
                dataDirectory: String? = nil, ranks: Int? = nil, threadsPerRank: Int? = nil, producer: String? = nil) {
        self.kind = kind
        self.architecture = architecture
        self.config = config
        self.dataDirectory = dataDirectory
        self.ranks = ranks
        self.threadsPerRank = threadsPerRank
        self.producer = producer
    }

    /// The header as metadata entries.
    func metadata() throws -> [String: String] {
        var m = [
            "format": Self.format, "format_version": Self.formatVersion, "kind": kind.rawValue,
            "architecture": try JSONCoding.text(architecture), "widths": architecture.widthsDescription,
            "dropout_after": architecture.dropoutAfter.map { $0 ? "1" : "0" }.joined(separator: ","),
            "model": String(config.model.rawValue), "config": try JSONCoding.text(config), "seed": String(config.seed),
        ]
        m["data_dir"] = dataDirectory
        m["ranks"] = ranks.map(String.init)
        m["threads_per_rank"] = threadsPerRank.map(String.init)
        m["dist_trainer_version"] = producer
        m["data_source"] = try dataSource.map { try JSONCoding.text($0) }
        m["class_names"] = try classNames.map { try JSONCoding.text($0) }
        m["input_transform"] = try input.map { try JSONCoding.text($0) }
        return m
    }

    /// The checkpoint's settings: complete (every setting present: a missing one would resume with
    /// its default, another run than the one saved) and valid.
    static func settings(_ file: SafetensorsFile, path: String) throws -> TrainingConfig {
        let text = try file.metadata("config", file: path)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw TrainerError("\(path): metadata 'config' is not a JSON object of settings")
        }
        do {
            let config = try TrainingConfig(complete: object)
            try config.validateValues()
            return config
        } catch {
            throw TrainerError("\(path): metadata 'config' is not valid (\(error))")
        }
    }

    /// Reads and checks the header of `file` (called `path` in errors): it must be ours, of this
    /// format version, and describe a possible network.
    public init(_ file: SafetensorsFile, path: String) throws {
        let format = try file.metadata("format", file: path)
        guard format == Self.format else { throw TrainerError("\(path): not a dist-trainer checkpoint (format '\(format)')") }
        let version = try file.metadata("format_version", file: path)
        guard version == Self.formatVersion else {
            throw TrainerError("\(path): checkpoint format version \(version), this dist-trainer reads version \(Self.formatVersion)")
        }
        let kindText = try file.metadata("kind", file: path)
        guard let kind = CheckpointKind(rawValue: kindText) else {
            throw TrainerError("\(path): metadata 'kind' is '\(kindText)', expected 'best' or 'last'")
        }
        let arch = try file.decodeMetadata(Architecture.self, key: "architecture", path: path)
        // Sized from a file: every count must fit the tensors the file really holds before any
        // buffer is allocated from it.
        let floats = file.tensors.reduce(0) { $0 + $1.values.count }
        guard arch.hidden.count == arch.dropoutAfter.count, arch.inputWidth > 0, arch.classCount > 1, arch.blockCount <= 64,
              arch.hidden.allSatisfy({ $0 > 0 }), arch.parameterCount(limit: floats) != nil else {
            throw TrainerError("\(path): metadata 'architecture' describes an impossible network (\(arch.widthsDescription)) for the \(floats) values the file holds")
        }
        let config = try Self.settings(file, path: path)
        self.init(kind: kind, architecture: arch, config: config,
                  dataDirectory: file.metadata["data_dir"], ranks: file.metadata["ranks"].flatMap { Int($0) },
                  threadsPerRank: file.metadata["threads_per_rank"].flatMap { Int($0) }, producer: file.metadata["dist_trainer_version"])
        dataSource = file.metadata["data_source"] == nil ? nil : try file.decodeMetadata(DataSource.self, key: "data_source", path: path)
        classNames = file.metadata["class_names"] == nil ? nil : try file.decodeMetadata([String].self, key: "class_names", path: path)
        input = file.metadata["input_transform"] == nil ? nil : try file.decodeMetadata(InputTransform.self, key: "input_transform", path: path)
        if let classNames, classNames.count != arch.classCount {
            throw TrainerError("\(path): metadata 'class_names' has \(classNames.count) names for a model of \(arch.classCount) classes")
        }
        if let input, input.width != arch.inputWidth || input.scale.count != input.shift.count
            || !(input.shift + input.scale).allSatisfy(\.isFinite) {
            throw TrainerError("\(path): metadata 'input_transform' does not fit a model of \(arch.inputWidth) inputs (or is not finite)")
        }
    }
}

extension SweepState {
    /// The state as metadata entries, with plain copies of the current learning rate, epoch and
    /// latest validation metrics for readers of the metadata.
    func metadata(learningRates: [Double]) throws -> [String: String] {
        var m = [
            "position": try JSONCoding.text(position), "optimizer_step": String(optimizerStep),
            "history": try JSONCoding.text(history), "best": try best.map { try JSONCoding.text($0) } ?? "null",
            "diverged": try JSONCoding.text(diverged), "data": try JSONCoding.text(data),
            "lr": String(learningRates[min(position.lrIndex, learningRates.count - 1)]), "epoch": String(position.epochsDone),
        ]
        if let last = history.last {
            m["val_macro_f1"] = String(last.valMacroF1)
            m["val_accuracy"] = String(last.valAccuracy)
            m["val_loss"] = String(last.valLoss)
        }
        return m
    }

    /// Reads the state from a `last` checkpoint's metadata.
    init(_ file: SafetensorsFile, path: String) throws {
        guard let step = Int(try file.metadata("optimizer_step", file: path)), step >= 0 else {
            throw TrainerError("\(path): metadata 'optimizer_step' is not a count")
        }
        self.init(
            position: try file.decodeMetadata(TrainingPosition.self, key: "position", path: path), optimizerStep: step,
            history: try file.decodeMetadata([EpochRecord].self, key: "history", path: path),
            best: try file.decodeMetadata(EpochRecord?.self, key: "best", path: path),
            diverged: try file.decodeMetadata([Int].self, key: "diverged", path: path),
            data: try file.decodeMetadata(DataShape.self, key: "data", path: path))
    }
}

extension SafetensorsFile {
    /// The metadata entry `key` decoded from JSON; one line naming the file and key otherwise.
    func decodeMetadata<T: Decodable>(_ type: T.Type, key: String, path: String) throws -> T {
        try JSONCoding.decode(type, from: Array(try metadata(key, file: path).utf8), what: "\(path): metadata '\(key)'")
    }
}

