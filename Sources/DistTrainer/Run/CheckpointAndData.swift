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
    var data: (train: LabeledImages, test: LabeledImages)

    /// Reads `path` on rank 0, and on every rank builds the network and loads the data from
    /// `dataDir`, else the directory recorded in the checkpoint, else the usual search. Fails with
    /// one line if the data's images do not fit the model.
    static func load(_ path: String, flag: String, dataDir: String?, mpi: Collective) throws -> CheckpointAndData {
        let bytes = try mpi.rootReads {
            do { return try readFile(path) } catch let e as TrainerError { throw TrainerError("\(flag) \(e.message)") }
        }
        return try mpi.agreeing {
            let checkpoint = try ModelCheckpoint(decodeSafetensors(bytes, name: path), path: path)
            let arch = checkpoint.header.architecture
            let dir = try dataDir ?? checkpoint.header.dataDirectory ?? FashionMNIST.resolveDirectory()
            let data = try FashionMNIST.load(directory: dir)
            guard data.train.width == arch.inputWidth else {
                throw TrainerError("\(path): model takes \(arch.inputWidth) pixels per image, the data in \(dir) has \(data.train.width)")
            }
            do {
                return CheckpointAndData(checkpoint: checkpoint, network: try checkpoint.network(capacity: Trainer.evaluationChunk), data: data)
            } catch let e as SettingError {
                throw TrainerError("\(path): the model computes with \(e)")  // e.g. bf16 products on a CPU without them
            }
        }
    }
}
