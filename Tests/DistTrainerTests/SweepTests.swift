// Sweeps and console: a scripted sweep (scripts/sweep.sh, one job per learning rate) gives the
// same numbers as the in-process sweep, `summarize` picks the global best and evaluates it, and
// the console shows a live progress line only on a terminal.
import Foundation
import XCTest

final class SweepTests: XCTestCase {
    var scripts: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts").path }

    func testScriptedSweepEqualsInProcessSweepAndSummarizes() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let flags = ["--data-dir", tmp + "/data", "--hidden", "32,16,8", "--epochs", "3", "--threads", "1"]
        let inProcess = try runTrainer(["train", "--run-dir", tmp + "/inprocess", "--lr", "0.003,0.001", "--batch-size", "100"] + flags)
        XCTAssertEqual(inProcess.status, 0, inProcess.stderr)

        let sweep = try runProcess("/bin/bash", [scripts + "/sweep.sh", "--sweep-dir", tmp + "/sweep", "--lr", "0.003,0.001",
                                                 "--batch-size", "100", "--np", "1", "--"] + flags,
                                   environment: ["DIST_TRAINER_SKIP_BUILD": "1", "DIST_TRAINER_BIN": try trainerBinary()], timeout: 300)
        XCTAssertEqual(sweep.status, 0, sweep.stdout + sweep.stderr)

        // Each grid point reproduces its learning rate's rows of the in-process sweep exactly.
        let all = try readMetrics(tmp + "/inprocess")
        for lr in [0.003, 0.001] {
            let point = try readMetrics(tmp + "/sweep/model2-batch100-lr\(lr)")
            let rows = all.filter { $0["lr"] as! Double == lr }
            XCTAssertEqual(point.count, 3)
            for (a, b) in zip(point, rows) {
                for key in ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"] {
                    XCTAssertEqual(a[key] as! Double, b[key] as! Double, "lr \(lr) epoch \(a["epoch"]!) \(key)")
                }
            }
        }

        // Two jobs at once (--parallel 2, sharing this machine): the same numbers again.
        let concurrent = try runProcess("/bin/bash", [scripts + "/sweep.sh", "--sweep-dir", tmp + "/parallel", "--lr", "0.003,0.001",
                                                      "--batch-size", "100", "--np", "1", "--parallel", "2", "--"] + flags,
                                        environment: ["DIST_TRAINER_SKIP_BUILD": "1", "DIST_TRAINER_BIN": try trainerBinary()], timeout: 300)
        XCTAssertEqual(concurrent.status, 0, concurrent.stdout + concurrent.stderr)
        XCTAssertTrue(concurrent.stdout.contains("2 at a time"), concurrent.stdout)
        for lr in [0.003, 0.001] {
            let a = try readMetrics(tmp + "/sweep/model2-batch100-lr\(lr)"), b = try readMetrics(tmp + "/parallel/model2-batch100-lr\(lr)")
            XCTAssertEqual(a.map { $0["val_loss"] as! Double }, b.map { $0["val_loss"] as! Double }, "lr \(lr)")
        }

        // summarize: the global best by validation macro-F1, copied and evaluated on the test set.
        let summary = try readJSON(tmp + "/sweep/summary.json")
        let bestRun = summary["best_run"] as! String
        let candidates = try ["model2-batch100-lr0.003", "model2-batch100-lr0.001"].map { name -> (String, Double, Double) in
            let s = try readJSON(tmp + "/sweep/\(name)/summary.json")
            return (name, (s["best"] as! [String: Any])["val_macro_f1"] as! Double, (s["test"] as! [String: Any])["accuracy"] as! Double)
        }
        let expected = candidates.max { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 > $1.0) }!
        XCTAssertEqual(bestRun, expected.0)
        XCTAssertEqual((summary["test"] as! [String: Any])["accuracy"] as! Double, expected.2, accuracy: 1e-6)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/sweep/best.safetensors"))
        let csv = try String(contentsOfFile: tmp + "/sweep/comparison.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 3, csv.joined(separator: "\n"))
        XCTAssertTrue(csv[0].hasPrefix("run,model,batch_size,learning_rates,best_lr,best_epoch,best_val_macro_f1,val_accuracy,test_accuracy"))
        let md = try String(contentsOfFile: tmp + "/sweep/comparison.md", encoding: .utf8)
        XCTAssertTrue(md.contains("\(bestRun) **(best)**"), md)

        // The grid listing used by Slurm array tasks.
        let list = try runProcess("/bin/bash", [scripts + "/sweep.sh", "--list", "--lr", "0.1,0.2", "--model", "1,3", "--batch-size", "64"])
        XCTAssertEqual(list.stdout.split(separator: "\n").count, 4, list.stdout)
        let args = try runProcess("/bin/bash", [scripts + "/sweep.sh", "--args", "3", "--lr", "0.1,0.2", "--model", "1,3", "--sweep-dir", "S"])
        XCTAssertTrue(args.stdout.hasPrefix("--model 3 --batch-size 128 --lr 0.2 --run-dir S/model3-batch128-lr0.2"), args.stdout)
        let clash = try runProcess("/bin/bash", [scripts + "/sweep.sh", "--lr", "0.1", "--", "--lr", "0.2"])
        XCTAssertEqual(clash.status, 2)
        XCTAssertTrue(clash.stderr.contains("'--lr' after -- would override the grid"), clash.stderr)
    }

    func testSummarizeWithoutRunsSaysSo() throws {
        let tmp = try temporaryDirectory(self)
        let r = try runTrainer(["summarize", tmp])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(tmp) && r.stderr.contains("no finished run"), r.stderr)
    }

    /// On a terminal: a progress line redrawn in place and erased before each ordinary line. Not on
    /// a terminal (this pipe): no carriage returns or escape sequences at all.
    func testProgressLineOnlyOnTerminal() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 3000, test: 100)
        let args = ["train", "--data-dir", tmp + "/data", "--hidden", "64,32,16", "--epochs", "2", "--lr", "0.003",
                    "--batch-size", "20", "--threads", "1"]
        let plain = try runTrainer(args + ["--run-dir", tmp + "/plain"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertFalse(plain.stdout.contains("\r") || plain.stdout.contains("\u{1B}"), plain.stdout)

        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("script(1) not installed") }
        let command = ([try trainerBinary()] + args + ["--run-dir", tmp + "/tty"]).joined(separator: " ")
        let tty = try runProcess("/usr/bin/script", ["-qfec", command, "/dev/null"], timeout: 120)
        XCTAssertEqual(tty.status, 0, tty.stdout)
        XCTAssertTrue(tty.stdout.contains("\r\u{1B}[2K  epoch 1/2  step"), "no progress line on a terminal")
        XCTAssertTrue(tty.stdout.contains("ETA"))
        // Every ordinary line starts clean: an epoch line is preceded by an erase, never by progress text.
        for line in tty.stdout.components(separatedBy: "\n") where line.contains("train loss") {
            let visible = line.components(separatedBy: "\r\u{1B}[2K").last!
            XCTAssertTrue(visible.hasPrefix("lr 0.003 epoch"), "garbled line: \(line.debugDescription)")
        }
    }
}
