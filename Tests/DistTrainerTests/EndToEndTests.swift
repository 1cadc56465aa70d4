// End-to-end: `dist-trainer train` on a synthetic IDX data set written by the test, single
// process; checks every file of the run directory and the console contract.
import Foundation
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
        XCTAssertEqual(config["dropout_after"] as? [Bool], [true, true, false])
        XCTAssertEqual(config["input_width"] as? Int, 64)
        XCTAssertEqual(config["learning_rates"] as? [Double], [0.01, 0.001])
        XCTAssertEqual(config["train_samples"] as? Int, 560)  // round(0.8 · 700)
        XCTAssertEqual(config["validation_samples"] as? Int, 140)
        XCTAssertEqual(config["ranks"] as? Int, 1)

        // metrics.jsonl and metrics.csv: one row per lr per epoch, the same numbers.
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
        let bestF1 = rows.map { $0["val_macro_f1"] as! Double }.max()!
        XCTAssertGreaterThan(bestF1, 0.8)

        // summary.json: the best row by validation macro-F1 (first maximum, as the seed) and test.
        let summary = try readJSON(run + "/summary.json")
        let best = summary["best"] as! [String: Any]
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
        XCTAssertNotNil(test["macro_f1"] as? Double)
        XCTAssertNotNil(test["loss"] as? Double)
        XCTAssertGreaterThan(summary["epoch_seconds_median"] as! Double, 0)
        // The best model's validation evaluation is the one recorded for its epoch.
        let validation = summary["validation"] as! [String: Any]
        XCTAssertEqual(validation["macro_f1"] as! Double, bestF1, accuracy: 1e-12)

        // Confusion matrices as CSV: header of class names, 10 rows summing to the split sizes.
        for (file, total) in [("confusion_test.csv", 200), ("confusion_val.csv", 140)] {
            let lines = try String(contentsOfFile: run + "/" + file, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 11, file)
            XCTAssertTrue(lines[0].contains("T-shirt/top") && lines[0].contains("Ankle boot"), file)
            let sum = lines.dropFirst().flatMap { $0.split(separator: ",").dropFirst().map { Int($0)! } }.reduce(0, +)
            XCTAssertEqual(sum, total, file)
        }
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

    /// Data errors found after start-up: one line naming the file, exit 1.
    func testMissingDataNamesTheProblem() throws {
        let tmp = try temporaryDirectory(self)
        var r = try runTrainer(["train", "--data-dir", tmp + "/nope", "--run-dir", tmp + "/run"], timeout: 30)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(tmp + "/nope") && r.stderr.contains("does not exist"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

        try writeSyntheticDataset(to: tmp + "/data")
        try FileManager.default.removeItem(atPath: tmp + "/data/t10k-labels-idx1-ubyte.gz")
        r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run"], timeout: 30)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("t10k-labels-idx1-ubyte"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

        // A batch larger than the training split is a data-dependent flag error.
        try writeSyntheticDataset(to: tmp + "/data")
        r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--batch-size", "1000"], timeout: 30)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--batch-size") && r.stderr.contains("560"), r.stderr)
    }
}
