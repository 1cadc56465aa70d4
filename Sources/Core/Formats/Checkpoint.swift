// Checkpoint: a training snapshot as a safetensors file, and the typed values read back from one.
//
// Two kinds, both plain safetensors readable by any safetensors library:
//  - best: the model only (every Dense weight and bias, every BatchNorm scale, shift, running mean
//    and running variance) with its architecture, configuration and metrics in the metadata;
//  - last: the model plus everything needed to resume exactly — Adam's moments and step count,
//    the sweep position (learning rate, epoch, step within an interrupted epoch and its running
//    sums), the best model so far with its metrics, the metrics history and abandoned rates.
// Tensor names: ModelTensors.swift; metadata keys: CheckpointMetadata.swift. Written from plain
// values (TrainingSnapshot, BestModel), never from a live trainer; nothing here touches files: see
// Safetensors and AtomicFile.
import CoreSupport
import Model
import Training

/// Building checkpoint files from plain values (a snapshot of the trainer, the best model).
public enum Checkpoint {
    /// Adam's moments in a `last` checkpoint, flat in ParameterLayout order.
    static let firstMoments = "optimizer.exp_avg", secondMoments = "optimizer.exp_avg_sq"
    /// Prefix of the best model's tensors inside a `last` checkpoint.
    static let bestPrefix = "best."
    /// The exact sums' bounds in a `last` checkpoint (TrainingSnapshot.sumBounds).
    static let sumBounds = "numerics.sum_bounds"

    /// `best` as a standalone checkpoint of a model of `architecture` (`header` fills the
    /// configuration, data directory, ranks and threads): its tensors, as slices of its arrays, and
    /// the metadata, which `writeSafetensors(_:metadata:path:)` streams to a file without a copy.
    public static func bestParts(_ best: BestModel, architecture: Architecture, header: CheckpointHeader) throws
        -> (tensors: [TensorSlice], metadata: [String: String]) {
        var header = header
        header.kind = .best
        var metadata = try header.metadata()
        metadata["lr"] = String(best.record.lr)
        metadata["epoch"] = String(best.record.epoch)
        metadata["val_macro_f1"] = String(best.record.valMacroF1)
        metadata["val_accuracy"] = String(best.record.valAccuracy)
        metadata["val_loss"] = String(best.record.valLoss)
        metadata["record"] = try JSONCoding.text(best.record)
        return (best.state.tensorSlices(architecture), metadata)
    }

    /// Everything needed to continue the sweep exactly where `snapshot` is.
    public static func last(_ snapshot: TrainingSnapshot, header: CheckpointHeader) throws -> SafetensorsFile {
        let (slices, metadata) = try lastParts(snapshot, header: header)
        return SafetensorsFile(tensors: slices.map { Tensor(name: $0.name, shape: $0.shape, values: Array($0.values)) }, metadata: metadata)
    }

    /// `last`'s tensors as slices of the snapshot's buffers (nothing copied) and its metadata: what
    /// `writeSafetensors(_:metadata:path:)` streams to a file.
    public static func lastParts(_ snapshot: TrainingSnapshot, header: CheckpointHeader) throws -> (tensors: [TensorSlice], metadata: [String: String]) {
        let arch = snapshot.architecture
        var tensors = snapshot.model.tensorSlices(arch)
        let count = snapshot.moments.m.count
        tensors.append(TensorSlice(name: firstMoments, shape: [count], values: snapshot.moments.m[...]))
        tensors.append(TensorSlice(name: secondMoments, shape: [count], values: snapshot.moments.v[...]))
        if let best = snapshot.bestModel { tensors += best.tensorSlices(arch, prefix: bestPrefix) }
        tensors.append(TensorSlice(name: sumBounds, shape: [snapshot.sumBounds.count], values: snapshot.sumBounds[...]))
        var header = header
        header.kind = .last
        let metadata = try header.metadata().merging(try snapshot.sweep.metadata(learningRates: snapshot.config.learningRates)) { a, _ in a }
        return (tensors, metadata)
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
        // Evaluation computes no weight gradients: no copies of their operands.
        let net = Network(architecture: header.architecture, capacity: capacity, precision: header.config.precision,
                          exactProductsInBF16: false)
        net.load(state)
        return net
    }
}

/// A `last` checkpoint read back in full, once: everything a resume needs.
public struct LastCheckpoint: Sendable {
    public var header: CheckpointHeader
    /// The trainer's state as it was saved (its configuration is the header's).
    public var snapshot: TrainingSnapshot

    /// Reads and checks `file` (called `path` in errors); a `best` checkpoint is refused.
    public init(_ file: SafetensorsFile, path: String) throws {
        header = try CheckpointHeader(file, path: path)
        guard header.kind == .last else {
            throw TrainerError("\(path): a '\(header.kind.rawValue)' checkpoint has no optimizer state; resume needs last.safetensors")
        }
        let arch = header.architecture
        let count = ParameterLayout(arch).count
        let moments = AdamMoments(m: try file.tensor(Checkpoint.firstMoments, shape: [count], file: path).values,
                                  v: try file.tensor(Checkpoint.secondMoments, shape: [count], file: path).values)
        let sweep = try SweepState(file, path: path)
        let best = sweep.best == nil ? nil : try ModelState(file, arch: arch, path: path, prefix: Checkpoint.bestPrefix)
        // Checkpoints of dist-trainer 0.7 have no bounds: their resumed run starts its grids afresh.
        let bounds = file[Checkpoint.sumBounds] == nil ? [Float](repeating: 0, count: sumBoundCount(arch))
            : try file.tensor(Checkpoint.sumBounds, shape: [sumBoundCount(arch)], file: path).values
        guard bounds.allSatisfy({ $0 >= 0 }) else {
            throw TrainerError("\(path): tensor \(Checkpoint.sumBounds) holds a negative or NaN bound")
        }
        snapshot = TrainingSnapshot(config: header.config, architecture: arch, model: try ModelState(file, arch: arch, path: path),
                                    moments: moments, sweep: sweep, bestModel: best, sumBounds: bounds)
    }
}

/// How many bounds of exact sums a network of `arch` keeps: four per hidden unit (Σa, Σdy, Σdy·x̂
/// and the Dense bias gradient) and the loss's (ExactStepBuffers).
func sumBoundCount(_ arch: Architecture) -> Int { 4 * arch.hidden.reduce(0, +) + 1 }
