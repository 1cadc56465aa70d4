// OwnDataTests: training on a user's data and using the model — IDX files of another image size
// and class count, a .npz (uint8 images, float features), CSV files with string and integer labels,
// every bad input refused in one line on every rank, `predict` against `evaluate`, and ONNX Runtime
// against `predict` (scripts/export_onnx.py). The data are written by the tests (the CSVs here, the
// .npz files with NumPy); the real data sets of the README are scikit-learn's (OwnDataRealTests).
import Foundation
import TestSupport
import XCTest

final class OwnDataTests: XCTestCase {
    let small = ["--hidden", "32,16", "--epochs", "6", "--lr", "0.01", "--batch-size", "32", "--threads", "1"]

    func train(_ np: Int, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let r = np == 1 ? try runTrainer(["train"] + args + small) : try runMPI(np, ["train"] + args + small)
        XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)", file: file, line: line)
        return r
    }

    /// The test accuracy of a finished run.
    func testAccuracy(_ run: String) throws -> Double { (try readJSON(run + "/summary.json")["test"] as! [String: Any])["accuracy"] as! Double }

    /// `predict` over `input`: its rows (index, predicted, probabilities by class) and the header.
    func predict(_ checkpoint: String, _ input: String, np: Int = 1) throws -> (header: [String], rows: [[String]]) {
        let args = ["predict", "--checkpoint", checkpoint, "--input", input]
        let r = np == 1 ? try runTrainer(args) : try runMPI(np, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        return (lines.first ?? [], Array(lines.dropFirst()))
    }

    // MARK: - Formats

    /// MNIST-style IDX files of 12×12 images in 3 classes: the model is 144-…-3, the class names
    /// are the numbers, and it learns the synthetic classes.
    func testIDXOfAnotherSizeAndClassCount() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 600, test: 150, rows: 12, cols: 12, classes: 3)
        let r = try train(2, ["--data", tmp + "/data", "--run-dir", tmp + "/run"])
        XCTAssertTrue(r.stdout.contains("144 bytes (scaled by 1/255) per sample, 3 classes"), r.stdout)
        XCTAssertTrue(r.stdout.contains("model 144-32-16-3"), r.stdout)
        XCTAssertGreaterThan(try testAccuracy(tmp + "/run"), 0.9)
        let p = try predict(tmp + "/run/best.safetensors", tmp + "/data/t10k-images-idx3-ubyte.gz")
        XCTAssertEqual(p.header, ["index", "predicted", "0", "1", "2"])
        XCTAssertEqual(p.rows.count, 150)
    }

    /// A .npz of uint8 images and one of float64 features with integer labels (np.savez_compressed):
    /// trained under mpirun, evaluate reproduces the summary, predict's predictions give evaluate's
    /// accuracy (on 1 and 2 ranks alike), and the probabilities sum to 1.
    func testNpzRoundTripsAndPredictMatchesEvaluate() throws {
        let python = try requirePython(["numpy"], install: ["numpy"], requiredEnv: "NUMPY_REFERENCE_REQUIRED", feature: "NumPy")
        let tmp = try temporaryDirectory(self)
        let script = """
            import numpy as np, sys
            rng = np.random.default_rng(3)
            def images(n):
                y = rng.integers(0, 4, n)
                x = np.clip(rng.normal(0, 40, (n, 6, 5)) + 50 * y[:, None, None] + 20, 0, 255).astype(np.uint8)
                return x, y.astype(np.int64)
            (a, b), (c, d) = images(500), images(120)
            np.savez_compressed(sys.argv[1] + "/images.npz", x_train=a, y_train=b, x_test=c, y_test=d)
            def features(n):
                y = rng.integers(0, 3, n)
                return (rng.normal(0, 1, (n, 7)) * 100 + 300 * y[:, None]).astype(np.float64), y.astype(np.int32)
            (a, b), (c, d) = features(500), features(120)
            np.savez(sys.argv[1] + "/features.npz", x_train=a, y_train=b, x_test=c, y_test=d)
            """
        let made = try runCommand(python, ["-c", script, tmp])
        XCTAssertEqual(made.status, 0, made.stderr)
        for (name, description) in [("images", "30 bytes (scaled by 1/255) per sample, 4 classes"), ("features", "7 features (standardised) per sample, 3 classes")] {
            let run = tmp + "/run-" + name
            let r = try train(2, ["--data", tmp + "/\(name).npz", "--run-dir", run])
            XCTAssertTrue(r.stdout.contains(description), r.stdout)
            let accuracy = try testAccuracy(run)
            XCTAssertGreaterThan(accuracy, 0.85, name)
            let e = try runTrainer(["evaluate", "--checkpoint", run + "/best.safetensors", "--json"])
            XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any])?["accuracy"] as? Double, accuracy, name)
            let labels = try runCommand(python, ["-c", "import numpy as np, sys; print(' '.join(map(str, np.load(sys.argv[1])['y_test'])))", tmp + "/\(name).npz"])
            let truth = labels.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            for np in [1, 2] {
                let p = try predict(run + "/best.safetensors", tmp + "/\(name).npz", np: np)
                XCTAssertEqual(p.rows.count, truth.count)
                let right = zip(p.rows, truth).filter { $0[1] == $1 }.count
                XCTAssertEqual(Double(right) / Double(truth.count), accuracy, accuracy: 1e-12, "\(name), np=\(np): predict's accuracy against evaluate's")
                for row in p.rows { XCTAssertEqual(row.dropFirst(2).compactMap(Double.init).reduce(0, +), 1, accuracy: 1e-5) }
            }
        }
    }

    /// CSV files with string labels (class names in sorted order) and with integer labels (sorted
    /// numerically), quoted fields and CRLF line ends; the test file's rows in another class order.
    func testCSVRoundTripsWithStringAndIntegerLabels() throws {
        let tmp = try temporaryDirectory(self)
        for (name, labels) in [("strings", ["versicolor", "setosa", "virginica"]), ("integers", ["10", "2", "-1"])] {
            try writeCSV(tmp + "/\(name)-train.csv", rows: 480, labels: labels, seed: 1)
            try writeCSV(tmp + "/\(name)-test.csv", rows: 120, labels: labels, seed: 2)
            let run = tmp + "/run-" + name
            let r = try train(1, ["--data", tmp + "/\(name)-train.csv", "--test-data", tmp + "/\(name)-test.csv", "--label-column", "species", "--run-dir", run])
            XCTAssertTrue(r.stdout.contains("4 features (standardised) per sample, 3 classes"), r.stdout)
            XCTAssertGreaterThan(try testAccuracy(run), 0.9, name)
            let sorted = name == "strings" ? ["setosa", "versicolor", "virginica"] : ["-1", "2", "10"]
            let confusion = try String(contentsOfFile: run + "/confusion_test.csv", encoding: .utf8)
            XCTAssertTrue(confusion.hasPrefix("true\\predicted," + sorted.joined(separator: ",") + "\n"), confusion)
            let p = try predict(run + "/best.safetensors", tmp + "/\(name)-test.csv")
            XCTAssertEqual(p.header, ["index", "predicted"] + sorted)
            XCTAssertTrue(p.rows.allSatisfy { sorted.contains($0[1]) })
        }
    }

    // MARK: - ONNX out

    /// scripts/export_onnx.py on a model of standardised CSV features (string classes) and on one
    /// of images (an IDX file): onnx.checker accepts it (the script checks before writing) and ONNX
    /// Runtime, given the raw values of the data file, reproduces predict's probabilities to 1e-5
    /// and its predicted classes.
    func testONNXRuntimeReproducesPredict() throws {
        let python = try requirePython(["numpy", "onnx", "onnxruntime"], install: ["numpy", "onnx", "onnxruntime"], requiredEnv: "ONNX_REQUIRED", feature: "ONNX export")
        let tmp = try temporaryDirectory(self)
        try writeCSV(tmp + "/train.csv", rows: 480, labels: ["setosa", "versicolor", "virginica"], seed: 1)
        try writeCSV(tmp + "/test.csv", rows: 120, labels: ["setosa", "versicolor", "virginica"], seed: 2)
        _ = try train(2, ["--data", tmp + "/train.csv", "--test-data", tmp + "/test.csv", "--label-column", "species", "--run-dir", tmp + "/csv"])
        try writeSyntheticDataset(to: tmp + "/idx", train: 400, test: 100, rows: 7, cols: 9, classes: 5, gzipped: false)
        _ = try train(1, ["--data", tmp + "/idx", "--run-dir", tmp + "/idx-run"])
        let check = """
            import csv, sys, numpy as np, onnxruntime as ort
            model, predictions, raw = sys.argv[1:4]
            if raw.endswith(".csv"):
                rows = list(csv.reader(open(raw)))
                label = rows[0].index("species")
                x = np.array([[float(v) for j, v in enumerate(r) if j != label] for r in rows[1:]], dtype=np.float32)
            else:
                b = open(raw, "rb").read()
                n, h, w = (int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
                x = np.frombuffer(b[16:], np.uint8).reshape(n, h * w).astype(np.float32)
            session = ort.InferenceSession(model)
            assert [i.name for i in session.get_inputs()] == ["input"] and [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
            logits, probabilities = session.run(None, {"input": x})
            table = list(csv.reader(open(predictions)))
            names, rows = table[0][2:], table[1:]
            expected = np.array([[float(v) for v in r[2:]] for r in rows])
            worst = float(np.abs(expected - probabilities).max())
            same = all(names[int(np.argmax(p))] == r[1] for p, r in zip(probabilities, rows))
            print(f"max |ONNX Runtime - predict| = {worst:.2e}, predicted classes equal: {same}")
            sys.exit(0 if worst <= 1e-5 and same else 1)
            """
        for (run, raw) in [(tmp + "/csv", tmp + "/test.csv"), (tmp + "/idx-run", tmp + "/idx/t10k-images-idx3-ubyte")] {
            let export = try runCommand(python, [repositoryPath("scripts/export_onnx.py"), run + "/best.safetensors", run + "/model.onnx"])
            XCTAssertEqual(export.status, 0, export.stderr)
            XCTAssertTrue(export.stdout.contains("wrote \(run)/model.onnx"), export.stdout)
            let p = try runTrainer(["predict", "--checkpoint", run + "/best.safetensors", "--input", raw, "--out", run + "/predictions.csv"])
            XCTAssertEqual(p.status, 0, p.stderr)
            let r = try runCommand(python, ["-c", check, run + "/model.onnx", run + "/predictions.csv", raw])
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            print(r.stdout)
        }
        let bad = try runCommand(python, [repositoryPath("scripts/export_onnx.py"), tmp + "/test.csv", tmp + "/x.onnx"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
    }

    // MARK: - Bad input

    /// Every bad input of a user's data: one line naming the file and the place, exit 65 (bad input)
    /// on every rank, quickly; a class with no training sample is a warning, not an error.
    func testBadInputsGiveOneLineNamingTheFileAndPlace() throws {
        let python = try requirePython(["numpy"], install: ["numpy"], requiredEnv: "NUMPY_REFERENCE_REQUIRED", feature: "NumPy")
        let tmp = try temporaryDirectory(self)
        let header = "a,b,label\n"
        func csv(_ name: String, _ body: String) throws -> String {
            try (body).write(toFile: tmp + "/" + name, atomically: true, encoding: .utf8)
            return tmp + "/" + name
        }
        let good = try csv("good.csv", header + (0..<40).map { "\($0 % 5).5,\($0),\($0 % 2 == 0 ? "x" : "y")\n" }.joined())
        let cases: [(String, [String], [String])] = [
            ("ragged row", ["--data", try csv("ragged.csv", header + "1,2,x\n3,x\n"), "--test-data", good], ["ragged.csv:3: 2 fields, the header has 3 columns"]),
            ("not a number", ["--data", try csv("text.csv", header + "1,2,x\n1,two,y\n"), "--test-data", good], ["text.csv:3: column 'b': expected a number, found 'two'"]),
            ("NaN", ["--data", try csv("nan.csv", header + "1,2,x\nnan,2,y\n"), "--test-data", good], ["nan.csv:3: column 'a': nan (features must be finite numbers)"]),
            ("infinity", ["--data", try csv("inf.csv", header + "1,2,x\n1,-inf,y\n"), "--test-data", good], ["inf.csv:3: column 'b': -inf"]),
            ("no label column", ["--data", try csv("nolabel.csv", "a,b,c\n1,2,3\n"), "--test-data", good], ["nolabel.csv:1: no column 'label'", "a, b, c"]),
            ("empty file", ["--data", try csv("empty.csv", ""), "--test-data", good], ["empty.csv: empty file"]),
            ("header only", ["--data", try csv("header.csv", header), "--test-data", good], ["header.csv: no data rows after the header"]),
            ("no test file", ["--data", good], ["good.csv: a CSV training file needs its test file: --test-data"]),
            ("test width", ["--data", good, "--test-data", try csv("wide.csv", "a,b,c,label\n1,2,3,x\n")], ["wide.csv: its 3 feature columns differ from the 2 of"]),
            ("unknown label", ["--data", good, "--test-data", try csv("unknown.csv", header + "1,2,x\n1,2,z\n")], ["unknown.csv:3: label 'z' is not a class of the training data"]),
        ]
        for (name, args, needles) in cases {
            try expectOneLine(["train", "--run-dir", tmp + "/run-\(name.count)"] + args, needles)
        }
        // The same under mpirun: every rank stops, one line.
        try expectOneLine(np: 2, ["train", "--run-dir", tmp + "/run-mpi", "--data", tmp + "/nan.csv", "--test-data", good], ["nan.csv:3: column 'a'"])

        let script = """
            import numpy as np, sys
            d = sys.argv[1]
            x, y = np.zeros((10, 3, 3), np.uint8), np.arange(10) % 3
            np.savez(d + "/dtype.npz", x_train=x.astype(np.int64), y_train=y, x_test=x, y_test=y)
            np.savez(d + "/missing.npz", x_train=x, y_train=y, x_test=x)
            np.savez(d + "/length.npz", x_train=x, y_train=y[:9], x_test=x, y_test=y)
            np.savez(d + "/range.npz", x_train=x, y_train=y, x_test=x, y_test=y + 4)
            np.savez(d + "/floaty.npz", x_train=x, y_train=y.astype(np.float32), x_test=x, y_test=y)
            np.savez(d + "/empty-class.npz", x_train=np.tile(x, (8, 1, 1)), y_train=np.tile(y * 2 % 4, 8), x_test=x, y_test=y * 2 % 4)
            open(d + "/broken.npz", "wb").write(b"PK not a zip")
            """
        let made = try runCommand(python, ["-c", script, tmp])
        XCTAssertEqual(made.status, 0, made.stderr)
        let npz: [(String, [String])] = [
            ("dtype", ["dtype.npz: array x_train is i8 [10, 3, 3], expected uint8 images"]),
            ("missing", ["missing.npz: no array 'y_test'", "x_test, x_train, y_train"]),
            ("length", ["length.npz: array x_train has 10 samples, its labels 9"]),
            ("range", ["range.npz: array y_test: label 4 at index 0 is not a class of the training data (0 to 2)"]),
            ("floaty", ["floaty.npz: array y_train is f4 [10], expected integer labels"]),
            ("broken", ["broken.npz: not a zip archive"]),
        ]
        for (name, needles) in npz {
            try expectOneLine(["train", "--run-dir", tmp + "/npz-\(name)", "--data", tmp + "/\(name).npz"], needles)
        }
        let warned = try runTrainer(["train", "--run-dir", tmp + "/warned", "--data", tmp + "/empty-class.npz", "--epochs", "1", "--batch-size", "8", "--hidden", "8,8", "--threads", "1"])
        XCTAssertEqual(warned.status, 0, warned.stderr)
        XCTAssertTrue(warned.stdout.contains("warning: class 1 (1) has no training sample"), warned.stdout)
        XCTAssertEqual(try runTrainer(["train", "--data", tmp + "/missing.npz", "--run-dir", tmp + "/status"]).status, 65, "bad input's status")
        // predict: a file whose width does not fit the model.
        try writeSyntheticDataset(to: tmp + "/idx", train: 200, test: 50)
        XCTAssertEqual(try runTrainer(["train", "--data", tmp + "/idx", "--run-dir", tmp + "/model", "--epochs", "1", "--hidden", "8,8", "--threads", "1"]).status, 0)
        try expectOneLine(["predict", "--checkpoint", tmp + "/model/best.safetensors", "--input", good], ["good.csv: 2 values per sample, the model", "takes 64"])
    }

    /// `rows` samples of 4 features whose means depend on the class, the label column "species"
    /// third, a quoted header field with a comma, a quoted label, CRLF line ends.
    func writeCSV(_ path: String, rows: Int, labels: [String], seed: UInt64) throws {
        var rng = SplitMix64(seed)
        var text = "sepal length,\"sepal, width\",species,petal length,petal width\r\n"
        for i in 0..<rows {
            let k = (i * 7 + Int(seed)) % labels.count
            let f = (0..<4).map { j in String(Double(k * 3 + j) + Double(rng.normal()) * 0.7) }
            let label = k == 0 ? "\"\(labels[k])\"" : labels[k]
            text += "\(f[0]),\(f[1]),\(label),\(f[2]),\(f[3])\r\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// Two real data sets that scikit-learn ships (not Fashion-MNIST): its 8×8 digits as a .npz of
/// images and its breast-cancer table as CSV files with string labels, trained with mpirun -np 2 by
/// scripts/compare_sklearn.py, which also trains scikit-learn's MLPClassifier on the same split:
/// dist-trainer's test accuracy must be on par (at most 2 points below).
final class OwnDataRealTests: XCTestCase {
    func testRealDataSetsOnParWithScikitLearn() throws {
        _ = try mpirunPath()
        let python = try requirePython(["numpy", "sklearn"], install: ["numpy", "scikit-learn"], requiredEnv: "SKLEARN_REQUIRED", feature: "scikit-learn")
        let tmp = try temporaryDirectory(self)
        for dataset in ["digits", "breast_cancer"] {
            let r = try runCommand(python, [repositoryPath("scripts/compare_sklearn.py"), dataset, "--bin", try trainerBinary(), "--np", "2",
                                            "--dir", tmp + "/" + dataset], environment: trainerEnvironment(), timeout: 300)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            print(r.stdout)
            let result = try readJSON(tmp + "/\(dataset)/comparison.json")
            let (ours, theirs) = (result["dist_trainer_test_accuracy"] as? Double ?? 0, result["mlpclassifier_test_accuracy"] as? Double ?? 1)
            XCTAssertGreaterThanOrEqual(ours, theirs - 0.02, "\(dataset): dist-trainer \(ours), MLPClassifier \(theirs)")
            XCTAssertGreaterThan(ours, 0.9, dataset)
        }
    }
}
