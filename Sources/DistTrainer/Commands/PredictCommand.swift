// Predict: `dist-trainer predict`, a checkpoint's class probabilities for every sample of a file.
//
// One CSV row per sample: `index`, `predicted` (the class's name as in the data), then one
// probability column per class, named by the class. The input's raw values are scaled by the
// checkpoint's own transform (1/255 for images, the training split's standardisation for features),
// so a file in the training data's format is all it needs. Works single-process and under mpirun
// (the samples are sharded across ranks like evaluate's; rank 0 writes). Not here: reading the file
// (PredictionInput), the model (Network).
import ArgumentParser
import CoreSupport
import Datasets
import Formats
import Foundation
import Kernels
import Model
import Training

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Class probabilities of a checkpoint for every sample of a file (.npz, .csv or IDX images).")

    @Option(help: ArgumentHelp("The model (best.safetensors, or a last.safetensors: its current model).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("The samples: a .npz (x_test, or its only array), a .csv (a label column is ignored), or an IDX images file.", valueName: "file"))
    var input: String

    @Option(help: ArgumentHelp("Write the predictions here (CSV) instead of to standard output.", valueName: "file.csv"))
    var out: String?

    @Option(help: ArgumentHelp("The CSV column that holds labels, ignored if present (default: the training data's label column).", valueName: "name"))
    var labelColumn: String?

    @OptionGroup var compute: ThreadFlags

    func run() throws {
        try withMPIJob { mpi in try predict(mpi: mpi) }
    }

    func predict(mpi: MPICollective) throws {
        compute.apply(mpi)
        let bytes = try mpi.rootReads {
            do { return try readFile(checkpoint) } catch let e as TrainerError { throw TrainerError("--checkpoint \(e.message)", exitCode: ExitStatus.badInput) }
        }
        let (model, samples) = try mpi.agreeing { () -> (ModelCheckpoint, LabeledData) in
            do {
                let model = try ModelCheckpoint(decodeSafetensors(bytes, name: checkpoint), path: checkpoint)
                let arch = model.header.architecture
                let input = try PredictionInput(path: self.input, labelColumn: labelColumn ?? model.header.dataSource?.labelColumn ?? "label")
                guard input.width == arch.inputWidth else {
                    throw TrainerError("\(self.input): \(input.width) values per sample, the model \(checkpoint) takes \(arch.inputWidth)")
                }
                return (model, input.scaled(by: model.header.inputTransform, classCount: arch.classCount))
            } catch let e as TrainerError { throw e.exiting(ExitStatus.badInput) }
        }
        let network = try model.network(capacity: Trainer.evaluationChunk)
        let classes = network.architecture.classCount
        let logits = Buffer<Float>(count: samples.count * classes)
        _ = try evaluate(network, on: samples, collective: mpi, logits: logits.pointer)
        try mpi.allreduceSum(logits.all)
        guard mpi.rank == 0 else { return }
        let text = predictionsCSV(logits: logits, rows: samples.count, classes: classes, names: RunFiles.classNames(model.header))
        if let out {
            do { try writeFileAtomically(out, text: text) } catch let e as TrainerError { throw e.exiting(ExitStatus.cannotWrite) }
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// The CSV: a header, then per sample its index, its most probable class and every class's
    /// probability (a softmax of the logits in Double, each printed as the shortest text that reads
    /// back as the same Float).
    func predictionsCSV(logits: Buffer<Float>, rows: Int, classes: Int, names: [String]) -> String {
        var text = "index,predicted," + names.map(RunFiles.csvField).joined(separator: ",") + "\n"
        var p = [Double](repeating: 0, count: classes)
        for i in 0..<rows {
            let l = logits.pointer + i * classes
            var (largest, best) = (-Double.infinity, 0)
            for k in 0..<classes where Double(l[k]) > largest { (largest, best) = (Double(l[k]), k) }
            var sum = 0.0
            for k in 0..<classes { p[k] = exp(Double(l[k]) - largest); sum += p[k] }
            text += "\(i),\(RunFiles.csvField(names[best]))," + p.map { String(Float($0 / sum)) }.joined(separator: ",") + "\n"
        }
        return text
    }
}
