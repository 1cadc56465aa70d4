// HardeningTests: hostile files and careless runs. Every mutated data file or checkpoint ends with
// one line naming the file and a non-zero exit within 15 s (a FIFO or a device is refused, never
// read); a run directory that holds a run is never silently replaced; --resume auto, --version, the
// requeue signal, and the watchdog over every command's start-up.
import CoreSupport
import Datasets
import Formats
import Foundation
import TestSupport
import Training
import XCTest

final class HardeningTests: XCTestCase {
    let small = ["--hidden", "8,4", "--lr", "0.01", "--batch-size", "50", "--threads", "1"]

    // MARK: - Hostile data files

    func testHostileDataFiles() throws {
        let tmp = try temporaryDirectory(self)
        let labels = FashionMNIST.trainLabels
        func variant(_ name: String, _ change: (String) throws -> Void) throws -> String {
            let dir = tmp + "/" + name
            try writeSyntheticDataset(to: dir, train: 200, test: 50, gzipped: false)
            try change(dir + "/" + labels)
            return dir
        }
        func replace(_ path: String, with bytes: [UInt8]) throws {
            try? FileManager.default.removeItem(atPath: path)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        }
        let cases: [(String, [String])] = [
            (try variant("fifo") { try FileManager.default.removeItem(atPath: $0); XCTAssertEqual(mkfifo($0, 0o644), 0) }, [labels, "a FIFO"]),
            (try variant("directory") { try FileManager.default.removeItem(atPath: $0); try FileManager.default.createDirectory(atPath: $0, withIntermediateDirectories: false) },
             [labels, "a directory"]),
            (try variant("device") { try FileManager.default.removeItem(atPath: $0); try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "/dev/zero") },
             [labels, "a device"]),
            (try variant("symlink-loop") { try FileManager.default.removeItem(atPath: $0); try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: $0) },
             [labels, "cannot open"]),
            (try variant("huge-count") { try replace($0, with: [0, 0, 8, 1, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]) }, [labels, "truncated IDX payload"]),
            (try variant("huge-dims") { _ in
                try replace(tmp + "/huge-dims/" + FashionMNIST.trainImages, with: [0, 0, 8, 3] + [UInt8](repeating: 0xFF, count: 12) + [1, 2])
            }, [FashionMNIST.trainImages]),
            (try variant("gzip-bomb-lie") { try replace($0 + ".gz", with: Array(gzip(Array(repeating: 0, count: 1000)).dropLast(4)) + [0xFF, 0xFF, 0xFF, 0x7F]) },
             [labels]),
        ]
        for (dir, needles) in cases {
            try expectOneLine(["train", "--data-dir", dir, "--run-dir", tmp + "/run-" + UUID().uuidString.prefix(6)] + small, needles)
        }
        if (try? mpirunPath()) != nil {
            try expectOneLine(np: 2, ["train", "--data-dir", cases[0].0, "--run-dir", tmp + "/mpi"] + small, ["rank 0", "a FIFO"])
        }
    }

    // MARK: - Hostile checkpoints

    /// A real last.safetensors, rewritten with one hostile change at a time, given to `evaluate` and
    /// to `train --resume`.
    func testHostileCheckpoints() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 300, test: 60)
        XCTAssertEqual(try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/good", "--epochs", "2"] + small).status, 0)
        let good = try readSafetensors(path: tmp + "/good/last.safetensors")
        func metadata(_ key: String, _ transform: (String) -> String) -> SafetensorsFile {
            var f = good
            f.metadata[key] = transform(f.metadata[key] ?? "")
            return f
        }
        func json(_ key: String, _ edit: @escaping ([String: Any]) -> [String: Any]) -> SafetensorsFile {
            metadata(key) { text in
                let object = edit(try! JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any])
                return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            }
        }
        let cases: [(String, SafetensorsFile?, [String])] = [
            ("width-2^40", json("architecture") { var a = $0; a["hidden"] = [1 << 40, 4]; return a }, ["impossible network"]),
            ("width-int-max", json("architecture") { var a = $0; a["hidden"] = [Int.max, 4]; return a }, ["impossible network"]),
            ("input-huge", json("architecture") { var a = $0; a["input_width"] = 1 << 50; return a }, ["impossible network"]),
            ("lr-index-negative", json("position") { var p = $0; p["lr_index"] = -1; return p }, ["learning rate index -1"]),
            ("epochs-negative", json("position") { var p = $0; p["epochs_done"] = -5; return p }, ["-5 epochs done"]),
            ("step-beyond", json("position") { var p = $0; p["step_in_epoch"] = 10_000; return p }, ["step 10000"]),
            ("loss-nan", metadata("position") { $0.replacingOccurrences(of: "\"epoch_loss_sum\":0", with: "\"epoch_loss_sum\":\"nan\"") }, []),
            ("diverged-99", metadata("diverged") { _ in "[99]" }, ["abandoned learning rates [99]"]),
            ("optimizer-step-negative", metadata("optimizer_step") { _ in "-3" }, ["optimizer_step"]),
            ("config-epochs-negative", json("config") { var c = $0; c["epochs"] = -1; return c }, ["metadata 'config'", "epochs: expected 1 to 1000000, found -1"]),
            // A checkpoint's settings are complete or refused: without its seed it would resume with
            // the default seed, another split and shuffle than the run it continues.
            ("config-without-seed", json("config") { var c = $0; c["seed"] = nil; return c }, ["metadata 'config'", "seed: missing"]),
            ("config-without-accumulate", json("config") { var c = $0; c["accumulate"] = nil; return c }, ["accumulate: missing"]),
            ("config-unknown-setting", json("config") { var c = $0; c["momentum"] = 0.9; return c }, ["momentum: not a setting"]),
            ("broken-json", metadata("history") { String($0.dropLast(3)) }, ["metadata 'history'"]),
            ("history-epoch-zero", metadata("history") { $0.replacingOccurrences(of: "\"epoch\":1", with: "\"epoch\":0") }, ["impossible epoch record"]),
        ]
        var count = 0
        for (name, file, needles) in cases {
            let dir = tmp + "/" + name
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data(encodeSafetensors(file!)).write(to: URL(fileURLWithPath: dir + "/last.safetensors"))
            try expectOneLine(["train", "--resume", dir, "--data-dir", tmp + "/data"], [dir + "/last.safetensors"] + needles)
            count += 1
        }
        // The architecture cases are refused by evaluate as well.
        for name in ["width-2^40", "width-int-max", "input-huge"] {
            try expectOneLine(["evaluate", "--checkpoint", tmp + "/" + name + "/last.safetensors", "--data-dir", tmp + "/data"], ["impossible network"])
        }
        // Not a file at all: a FIFO, a directory, a loop of links.
        let fifo = tmp + "/fifo.safetensors", directory = tmp + "/dir.safetensors", loop = tmp + "/loop.safetensors"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: loop)
        for (path, needle) in [(fifo, "a FIFO"), (directory, "a directory"), (loop, "cannot open")] {
            try expectOneLine(["evaluate", "--checkpoint", path, "--data-dir", tmp + "/data"], [path, needle])
        }
        XCTAssertEqual(count, cases.count)
    }

    // MARK: - Run directories

    func testRunDirectoryIsNeverSilentlyReplaced() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 300, test: 60)
        let train = ["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--epochs", "1"] + small
        XCTAssertEqual(try runTrainer(train).status, 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: tmp + "/run/best.safetensors"))
        try expectOneLine(train, ["--run-dir", tmp + "/run", "already holds a run", "--overwrite", "--resume"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/run/best.safetensors")), before, "the refused run touched the old one")
        // --overwrite replaces it (with another seed, so the new model differs).
        let replaced = try runTrainer(train + ["--overwrite", "--seed", "5"])
        XCTAssertEqual(replaced.status, 0, replaced.stderr)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/run/best.safetensors")), before)
        XCTAssertEqual(try readJSON(tmp + "/run/config.json")["seed"] as? Int, 5)
        // --resume auto: continues a run that has a checkpoint, starts one that has none.
        let more = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--resume", "auto", "--epochs", "2"])
        XCTAssertEqual(more.status, 0, more.stderr)
        XCTAssertTrue(more.stdout.contains("resuming from"), more.stdout)
        XCTAssertEqual(try readMetrics(tmp + "/run").count, 2)
        let fresh = try runTrainer(train.map { $0 == tmp + "/run" ? tmp + "/fresh" : $0 } + ["--resume", "auto"])
        XCTAssertEqual(fresh.status, 0, fresh.stderr)
        XCTAssertFalse(fresh.stdout.contains("resuming from"), fresh.stdout)
        try expectOneLine(["train", "--resume", "auto"] + small, ["--resume auto", "--run-dir"])
    }

    // MARK: - Version, signals, watchdog

    func testVersionIsPrintedAndRecorded() throws {
        let r = try runTrainer(["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.hasPrefix("dist-trainer \(DistTrainerVersion.number) (revision "), r.stdout)
        XCTAssertTrue(r.stdout.contains("built for CPU"), r.stdout)
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 300, test: 60)
        XCTAssertEqual(try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--epochs", "1"] + small).status, 0)
        XCTAssertEqual(try readJSON(tmp + "/run/config.json")["version"] as? String, DistTrainerVersion.number)
        XCTAssertNotNil(try readJSON(tmp + "/run/config.json")["revision"] as? String)
        let version = try readSafetensors(path: tmp + "/run/best.safetensors").metadata["dist_trainer_version"] ?? ""
        XCTAssertTrue(version.hasPrefix("dist-trainer \(DistTrainerVersion.number)"), version)
    }

    /// Under mpirun, --help and --version are printed once (by rank 0), not once per rank.
    func testHelpAndVersionPrintedOnceUnderMPI() throws {
        _ = try mpirunPath()
        for (arguments, marker) in [(["train", "--help"], "OVERVIEW:"), (["--version"], "dist-trainer \(DistTrainerVersion.number)")] {
            let r = try runMPI(3, arguments, timeout: 30)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout.components(separatedBy: marker).count - 1, 1, "\(arguments): \(r.stdout)")
        }
    }

    /// SIGUSR1 (Slurm's warning before the time limit): the step finishes, the state is saved, the
    /// exit status is 75 (requeue me), and `--resume auto` ends with the uninterrupted run's numbers.
    func testSIGUSR1SavesAndAsksForRequeue() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 100)
        let common = ["--data-dir", tmp + "/data", "--epochs", "3"] + small
        XCTAssertEqual(try runTrainer(["train", "--run-dir", tmp + "/full"] + common).status, 0)
        let ready = tmp + "/paused"
        let p = try startProcess(try trainerBinary(), ["train", "--run-dir", tmp + "/cut", "--resume", "auto"] + common,
                                 environment: ["DIST_TRAINER_FAULT": "pause:0:50", "DIST_TRAINER_FAULT_READY": ready], log: tmp + "/cut.log")
        XCTAssertTrue(waitForFile(ready, while: p))
        kill(p.processIdentifier, SIGUSR1)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 75, (try? String(contentsOfFile: tmp + "/cut.log", encoding: .utf8)) ?? "")
        let again = try runTrainer(["train", "--run-dir", tmp + "/cut", "--resume", "auto"] + common)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try readMetrics(tmp + "/cut").map { $0["val_loss"] as! Double }, try readMetrics(tmp + "/full").map { $0["val_loss"] as! Double })
    }

    /// A rank that never starts MPI: every command's start-up is watched, and the timeout can come
    /// from the environment for launchers that cannot pass flags.
    func testWatchdogCoversStartupOfEveryCommand() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 300, test: 60)
        XCTAssertEqual(try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--epochs", "1"] + small).status, 0)
        for command in [["check"], ["evaluate", "--checkpoint", tmp + "/run/best.safetensors"], ["summarize", tmp]] {
            let r = try runMPI(2, command, environment: ["DIST_TRAINER_FAULT": "startup:1", "DIST_TRAINER_COLLECTIVE_TIMEOUT": "2"], timeout: 60)
            XCTAssertFalse(r.timedOut, "\(command) hung")
            XCTAssertNotEqual(r.status, 0)
            XCTAssertLessThan(r.seconds, 15, "\(command)")
            XCTAssertTrue(r.stderr.contains("rank 0: MPI start-up") && r.stderr.contains("has not completed after 2 s"), "\(command): \(r.stderr)")
        }
        // A bad value is one line too, even in a single process.
        try expectOneLine(["check"], environment: ["DIST_TRAINER_COLLECTIVE_TIMEOUT": "x"], ["DIST_TRAINER_COLLECTIVE_TIMEOUT", "'x'"])
    }
}
