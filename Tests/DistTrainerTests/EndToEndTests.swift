// End-to-end: `dist-trainer train` on a synthetic IDX data set written by the test, single
// process; checks every file of the run directory and the console contract.
import Datasets
import Formats
import Foundation
import Kernels
import Model
import Training
import XCTest

final class EndToEndTests: XCTestCase {
    /// A two-rate sweep of Model 2's structure (shrunk) on synthetic data.
    func testTrainWritesCompleteRunDirectory() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data")
        let run = tmp + "/run"
        let r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", run, "--hidden", "32,16,8",
                                "--epochs", "3", "--batch-size", "50", "--lr", "0.01,0.001", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")

        // Console: a start line, one line per epoch per rate, the best model, test metrics.
        let epochLines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("lr ") && $0.contains(" epoch ") }
        XCTAssertEqual(epochLines.count, 6, r.stdout)
        XCTAssertTrue(r.stdout.contains("test: loss"), r.stdout)
        XCTAssertTrue(r.stdout.contains("validation confusion matrix"), r.stdout)

        // config.json
        let config = try readJSON(run + "/config.json")
        XCTAssertEqual(config["hidden"] as? [Int], [32, 16, 8])
        let architecture = config["architecture"] as? [String: Any]
        XCTAssertEqual(architecture?["hidden"] as? [Int], [32, 16, 8])
        XCTAssertEqual(architecture?["dropout_after"] as? [Bool], [true, true, false])
        XCTAssertEqual(architecture?["input_width"] as? Int, 64)
        XCTAssertEqual(architecture?["class_count"] as? Int, 10)
        XCTAssertEqual(config["widths"] as? String, "64-32-16-8-10")
        XCTAssertEqual(config["learning_rates"] as? [Double], [0.01, 0.001])
        XCTAssertEqual(config["train_samples"] as? Int, 560)  // round(0.8 · 700)
        XCTAssertEqual(config["validation_samples"] as? Int, 140)
        XCTAssertEqual(config["ranks"] as? Int, 1)

        let rows = try checkMetricsFiles(run)
        try checkSummary(run, data: tmp + "/data", rows: rows)
        try checkConfusionFiles(run)
    }

    /// metrics.jsonl and metrics.csv: one row per lr per epoch, the same numbers; returns the rows.
    func checkMetricsFiles(_ run: String) throws -> [[String: Any]] {
        let rows = try readMetrics(run)
        XCTAssertEqual(rows.count, 6)
        XCTAssertEqual(rows.map { $0["lr"] as! Double }, [0.01, 0.01, 0.01, 0.001, 0.001, 0.001])
        XCTAssertEqual(rows.map { $0["epoch"] as! Int }, [1, 2, 3, 1, 2, 3])
        for row in rows {
            for key in ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1", "train_seconds"] {
                XCTAssertNotNil(row[key] as? Double, "metrics.jsonl lacks \(key)")
            }
            XCTAssertGreaterThan(row["train_seconds"] as! Double, 0)
        }
        let csv = try String(contentsOfFile: run + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(csv[0].hasPrefix("lr,epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_macro_f1,train_seconds"))
        XCTAssertEqual(csv.count, 7)
        let first = csv[1].split(separator: ",")
        XCTAssertEqual(Double(first[2])!, rows[0]["train_loss"] as! Double, accuracy: 1e-12)
        XCTAssertEqual(Double(first[6])!, rows[0]["val_macro_f1"] as! Double, accuracy: 1e-12)
        // The synthetic classes are separable: training must actually learn.
        XCTAssertGreaterThan(rows.map { $0["val_macro_f1"] as! Double }.max()!, 0.8)
        return rows
    }

    /// summary.json: the best row by validation macro-F1 (first maximum, as the seed) and the test
    /// metrics — accuracy and macro-F1 recomputed from its confusion matrix, and the loss and
    /// predictions recomputed here, in Double, from best.safetensors and the test files.
    func checkSummary(_ run: String, data: String, rows: [[String: Any]]) throws {
        let summary = try readJSON(run + "/summary.json")
        let best = summary["best"] as! [String: Any]
        let bestF1 = rows.map { $0["val_macro_f1"] as! Double }.max()!
        let bestRow = rows.first { ($0["val_macro_f1"] as! Double) == bestF1 }!
        XCTAssertEqual(best["val_macro_f1"] as! Double, bestF1)
        XCTAssertEqual(best["lr"] as! Double, bestRow["lr"] as! Double)
        XCTAssertEqual(best["epoch"] as! Int, bestRow["epoch"] as! Int)
        let test = summary["test"] as! [String: Any]
        let matrix = test["confusion_matrix"] as! [[Int]]
        XCTAssertEqual(matrix.count, 10)
        XCTAssertEqual(matrix.flatMap { $0 }.reduce(0, +), 200)
        let diagonal = (0..<10).reduce(0) { $0 + matrix[$1][$1] }
        XCTAssertEqual(test["accuracy"] as! Double, Double(diagonal) / 200, accuracy: 1e-12)
        XCTAssertEqual(test["macro_f1"] as! Double, Self.macroF1(matrix), accuracy: 1e-12)
        let reference = try DoubleReferenceModel(checkpoint: run + "/best.safetensors").evaluate(try FashionMNIST.load(directory: data).test)
        // The binary computes in float32: its mean loss is within 1e-6 relative of the Double one
        // (3e-8 measured), and a wrong loss (another model's, another count) is off by far more.
        XCTAssertEqual(test["loss"] as! Double, reference.loss, accuracy: 1e-6 * reference.loss)
        let differing = zip(matrix.joined(), reference.confusion.joined()).map { abs($0 - $1) }.reduce(0, +)
        XCTAssertLessThanOrEqual(differing, 2, "at most one sample (a float32 near-tie) may be predicted differently: \(matrix) vs \(reference.confusion)")
        XCTAssertGreaterThan(summary["epoch_seconds_median"] as! Double, 0)
        // The best model's validation evaluation is the one recorded for its epoch.
        let validation = summary["validation"] as! [String: Any]
        XCTAssertEqual(validation["macro_f1"] as! Double, bestF1, accuracy: 1e-12)
    }

    /// Confusion matrices as CSV: header of class names, 10 rows summing to the split sizes.
    func checkConfusionFiles(_ run: String) throws {
        for (file, total) in [("confusion_test.csv", 200), ("confusion_val.csv", 140)] {
            let lines = try String(contentsOfFile: run + "/" + file, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 11, file)
            // Synthetic data, not Fashion-MNIST: the classes are named by their numbers.
            XCTAssertEqual(lines[0], "true\\predicted,0,1,2,3,4,5,6,7,8,9", file)
            let sum = lines.dropFirst().flatMap { $0.split(separator: ",").dropFirst().map { Int($0)! } }.reduce(0, +)
            XCTAssertEqual(sum, total, file)
        }
    }

    /// scikit-learn's macro-F1 of a confusion matrix (rows: true class): the mean over the classes
    /// that occur as truth or prediction of 2·tp / (2·tp + fp + fn).
    static func macroF1(_ m: [[Int]]) -> Double {
        let scores = m.indices.compactMap { c -> Double? in
            let (truth, predicted) = (m[c].reduce(0, +), m.reduce(0) { $0 + $1[c] })
            return truth + predicted == 0 ? nil : 2 * Double(m[c][c]) / Double(truth + predicted)
        }
        return scores.reduce(0, +) / Double(scores.count)
    }

    /// The same seed gives bit-identical metrics; another seed does not.
    func testDeterministicInSeed() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data")
        func metrics(_ seed: Int, _ name: String) throws -> [[String: Any]] {
            let r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/" + name, "--hidden", "16,8",
                                    "--model", "1", "--epochs", "2", "--batch-size", "64", "--lr", "0.003", "--seed", String(seed),
                                    "--threads", "1"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try readMetrics(tmp + "/" + name)
        }
        let a = try metrics(3, "a"), b = try metrics(3, "b"), c = try metrics(4, "c")
        XCTAssertEqual(a.map { $0["val_loss"] as! Double }, b.map { $0["val_loss"] as! Double })
        XCTAssertEqual(a.map { $0["train_loss"] as! Double }, b.map { $0["train_loss"] as! Double })
        XCTAssertNotEqual(a.map { $0["train_loss"] as! Double }, c.map { $0["train_loss"] as! Double })
    }

    /// The thread count of the products changes nothing: 1 and 2 threads (by flag or by the user's
    /// OMP_NUM_THREADS) give bitwise the same metrics, and a run resumed with another thread count
    /// ends exactly like the uninterrupted one.
    func testThreadCountDoesNotChangeTheNumbers() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1200, test: 200, rows: 16, cols: 16)
        let common = ["train", "--data-dir", tmp + "/data", "--hidden", "512,128", "--epochs", "3", "--batch-size", "128", "--lr", "0.003"]
        let fields = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]
        func values(_ name: String) throws -> [[Double]] { try readMetrics(tmp + "/" + name).map { row in fields.map { row[$0] as! Double } } }
        XCTAssertEqual(try runTrainer(common + ["--run-dir", tmp + "/one", "--threads", "1"]).status, 0)
        XCTAssertEqual(try runTrainer(common + ["--run-dir", tmp + "/two", "--threads", "2"]).status, 0)
        let viaEnvironment = try runTrainer(common + ["--run-dir", tmp + "/env"], environment: ["OMP_NUM_THREADS": "2"])
        XCTAssertEqual(viaEnvironment.status, 0, viaEnvironment.stderr)
        XCTAssertTrue(viaEnvironment.stdout.contains("2 threads per rank"), viaEnvironment.stdout)
        let one = try values("one")
        XCTAssertEqual(one.count, 3)
        XCTAssertEqual(try values("two"), one)
        XCTAssertEqual(try values("env"), one)
        // Stopped after epoch 1 with 1 thread, resumed with 2.
        XCTAssertEqual(try runTrainer(common.map { $0 == "3" ? "1" : $0 } + ["--run-dir", tmp + "/cut", "--threads", "1"]).status, 0)
        let resumed = try runTrainer(["train", "--resume", tmp + "/cut", "--epochs", "3", "--threads", "2"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try values("cut"), one)
        XCTAssertEqual(try readJSON(tmp + "/cut/summary.json")["test"] as? NSDictionary, try readJSON(tmp + "/one/summary.json")["test"] as? NSDictionary)
    }

    /// --precision bf16 where the CPU has bf16 arithmetic: trains to about fp32's accuracy, is recorded
    /// in config.json and the checkpoint, resumes exactly, and `evaluate` computes in bf16 too.
    /// Elsewhere: one line that says so, before any work.
    func testBF16Precision() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1200, test: 300, rows: 16, cols: 16)
        let common = ["train", "--data-dir", tmp + "/data", "--hidden", "128,64", "--epochs", "3", "--lr", "0.003", "--threads", "1"]
        guard cpuHasBF16 else {
            let r = try runTrainer(common + ["--run-dir", tmp + "/no", "--precision", "bf16"])
            XCTAssertEqual(r.status, 64, r.stderr)
            XCTAssertTrue(r.stderr.contains("--precision bf16: this CPU has no bf16 arithmetic"), r.stderr)
            throw XCTSkip("no bf16 on this CPU (refusal checked)")
        }
        XCTAssertEqual(try runTrainer(common + ["--run-dir", tmp + "/fp32"]).status, 0)
        let r = try runTrainer(common + ["--run-dir", tmp + "/bf16", "--precision", "bf16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("bf16 products"), r.stdout)
        XCTAssertEqual(try readJSON(tmp + "/bf16/config.json")["precision"] as? String, "bf16")
        let (a, b) = (try readJSON(tmp + "/fp32/summary.json")["test"] as! [String: Any], try readJSON(tmp + "/bf16/summary.json")["test"] as! [String: Any])
        XCTAssertEqual(a["accuracy"] as! Double, b["accuracy"] as! Double, accuracy: 0.03)
        XCTAssertNotEqual(try readMetrics(tmp + "/fp32").map { $0["train_loss"] as! Double }, try readMetrics(tmp + "/bf16").map { $0["train_loss"] as! Double })
        // Resume (the setting comes from the checkpoint) ends exactly like the uninterrupted run.
        XCTAssertEqual(try runTrainer(common.map { $0 == "3" ? "1" : $0 } + ["--run-dir", tmp + "/cut", "--precision", "bf16"]).status, 0)
        XCTAssertEqual(try runTrainer(["train", "--resume", tmp + "/cut", "--epochs", "3"]).status, 0)
        XCTAssertEqual(try readMetrics(tmp + "/cut").map { $0["val_loss"] as! Double }, try readMetrics(tmp + "/bf16").map { $0["val_loss"] as! Double })
        let e = try runTrainer(["evaluate", "--checkpoint", tmp + "/bf16/best.safetensors", "--json"])
        let out = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(out["loss"] as! Double, b["loss"] as! Double, accuracy: 1e-12)
    }

    /// Flag errors: one line naming the flag, non-zero exit, before any work.
    func testBadFlagsNameTheFlag() throws {
        let cases: [([String], String)] = [
            (["--lr", "0"], "--lr"), (["--lr", "abc"], "--lr"), (["--epochs", "0"], "--epochs"),
            (["--model", "4"], "--model"), (["--hidden", "12,,3"], "--hidden"), (["--val-fraction", "1"], "--val-fraction"),
            (["--bn", "global"], "--bn"), (["--dropout", "1"], "--dropout"), (["--optimizer", "sgd"], "--optimizer"),
        ]
        for (flags, culprit) in cases {
            let r = try runTrainer(["train", "--data-dir", "/nonexistent"] + flags, timeout: 30)
            XCTAssertNotEqual(r.status, 0, "\(flags)")
            let firstLine = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
            XCTAssertTrue(firstLine.contains(culprit), "\(flags): \(r.stderr)")
        }
    }

    /// Data errors found after start-up: one line naming the file, exit 65 (bad input).
    func testMissingDataNamesTheProblem() throws {
        let tmp = try temporaryDirectory(self)
        var r = try runTrainer(["train", "--data-dir", tmp + "/nope", "--run-dir", tmp + "/run"], timeout: 30)
        XCTAssertEqual(r.status, 65)
        XCTAssertTrue(r.stderr.contains(tmp + "/nope") && r.stderr.contains("does not exist"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

        try writeSyntheticDataset(to: tmp + "/data")
        try FileManager.default.removeItem(atPath: tmp + "/data/t10k-labels-idx1-ubyte.gz")
        r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run"], timeout: 30)
        XCTAssertEqual(r.status, 65)
        XCTAssertTrue(r.stderr.contains("t10k-labels-idx1-ubyte"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

        // A batch larger than the training split is a data-dependent flag error.
        try writeSyntheticDataset(to: tmp + "/data")
        r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--batch-size", "1000"], timeout: 30)
        XCTAssertEqual(r.status, 64, "a flag that does not fit the data")
        XCTAssertTrue(r.stderr.contains("--batch-size") && r.stderr.contains("560"), r.stderr)
    }
}

/// A checkpoint's model evaluated in Double, written from the definitions and not from the trainer's
/// kernels: per hidden block Dense, ReLU, BatchNorm with the running statistics (ε = 1e-7, the
/// trainer's), no dropout; then the head, softmax cross-entropy and the arg-max prediction.
struct DoubleReferenceModel {
    let tensors: [String: (shape: [Int], values: [Double])]
    let blocks: Int

    init(checkpoint path: String) throws {
        let file = try readSafetensors(path: path)
        tensors = Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, ($0.shape, $0.values.map(Double.init))) })
        blocks = tensors.keys.filter { $0.hasSuffix(".dense.weight") }.count
    }

    /// x · W + b for W of shape [fanIn, fanOut] (row-major).
    func dense(_ x: [Double], _ name: String) -> [Double] {
        let (w, b) = (tensors[name + ".weight"]!, tensors[name + ".bias"]!.values)
        let (fanIn, fanOut) = (w.shape[0], w.shape[1])
        return (0..<fanOut).map { j in (0..<fanIn).reduce(b[j]) { $0 + x[$1] * w.values[$1 * fanOut + j] } }
    }

    func logits(_ input: [Double]) -> [Double] {
        var h = input
        for l in 0..<blocks {
            let a = dense(h, "layers.\(l).dense").map { max(0, $0) }
            let (mean, variance) = (tensors["layers.\(l).bn.running_mean"]!.values, tensors["layers.\(l).bn.running_var"]!.values)
            let (scale, shift) = (tensors["layers.\(l).bn.weight"]!.values, tensors["layers.\(l).bn.bias"]!.values)
            h = a.indices.map { (a[$0] - mean[$0]) / (variance[$0] + 1e-7).squareRoot() * scale[$0] + shift[$0] }
        }
        return dense(h, "head")
    }

    /// Mean cross-entropy and confusion matrix (rows: true class) on `images`.
    func evaluate(_ images: LabeledData) -> (loss: Double, confusion: [[Int]]) {
        var confusion = Array(repeating: Array(repeating: 0, count: images.classCount), count: images.classCount)
        var loss = 0.0
        for i in 0..<images.count {
            let z = logits(images.pixels[(i * images.width)..<((i + 1) * images.width)].map { Double($0) / 255 })
            let top = z.max()!
            let label = Int(images.labels[i])
            loss += top + log(z.reduce(0) { $0 + exp($1 - top) }) - z[label]
            confusion[label][z.firstIndex(of: top)!] += 1
        }
        return (loss / Double(images.count), confusion)
    }
}
