// RecipeTests: the training features beyond the seed's recipe, end to end — off by default, rank
// invariant with everything on (one sharded step equals the whole-batch step, so np=1 and np=2
// agree), exactly resumable mid-schedule, early stopping agreed by every rank, configurations
// replayed from a file, and TensorBoard event files read back by the real `tensorboard` package.
import Foundation
import TestSupport
import Training
import XCTest

final class RecipeTests: XCTestCase {
    let base = ["--hidden", "32,16", "--batch-size", "60", "--lr", "0.003", "--threads", "1"]
    let everything = ["--lr-schedule", "cosine", "--warmup-epochs", "1", "--weight-decay", "0.05", "--label-smoothing", "0.1",
                      "--augment", "--augment-flip", "--accumulate", "2"]
    let exactFields = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]

    func values(_ dir: String) throws -> [[Double]] {
        try readMetrics(dir).map { row in exactFields.map { row[$0] as! Double } }
    }

    /// The new settings, given explicitly with their default values, change nothing.
    func testEverythingIsOffByDefault() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 600, test: 100)
        let common = ["train", "--data-dir", tmp + "/data", "--epochs", "2"] + base
        XCTAssertEqual(try runTrainer(common + ["--run-dir", tmp + "/default"]).status, 0)
        XCTAssertEqual(try runTrainer(common + ["--run-dir", tmp + "/explicit", "--lr-schedule", "constant", "--warmup-epochs", "0",
                                                "--weight-decay", "0", "--label-smoothing", "0", "--early-stopping", "0",
                                                "--accumulate", "1"]).status, 0)
        XCTAssertEqual(try values(tmp + "/default"), try values(tmp + "/explicit"))
        let row = try readMetrics(tmp + "/default")[0]
        XCTAssertNil(row["lr_last"])
        XCTAssertNil(row["early_stopped"])
        let config = try readJSON(tmp + "/default/config.json")
        XCTAssertEqual(config["lr_schedule"] as? String, "constant")
        XCTAssertEqual(config["augment_shift"] as? Int, 0)
    }

    /// Schedule, AdamW, label smoothing and augmentation together: np=2 is bitwise np=1 (the
    /// augmentation of an image depends on its index only, the schedule on the step, and every sum
    /// of a step is exact).
    func testAllFeaturesAreRankInvariant() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 600, test: 100)
        let common = ["train", "--data-dir", tmp + "/data", "--epochs", "3"] + base + everything
        XCTAssertEqual(try runTrainer(common + ["--run-dir", tmp + "/one"]).status, 0)
        let r = try runMPI(2, common + ["--run-dir", tmp + "/two"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for (a, b) in zip(try values(tmp + "/one"), try values(tmp + "/two")) {
            XCTAssertEqual(a, b)
        }
        // The schedule's last rate is recorded. 480 samples in steps of 2 × 60: 4 steps per epoch,
        // 12 in all, the first 4 warming up; the last step is 7/8 of the way through the cosine.
        let last = try readMetrics(tmp + "/one").last!["lr_last"] as! Double
        XCTAssertEqual(last, 0.003 * 0.5 * (1 + cos(Double.pi * 7 / 8)), accuracy: 1e-12)
    }

    /// Stopped mid-schedule by a signal and resumed: bitwise the uninterrupted run.
    func testResumeMidScheduleIsExact() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1200, test: 100)
        let common = ["train", "--data-dir", tmp + "/data", "--epochs", "3"] + base + everything
        XCTAssertEqual(try runTrainer(common + ["--run-dir", tmp + "/full"]).status, 0)
        let ready = tmp + "/paused"
        // 8 steps per epoch (960 samples, 2 × 60 per step): stop in epoch 3, step 6.
        let p = try startProcess(try trainerBinary(), common + ["--run-dir", tmp + "/cut"],
                                 environment: ["DIST_TRAINER_FAULT": "pause:0:22", "DIST_TRAINER_FAULT_READY": ready], log: nil)
        XCTAssertTrue(waitForFile(ready, while: p))
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 143)
        let resumed = try runTrainer(["train", "--resume", tmp + "/cut"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try values(tmp + "/cut"), try values(tmp + "/full"))
    }

    /// Early stopping: rank 0 decides, every rank stops that learning rate together, the sweep goes
    /// on; recorded in the metrics and the summary.
    func testEarlyStoppingEndsTheRunOnEveryRank() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 600, test: 100)
        // The synthetic classes separate perfectly within a few epochs: F1 reaches 1 and stops improving.
        let r = try runMPI(2, ["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--epochs", "30", "--early-stopping", "2",
                               "--hidden", "32,16", "--batch-size", "60", "--lr", "0.01,0.003", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("stopping this learning rate early"), r.stdout)
        let rows = try readMetrics(tmp + "/run")
        for lr in [0.01, 0.003] {
            let run = rows.filter { $0["lr"] as! Double == lr }
            XCTAssertLessThan(run.count, 30, "lr \(lr) ran all epochs")
            XCTAssertEqual(run.last?["early_stopped"] as? Bool, true, "lr \(lr)")
            XCTAssertEqual(run.dropLast().filter { $0["early_stopped"] != nil }.count, 0)
            // Two epochs without improvement of the run's best macro-F1.
            let f1 = run.map { $0["val_macro_f1"] as! Double }
            XCTAssertEqual(f1.firstIndex(of: f1.max()!)!, run.count - 3)
        }
        let stopped = try readJSON(tmp + "/run/summary.json")["early_stopped"] as! [[String: Any]]
        XCTAssertEqual(stopped.map { $0["lr"] as! Double }, [0.01, 0.003])
    }

    /// --config replays a run's config.json exactly; flags override it.
    func testConfigFileReplaysARun() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 600, test: 100)
        XCTAssertEqual(try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/first", "--epochs", "2"] + base + everything).status, 0)
        let replay = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/replay", "--threads", "1", "--config", tmp + "/first/config.json"])
        XCTAssertEqual(replay.status, 0, replay.stderr)
        XCTAssertEqual(try values(tmp + "/replay"), try values(tmp + "/first"))
        let shorter = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/shorter", "--threads", "1",
                                      "--config", tmp + "/first/config.json", "--epochs", "1"])
        XCTAssertEqual(shorter.status, 0, shorter.stderr)
        XCTAssertEqual(try values(tmp + "/shorter").count, 1)
        XCTAssertEqual(try readJSON(tmp + "/shorter/config.json")["weight_decay"] as? Double, 0.05)
        // The shipped recipes are valid configurations: three short epochs of each train (best.json
        // warms up for 2), and the run's config.json holds every setting of the recipe (bar the
        // overridden epochs).
        for recipe in ["seed", "best"] {
            let file = repositoryPath("recipes/\(recipe).json")
            let run = tmp + "/recipe-" + recipe
            let r = try runTrainer(["train", "--config", file, "--data-dir", tmp + "/data", "--run-dir", run, "--epochs", "3", "--threads", "1"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let written = try readJSON(run + "/config.json"), wanted = try readJSON(file)
            // Every key is a setting (a recipe need not list them all: the rest take their defaults).
            XCTAssertTrue(Set(wanted.keys).isSubset(of: TrainingConfig.settingKeys), "\(recipe).json: \(wanted.keys.sorted())")
            for (key, value) in wanted where key != "epochs" {
                XCTAssertEqual(written[key].map { "\($0)" }, "\(value)", "\(recipe).json: \(key)")
            }
        }
        let bad = tmp + "/bad.json"
        try "{\"epochs\": \"ten\"}".write(toFile: bad, atomically: true, encoding: .utf8)
        let r = try runTrainer(["train", "--data-dir", tmp + "/data", "--config", bad])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--config \(bad): epochs: expected an integer"), r.stderr)
        // A misspelled key would otherwise train the default quietly: one line naming it and the
        // closest setting, exit 1, nothing trained.
        try "{\"epochs\": 1, \"batchsize\": 64}".write(toFile: bad, atomically: true, encoding: .utf8)
        try expectOneLine(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/misspelled", "--config", bad],
                          ["--config \(bad): batchsize: not a setting (the closest is batch_size)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/misspelled/metrics.jsonl"))
    }

    /// TensorBoard's own reader (the `tensorboard` package's EventAccumulator) finds every scalar,
    /// per step and per epoch, one run directory per learning rate.
    func testTensorBoardReadsTheEventFiles() throws {
        let python = try requirePython(["tensorboard"], install: ["tensorboard"], requiredEnv: "TENSORBOARD_REQUIRED", feature: "TensorBoard's reader")
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 600, test: 100)
        XCTAssertEqual(try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--epochs", "2", "--hidden", "32,16",
                                       "--batch-size", "60", "--lr", "0.003,0.001", "--lr-schedule", "cosine", "--threads", "1"]).status, 0)
        let script = """
            import json, sys
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            out = {}
            for lr in ("0.003", "0.001"):
                acc = EventAccumulator(sys.argv[1] + "/tensorboard/lr_" + lr)
                acc.Reload()
                out[lr] = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
            print(json.dumps(out))
            """
        let r = try runCommand(python, ["-c", script, tmp + "/run"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: [String: [[Double]]]]
        let metrics = try readMetrics(tmp + "/run")
        for (i, lr) in ["0.003", "0.001"].enumerated() {
            let scalars = out[lr]!
            XCTAssertEqual(scalars["train/loss"]?.count, 16, "8 steps × 2 epochs")
            XCTAssertEqual(scalars["train/learning_rate"]?.first?[1] ?? 0, Double(lr)!, accuracy: 1e-9)
            let f1 = scalars["val/macro_f1"]!.map { $0[1] }
            let expected = metrics.filter { $0["lr_index"] as! Int == i }.map { $0["val_macro_f1"] as! Double }
            for (a, b) in zip(f1, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
            XCTAssertEqual(scalars["val/macro_f1"]!.map { $0[0] }, [8, 16])
        }
    }
}
