// Checkpoints: resume is exact (bitwise, on the same rank count or another),
// a SIGTERM mid-epoch loses nothing, and every kind of bad checkpoint gives one clear line.
import Formats
import Foundation
import TestSupport
import Training
import XCTest

final class CheckpointTests: XCTestCase {
    let metricKeys = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]
    let net = ["--hidden", "32,16,8", "--batch-size", "100", "--threads", "1"]

    func run(_ np: Int, _ args: [String], expectSuccess: Bool = true) throws -> RunResult {
        let r = np == 1 ? try runTrainer(args, timeout: 300) : try runMPI(np, args, timeout: 300)
        XCTAssertFalse(r.timedOut, "\(args) timed out")
        if expectSuccess { XCTAssertEqual(r.status, 0, "np=\(np) \(args): \(r.stderr)") }
        return r
    }

    func assertSameMetrics(_ a: String, _ b: String, tolerance: Double, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try readMetrics(a), y = try readMetrics(b)
        XCTAssertEqual(x.count, y.count, "epoch count", file: file, line: line)
        for (p, q) in zip(x, y) {
            XCTAssertEqual(p["lr"] as! Double, q["lr"] as! Double, file: file, line: line)
            XCTAssertEqual(p["epoch"] as! Int, q["epoch"] as! Int, file: file, line: line)
            for key in metricKeys {
                let (u, v) = (p[key] as! Double, q[key] as! Double)
                if tolerance == 0 {
                    XCTAssertEqual(u, v, "\(key) lr \(p["lr"]!) epoch \(p["epoch"]!)", file: file, line: line)
                } else {
                    XCTAssertEqual(u, v, accuracy: tolerance, "\(key) lr \(p["lr"]!) epoch \(p["epoch"]!)", file: file, line: line)
                }
            }
        }
        let s = try readJSON(a + "/summary.json")["test"] as! [String: Any]
        let t = try readJSON(b + "/summary.json")["test"] as! [String: Any]
        for key in ["loss", "accuracy", "macro_f1"] {
            XCTAssertEqual(s[key] as! Double, t[key] as! Double, accuracy: tolerance, "test \(key)", file: file, line: line)
        }
    }

    // MARK: - Resume

    /// Stopped after epoch 2 of 4 and resumed with --epochs 4: bitwise the uninterrupted run, on
    /// the same rank count (2 ranks).
    func testResumeAfterEpochIsBitwiseIdenticalOnSameRankCount() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let common = ["--data-dir", tmp + "/data", "--lr", "0.003"] + net
        _ = try run(2, ["train", "--run-dir", tmp + "/full", "--epochs", "4"] + common)
        _ = try run(2, ["train", "--run-dir", tmp + "/part", "--epochs", "2"] + common)
        let resumed = try run(2, ["train", "--resume", tmp + "/part", "--epochs", "4", "--threads", "1"])
        XCTAssertTrue(resumed.stdout.contains("resuming from"), resumed.stdout)
        try assertSameMetrics(tmp + "/full", tmp + "/part", tolerance: 0)
        // The best checkpoint is the same model, byte for byte in its tensors.
        let a = try readSafetensors(path: tmp + "/full/best.safetensors")
        let b = try readSafetensors(path: tmp + "/part/best.safetensors")
        XCTAssertEqual(a.tensors, b.tensors)
    }

    /// SIGTERM in the middle of a sweep: the job stops after the current step with a saved state
    /// and exit status 143; resuming finishes with exactly the uninterrupted run's metrics.
    func testSigtermMidEpochThenResumeIsExact() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 5000, test: 300)
        let common = ["--data-dir", tmp + "/data", "--lr", "0.002,0.001", "--epochs", "6",
                      "--hidden", "128,64,32", "--batch-size", "50", "--threads", "1"]
        _ = try run(1, ["train", "--run-dir", tmp + "/full"] + common)

        let log = tmp + "/cut.log"
        let p = try startProcess(try trainerBinary(), ["train", "--run-dir", tmp + "/cut"] + common, log: log)
        // Wait for the first finished epoch, then interrupt somewhere in the rest of the sweep.
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: tmp + "/cut/last.safetensors") && p.isRunning && Date() < deadline {
            usleep(5_000)
        }
        usleep(30_000)
        p.terminate()
        p.waitUntilExit()
        let output = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertEqual(p.terminationStatus, 143, output)
        XCTAssertTrue(output.contains("interrupted by SIGTERM") && output.contains("--resume " + tmp + "/cut"), output)
        XCTAssertLessThan(try readMetrics(tmp + "/cut").count, 12, "the run should have been interrupted")

        let resumed = try run(1, ["train", "--resume", tmp + "/cut"])
        XCTAssertTrue(resumed.stdout.contains("resuming from"), resumed.stdout)
        try assertSameMetrics(tmp + "/full", tmp + "/cut", tolerance: 0)
    }

    /// Resume on another number of ranks: np=2 → np=1 and np=1 → np=3 (uneven shards), bitwise the
    /// uninterrupted run (every metric, the test results, every tensor of both checkpoints).
    func testResumeOnDifferentRankCounts() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let common = ["--data-dir", tmp + "/data", "--lr", "0.003"] + net
        for (first, second) in [(2, 1), (1, 3)] {
            let tag = "\(first)to\(second)"
            _ = try run(first, ["train", "--run-dir", tmp + "/full" + tag, "--epochs", "4"] + common)
            _ = try run(first, ["train", "--run-dir", tmp + "/part" + tag, "--epochs", "2"] + common)
            _ = try run(second, ["train", "--resume", tmp + "/part" + tag, "--epochs", "4", "--threads", "1"])
            try assertSameMetrics(tmp + "/full" + tag, tmp + "/part" + tag, tolerance: 0)
            if let difference = try runDifference(tmp + "/full" + tag, tmp + "/part" + tag) { XCTFail("\(tag): \(difference)") }
            XCTAssertEqual(try readJSON(tmp + "/part" + tag + "/config.json")["ranks"] as? Int, second)
        }
    }

    /// --checkpoint-every: a rank lost mid-epoch (it stops responding, as a host behind a dead link
    /// does, and the watchdog ends the job; nothing is saved at the time) costs only the steps since
    /// the last in-epoch checkpoint: the resume on one process starts there and ends with the
    /// uninterrupted run's bits. A damaged newest checkpoint falls back to the one before,
    /// with one line saying so, and still ends with the same bits.
    func testCheckpointEveryNStepsSurvivesAKilledRank() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2500, test: 300)
        // 20 steps per epoch of 100; rank 1 hangs before its 30th step (epoch 2, step 10).
        let common = ["train", "--data-dir", tmp + "/data", "--lr", "0.003", "--epochs", "3"] + net
        _ = try run(1, common + ["--run-dir", tmp + "/full"])
        for (name, damage) in [("intact", false), ("damaged", true)] {
            let dir = tmp + "/" + name
            let r = try runMPI(2, common + ["--run-dir", dir, "--checkpoint-every", "4", "--collective-timeout", "2"],
                               environment: ["DIST_TRAINER_FAULT": "hang:1:30"], timeout: 60)
            XCTAssertEqual(r.status, 69, "a lost rank: \(r.stderr)")
            let position = { (file: String) throws -> String in try readSafetensors(path: dir + "/" + file).metadata["position"] ?? "" }
            // Run step 28 = epoch 2 step 8 is the newest multiple of 4 before the hang; 24 (step 4) the one before.
            let (newest, before) = (try position("last.safetensors"), try position("last.prev.safetensors"))
            XCTAssertTrue(newest.contains("\"step_in_epoch\":8") && newest.contains("\"epochs_done\":1"), newest)
            XCTAssertTrue(before.contains("\"step_in_epoch\":4") && before.contains("\"epochs_done\":1"), before)
            if damage {
                let handle = try XCTUnwrap(FileHandle(forWritingAtPath: dir + "/last.safetensors"))
                try handle.truncate(atOffset: 4000)
                try handle.close()
            }
            let resumed = try run(1, ["train", "--resume", dir, "--threads", "1"])
            XCTAssertTrue(resumed.stdout.contains("1 epoch done + \(damage ? 4 : 8) steps"), resumed.stdout)
            let warnings = resumed.stderr.split(separator: "\n").filter { $0.hasPrefix("dist-trainer: warning:") }
            XCTAssertEqual(warnings.count, damage ? 1 : 0, resumed.stderr)
            if damage { XCTAssertTrue(warnings[0].contains("resuming from the checkpoint before it") && warnings[0].contains("last.prev.safetensors"), resumed.stderr) }
            if let difference = try runDifference(tmp + "/full", dir) { XCTFail("\(name): \(difference)") }
        }
    }

    /// A resumed run keeps its settings: flags that change the math are refused, --epochs may
    /// only grow, and a directory without a checkpoint is named.
    func testResumeRefusesChangedSettings() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data")
        _ = try run(1, ["train", "--run-dir", tmp + "/run", "--epochs", "2", "--lr", "0.003", "--data-dir", tmp + "/data"] + net)
        for (flags, culprit) in [(["--lr", "0.1"], "--lr: given 0.1, but the run in \(tmp)/run was trained with 0.003"),
                                 (["--model", "3"], "--model: given 3, but"), (["--epochs", "1"], "--epochs: given 1, but the run in \(tmp)/run was trained with 2; it may only be raised"),
                                 (["--bn", "local"], "--bn: given local, but"), (["--seed", "5"], "--seed: given 5, but")] {
            let r = try run(1, ["train", "--resume", tmp + "/run"] + flags, expectSuccess: false)
            XCTAssertEqual(r.status, 64, "a refused flag: \(flags)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(culprit) && r.stderr.contains(tmp + "/run"), r.stderr)
        }
        try FileManager.default.createDirectory(atPath: tmp + "/empty", withIntermediateDirectories: true)
        let r = try run(1, ["train", "--resume", tmp + "/empty"], expectSuccess: false)
        XCTAssertEqual(r.status, 65, "bad input")
        XCTAssertTrue(r.stderr.contains("--resume " + tmp + "/empty") && r.stderr.contains("last.safetensors"), r.stderr)
    }

    // MARK: - Bad checkpoints

    /// Every malformed or mismatched checkpoint: one line naming the file and the problem, exit 1,
    /// for `evaluate` and for `train --resume`, single process and under mpirun with 2 ranks.
    func testBadCheckpointsGiveOneClearLine() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data")
        _ = try run(1, ["train", "--run-dir", tmp + "/good", "--epochs", "1", "--lr", "0.003", "--data-dir", tmp + "/data"] + net)
        _ = try run(1, ["train", "--run-dir", tmp + "/other", "--epochs", "1", "--lr", "0.003", "--data-dir", tmp + "/data",
                        "--hidden", "24,12,8", "--batch-size", "100", "--threads", "1"])
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tmp + "/good/last.safetensors")))
        let headerLength = Int(good[0]) | Int(good[1]) << 8 | Int(good[2]) << 16 | Int(good[3]) << 24
        let header = String(decoding: good[8..<(8 + headerLength)], as: UTF8.self)
        let parsed = try decodeSafetensors(good, name: "good")

        func replacingHeader(_ text: String) -> [UInt8] {
            var h = Array(text.utf8)
            while (8 + h.count) % 8 != 0 { h.append(0x20) }
            var length = UInt64(h.count).littleEndian
            return withUnsafeBytes(of: &length) { Array($0) } + h + Array(good[(8 + headerLength)...])
        }
        func rewritten(_ change: (inout SafetensorsFile) -> Void) -> [UInt8] {
            var f = parsed
            change(&f)
            return encodeSafetensors(f)
        }
        let weight = parsed.tensors.firstIndex { $0.name == "layers.1.dense.weight" }!
        let cases: [(String, [UInt8], [String])] = [
            ("truncated", Array(good[0..<5]), ["truncated"]),
            ("cut", Array(good[0..<(good.count / 2)]), ["data"]),
            ("header-length", [0xFF, 0xFF, 0xFF, 0x0F, 0, 0, 0, 0] + Array(good[8...]), ["header length"]),
            ("bad-json", replacingHeader("{\"x\": [1, 2"), ["JSON"]),
            ("dtype", replacingHeader(header.replacingOccurrences(of: "\"F32\"", with: "\"F16\"")), ["F16"]),
            ("shape", rewritten { $0.tensors[weight] = Tensor(name: "layers.1.dense.weight", shape: [16, 4], values: Array(repeating: 0, count: 64)) },
             ["layers.1.dense.weight", "[32, 16]"]),
            ("missing", rewritten { $0.tensors.removeAll { $0.name == "head.bias" } }, ["head.bias"]),
            ("not-ours", rewritten { $0.metadata["format"] = "something-else" }, ["not a dist-trainer checkpoint"]),
        ]
        for (name, bytes, keywords) in cases {
            let dir = tmp + "/bad-" + name
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/last.safetensors"))
            let path = dir + "/last.safetensors"
            for (np, args) in [(1, ["evaluate", "--checkpoint", path, "--data-dir", tmp + "/data"]),
                               (1, ["train", "--resume", dir, "--data-dir", tmp + "/data"]),
                               (2, ["train", "--resume", dir, "--data-dir", tmp + "/data"])] {
                if np > 1, (try? mpirunPath()) == nil { continue }
                let r = try run(np, args, expectSuccess: false)
                XCTAssertNotEqual(r.status, 0, "\(name) \(args)")
                let ours = r.stderr.split(separator: "\n").filter { $0.hasPrefix("dist-trainer: error:") }
                XCTAssertEqual(ours.count, 1, "\(name) np=\(np) \(args): \(r.stderr)")
                let line = String(ours.first ?? "")
                XCTAssertTrue(line.contains(path), "\(name): \(line)")
                for k in keywords { XCTAssertTrue(line.contains(k), "\(name): '\(k)' not in \(line)") }
            }
        }
        // A checkpoint of another architecture: refused by --resume and named by evaluate.
        let r = try run(1, ["train", "--resume", tmp + "/other", "--hidden", "32,16,8"], expectSuccess: false)
        XCTAssertEqual(r.status, 64, "a refused flag")
        XCTAssertTrue(r.stderr.contains("--hidden: given 32,16,8, but the run in \(tmp)/other was trained with 24,12,8"), r.stderr)
        let wrongData = tmp + "/wide"
        try writeSyntheticDataset(to: wrongData, rows: 9, cols: 9)
        let e = try run(1, ["evaluate", "--checkpoint", tmp + "/other/best.safetensors", "--data-dir", wrongData], expectSuccess: false)
        XCTAssertEqual(e.status, 1)
        XCTAssertTrue(e.stderr.contains("best.safetensors") && e.stderr.contains("64") && e.stderr.contains("81"), e.stderr)
    }

    /// `evaluate` on a best checkpoint reproduces the run's own numbers (test and validation).
    func testEvaluateReproducesSummary() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data")
        _ = try run(1, ["train", "--run-dir", tmp + "/run", "--epochs", "2", "--lr", "0.003", "--data-dir", tmp + "/data"] + net)
        let summary = try readJSON(tmp + "/run/summary.json")
        // Single process, and sharded over 2 ranks under mpirun (rank 0 alone prints).
        let rankCounts = (try? mpirunPath()) == nil ? [1] : [1, 2]
        for np in rankCounts {
          for (split, key) in [("test", "test"), ("val", "validation")] {
            let r = try run(np, ["evaluate", "--checkpoint", tmp + "/run/best.safetensors", "--split", split, "--json"])
            let out = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let expected = summary[key] as! [String: Any]
            XCTAssertEqual(out["accuracy"] as! Double, expected["accuracy"] as! Double, accuracy: 1e-12, split)
            // Every sample's logits are bitwise the run's (oneDNN computes a row the same way in any
            // chunk and with any threads); only the Double sum over chunks and ranks is reordered.
            XCTAssertEqual(out["loss"] as! Double, expected["loss"] as! Double, accuracy: 1e-12, split)
            XCTAssertEqual(out["confusion_matrix"] as! [[Int]], expected["confusion_matrix"] as! [[Int]], split)
            XCTAssertEqual((out["per_class"] as! [[String: Any]]).count, 10)
          }
        }
        let table = try run(1, ["evaluate", "--checkpoint", tmp + "/run/best.safetensors"])
        // Synthetic data (not Fashion-MNIST, whose training labels have another checksum): classes named by number.
        XCTAssertTrue(table.stdout.contains("\n9 ") && table.stdout.contains("precision") && !table.stdout.contains("Ankle boot"), table.stdout)
    }
}
