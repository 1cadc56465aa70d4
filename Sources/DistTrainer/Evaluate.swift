// Evaluate: `dist-trainer evaluate`, a checkpoint's loss, accuracy, macro-F1, per-class scores and
// confusion matrix on the test or validation split.
//
// Works single-process and under mpirun (the split is sharded across ranks, rank 0 prints). The
// validation split is rebuilt from the checkpoint's seed and validation fraction, so it is the
// same 12 000 images the run validated on.
import ArgumentParser
import Core
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint (best.safetensors or last.safetensors) on the test or validation split.")

    enum Split: String, ExpressibleByArgument, CaseIterable { case test, val }

    @Option(help: ArgumentHelp("The checkpoint to evaluate (for last.safetensors: its current model).", valueName: "file"))
    var checkpoint: String

    @Option(help: "Which split: test (t10k) or val (the run's validation split).")
    var split: Split = .test

    @Option(help: ArgumentHelp("Data directory (default: the one recorded in the checkpoint, else the usual search).", valueName: "dir"))
    var dataDir: String?

    @Flag(help: "Print one JSON object instead of tables.")
    var json = false

    @Option(help: ArgumentHelp("Also write every sample's logits as a float32 .npy file [samples × classes].", valueName: "file"))
    var saveLogits: String?

    @Option(help: "OpenBLAS threads per process (default: cores on the node / ranks on the node).")
    var threads: Int?

    func run() throws {
        try withMPIJob { mpi in try evaluate(mpi: mpi) }
    }

    func evaluate(mpi: MPICollective) throws {
        setBlasThreads(threads ?? mpi.defaultThreadsPerRank)
        var bytes: [UInt8] = []
        try mpi.agreeing {
            if mpi.rank == 0 {
                guard let data = FileManager.default.contents(atPath: checkpoint) else {
                    throw TrainerError("--checkpoint \(checkpoint): no such file or not readable")
                }
                bytes = [UInt8](data)
            }
        }
        try mpi.broadcast(&bytes, root: 0)
        let (network, images, config) = try mpi.agreeing { () throws -> (Network, LabeledImages, TrainingConfig) in
            let (net, data, config) = try loadModelAndData(decodeSafetensors(bytes, name: checkpoint), path: checkpoint, dataDir: dataDir)
            let images = split == .test ? data.test : DataSplit(data.train, valFraction: config.valFraction, seed: config.seed).validation
            return (net, images, config)
        }
        let classes = network.architecture.classCount
        let logits = saveLogits == nil ? nil : Buffer<Float>(count: images.count * classes)
        let result = try Core.evaluate(network, on: images, collective: mpi, logits: logits?.pointer)
        if let logits { try mpi.allreduceSum(logits.all) }
        guard mpi.rank == 0 else { return }
        if let saveLogits, let logits {
            try writeFileAtomically(saveLogits, encodeNpy(logits.array, shape: [images.count, classes]))
        }
        let names = classes == FashionMNIST.classNames.count ? FashionMNIST.classNames : (0..<classes).map { "class \($0)" }
        let scores = result.confusion.perClass()
        if json {
            let perClass: [[String: Any]] = zip(names, scores).map { name, s in
                ["class": name, "precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support]
            }
            let object: [String: Any] = [
                "checkpoint": checkpoint, "split": split.rawValue, "samples": images.count,
                "model": network.architecture.widthsDescription, "seed": config.seed,
                "loss": result.loss, "accuracy": result.accuracy, "macro_f1": result.macroF1,
                "per_class": perClass, "confusion_matrix": result.confusion.counts,
            ]
            print(RunFiles.json(object))
            return
        }
        print("\(checkpoint): model \(network.architecture.widthsDescription), \(split.rawValue) split, \(images.count) samples")
        print(String(format: "loss %.4f  accuracy %.4f  macro-F1 %.4f", result.loss, result.accuracy, result.macroF1))
        print("")
        print(pad("class", 14) + pad("precision", 11) + pad("recall", 9) + pad("f1", 9) + "support")
        for (name, s) in zip(names, scores) {
            print(pad(name, 14) + pad(String(format: "%.4f", s.precision), 11) + pad(String(format: "%.4f", s.recall), 9)
                + pad(String(format: "%.4f", s.f1), 9) + String(s.support))
        }
        print("")
        print("confusion matrix (rows = true class, columns = predicted):")
        print(formatMatrix(result.confusion))
    }

    func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(1, width - s.count)) }
}

/// The model of a checkpoint in a network ready for evaluation, and the data set it was trained on:
/// `dataDir`, else the directory recorded in the checkpoint, else the usual search. Fails with one
/// line if the data's images do not fit the model.
func loadModelAndData(_ file: SafetensorsFile, path: String, dataDir: String?)
    throws -> (Network, (train: LabeledImages, test: LabeledImages), TrainingConfig)
{
    let (_, arch, config) = try Checkpoint.describe(file, path: path)
    let dir = try dataDir ?? file.metadata["data_dir"] ?? FashionMNIST.resolveDirectory()
    let data = try FashionMNIST.load(directory: dir)
    guard data.train.width == arch.inputWidth else {
        throw TrainerError("\(path): model takes \(arch.inputWidth) pixels per image, the data in \(dir) has \(data.train.width)")
    }
    return (try Checkpoint.network(file, path: path, capacity: Trainer.evaluationChunk), data, config)
}
