// Evaluate: `dist-trainer evaluate`, a checkpoint's loss, accuracy, macro-F1, per-class scores and
// confusion matrix on the test or validation split.
//
// Works single-process and under mpirun (the split is sharded across ranks, rank 0 prints). The
// validation split is rebuilt from the checkpoint's seed and validation fraction, so it is the
// same 12 000 images the run validated on.
import ArgumentParser
import CoreSupport
import Formats
import Foundation
import Kernels
import Model
import Training

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate a checkpoint (best.safetensors or last.safetensors) on the test or validation split.")

    enum Split: String, ExpressibleByArgument, CaseIterable { case test, val }

    @Option(help: ArgumentHelp("The checkpoint to evaluate (for last.safetensors: its current model).", valueName: "file"))
    var checkpoint: String

    @Option(help: "Which split: test (t10k) or val (the run's validation split).")
    var split: Split = .test

    @OptionGroup(title: "Data (default: the data the checkpoint was trained on)") var data: DataFlags

    @Flag(help: "Print one JSON object instead of tables.")
    var json = false

    @Option(help: ArgumentHelp("Also write every sample's logits as a float32 .npy file [samples × classes].", valueName: "file"))
    var saveLogits: String?

    @OptionGroup var compute: ThreadFlags

    func run() throws {
        try withMPIJob { mpi in try evaluateCheckpoint(mpi: mpi) }
    }

    func evaluateCheckpoint(mpi: MPICollective) throws {
        compute.apply(mpi)
        let loaded = try CheckpointAndData.load(checkpoint, flag: "--checkpoint", source: try data.source(), mpi: mpi)
        let images = split == .test ? loaded.data.test : loaded.data.validation
        let network = loaded.network
        let classes = network.architecture.classCount
        let logits = saveLogits == nil ? nil : Buffer<Float>(count: images.count * classes)
        let result = try evaluate(network, on: images, collective: mpi, logits: logits?.pointer)
        if let logits { try mpi.allreduceSum(logits.all) }
        guard mpi.rank == 0 else { return }
        if let saveLogits, let logits {
            try writeFileAtomically(saveLogits, encodeNpy(logits.array, shape: [images.count, classes]))
        }
        let report = makeReport(result, samples: images.count, header: loaded.checkpoint.header)
        if json {
            print(try JSONCoding.text(report, pretty: true))
        } else {
            printTables(report, confusion: result.confusion)
        }
    }

    func makeReport(_ result: Evaluation, samples: Int, header: CheckpointHeader) -> EvaluationReport {
        let (model, seed) = (header.architecture.widthsDescription, header.config.seed)
        let names = RunFiles.classNames(header)
        let rows = zip(names, result.confusion.perClass()).map { name, s in
            EvaluationReport.ClassRow(class: name, precision: s.precision, recall: s.recall, f1: s.f1, support: s.support)
        }
        return EvaluationReport(
            checkpoint: checkpoint, split: split.rawValue, samples: samples, model: model, seed: seed,
            loss: result.loss, accuracy: result.accuracy, macroF1: result.macroF1, perClass: rows,
            confusionMatrix: result.confusion.counts)
    }

    func printTables(_ r: EvaluationReport, confusion: ConfusionMatrix) {
        func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(1, width - s.count)) }
        print("\(checkpoint): model \(r.model), \(r.split) split, \(r.samples) samples")
        print(String(format: "loss %.4f  accuracy %.4f  macro-F1 %.4f", r.loss, r.accuracy, r.macroF1))
        print("")
        print(pad("class", 14) + pad("precision", 11) + pad("recall", 9) + pad("f1", 9) + "support")
        for c in r.perClass {
            print(pad(c.class, 14) + pad(String(format: "%.4f", c.precision), 11) + pad(String(format: "%.4f", c.recall), 9)
                + pad(String(format: "%.4f", c.f1), 9) + String(c.support))
        }
        print("")
        print("confusion matrix (rows = true class, columns = predicted):")
        print(formatMatrix(confusion))
    }
}
