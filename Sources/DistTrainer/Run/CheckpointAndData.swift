// CheckpointAndData: a checkpoint's model in a network ready for evaluation, with the data set it
// was trained on — what `evaluate` and `summarize` start from.
//
// The checkpoint's bytes are read on rank 0 only and broadcast (its directory need not be shared);
// every rank then decodes them and loads the data, agreeing on any failure.
import Collectives
import CoreSupport
import Datasets
import Formats
import Model
import Training

struct CheckpointAndData {
    var checkpoint: ModelCheckpoint
    var network: Network
    /// The data set's splits as the model saw them (the checkpoint's scaling applied to features):
    /// test, and validation (the run's: split off again with its seed and fraction, or its file).
    var data: (test: LabeledData, validation: LabeledData)

    /// Reads `path` on rank 0, and on every rank builds the network and loads the data `source`
    /// names, else the data recorded in the checkpoint, else the usual search. Fails with one line
    /// if the data does not fit the model.
    static func load(_ path: String, flag: String, source: DataSource?, mpi: Collective) throws -> CheckpointAndData {
        let bytes = try mpi.rootReads {
            do { return try readFile(path) } catch let e as TrainerError { throw TrainerError("\(flag) \(e.message)") }
        }
        return try mpi.agreeing {
            let checkpoint = try ModelCheckpoint(decodeSafetensors(bytes, name: path), path: path)
            let header = checkpoint.header
            let source = try source ?? header.recordedSource ?? DataSource(data: FashionMNIST.resolveDirectory())
            var loaded = try source.load()
            try checkFits(loaded.train, header: header, path: path, data: source.data)
            let config = header.config
            var validation = loaded.validation ?? DataSplit(loaded.train, valFraction: config.valFraction, seed: config.seed).validation
            if loaded.test.encoding == .floats {
                header.inputTransform.apply(to: &loaded.test.features)
                header.inputTransform.apply(to: &validation.features)
            }
            do {
                return CheckpointAndData(checkpoint: checkpoint, network: try checkpoint.network(capacity: Trainer.evaluationChunk),
                                         data: (loaded.test, validation))
            } catch let e as SettingError {
                throw TrainerError("\(path): the model computes with \(e)")  // e.g. bf16 products on a CPU without them
            }
        }
    }

    /// The data must have the model's input width and class count.
    static func checkFits(_ data: LabeledData, header: CheckpointHeader, path: String, data name: String) throws {
        let arch = header.architecture
        guard data.width == arch.inputWidth else {
            throw TrainerError("\(path): model takes \(arch.inputWidth) values per sample, the data in \(name) has \(data.width)")
        }
        guard data.classCount == arch.classCount else {
            throw TrainerError("\(path): model has \(arch.classCount) classes, the data in \(name) has \(data.classCount)")
        }
    }
}
