// Reliability: every bad input ends with one clear line and a non-zero exit from every rank
// (quickly, never a hang); a dead or hung rank ends the job; a signal, a full disk and a diverging
// learning rate lose nothing.
import Datasets
import Formats
import Foundation
import TestSupport
import XCTest

final class ReliabilityTests: XCTestCase {
    let small = ["--hidden", "16,8", "--epochs", "1", "--lr", "0.003", "--threads", "1"]

    // MARK: - Bad input

    /// The multi-rank parts need mpirun: skipped with the reason printed when it is missing, failed
    /// instead when MPI_REQUIRED=1 or MULTIHOST_REQUIRED=1 (scripts/test.sh sets the latter).
    func requireMPI(file: StaticString = #filePath, line: UInt = #line) throws {
        try requireExecutable("mpirun", package: "openmpi-bin", requiredEnv: ["MPI_REQUIRED", "MULTIHOST_REQUIRED"],
                              feature: "mpirun for the multi-rank part", file: file, line: line)
    }

    /// Data directories under `tmp`, each with one defect, and the phrases its error must contain:
    /// what was expected and what was found, and the file. (No bare numbers: the digits of the
    /// temporary path would satisfy them.)
    func badDataCases(in tmp: String) throws -> [(name: String, dir: String, needles: [String])] {
        func fresh(_ name: String, gzipped: Bool = true) throws -> String {
            let dir = tmp + "/" + name
            try writeSyntheticDataset(to: dir, train: 200, test: 50, gzipped: gzipped)
            return dir
        }
        func put(_ dir: String, _ file: String, _ bytes: [UInt8]) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + file))
        }
        let trainImages = FashionMNIST.trainImages, trainLabels = FashionMNIST.trainLabels
        var cases: [(name: String, dir: String, needles: [String])] = []
        cases.append(("missing-dir", tmp + "/missing-dir", ["directory \(tmp)/missing-dir does not exist"]))

        var d = try fresh("one-missing")
        try FileManager.default.removeItem(atPath: d + "/" + trainLabels + ".gz")
        cases.append(("one-missing", d, ["\(trainLabels): not found in \(d)"]))

        d = try fresh("not-gzip")
        try put(d, trainImages + ".gz", Array("this is not gzip".utf8))
        cases.append(("not-gzip", d, [trainImages, "not a gzip file"]))

        d = try fresh("truncated-gzip")
        let gz = [UInt8](try Data(contentsOf: URL(fileURLWithPath: d + "/" + trainImages + ".gz")))
        try put(d, trainImages + ".gz", Array(gz[0..<(gz.count / 2)]))
        cases.append(("truncated-gzip", d, [trainImages, "truncated"]))

        d = try fresh("wrong-magic", gzipped: false)
        var labels = [UInt8](try Data(contentsOf: URL(fileURLWithPath: d + "/" + trainLabels)))
        labels[3] = 0x03
        try put(d, trainLabels, labels)
        cases.append(("wrong-magic", d, [trainLabels, "magic"]))

        d = try fresh("count-mismatch", gzipped: false)
        try put(d, trainLabels, encodeIDX(dims: [199], bytes: [UInt8](repeating: 1, count: 199)))
        cases.append(("count-mismatch", d, ["train: 200 images but 199 labels (\(trainImages) vs \(trainLabels))"]))

        // The training labels set the class count (10 here); a test label beyond it is refused.
        d = try fresh("label-range", gzipped: false)
        var bad = [UInt8](repeating: 1, count: 50)
        bad[7] = 12
        try put(d, FashionMNIST.testLabels, encodeIDX(dims: [50], bytes: bad))
        cases.append(("label-range", d, ["\(FashionMNIST.testLabels): label 12 at index 7 is not a class of the training data (0 to 9)"]))

        d = try fresh("zero-images", gzipped: false)
        try put(d, trainImages, encodeIDX(dims: [0, 8, 8], bytes: []))
        try put(d, trainLabels, encodeIDX(dims: [0], bytes: []))
        cases.append(("zero-images", d, ["\(trainImages): 0 images, expected at least 1"]))

        d = try fresh("dimensions", gzipped: false)
        try put(d, FashionMNIST.testImages, encodeIDX(dims: [50, 9, 9], bytes: [UInt8](repeating: 0, count: 50 * 81)))
        cases.append(("dimensions", d, ["\(FashionMNIST.testImages): images are 9×9 but \(trainImages) images are 8×8"]))
        return cases
    }

    func testBadDataFiles() throws {
        let tmp = try temporaryDirectory(self)
        for (_, dir, needles) in try badDataCases(in: tmp) {
            try expectOneLine(np: 1, ["train", "--data-dir", dir, "--run-dir", tmp + "/run"] + small, needles)
        }
    }

    /// The same checks agreed by every rank of an MPI job: one message, all ranks exit.
    func testBadDataFilesUnderMPI() throws {
        try requireMPI()
        let tmp = try temporaryDirectory(self)
        for (name, dir, needles) in try badDataCases(in: tmp) where ["one-missing", "truncated-gzip", "dimensions"].contains(name) {
            try expectOneLine(np: 2, ["train", "--data-dir", dir, "--run-dir", tmp + "/run"] + small, ["rank 0: "] + needles)
        }
    }

    let badFlagCases: [([String], [String])] = [
        (["--lr", "0"], ["--lr", "0"]), (["--lr", "-0.1"], ["--lr"]), (["--lr", "abc"], ["--lr", "abc"]),
        (["--lr", "nan"], ["--lr"]), (["--epochs", "0"], ["--epochs"]), (["--batch-size", "1000"], ["--batch-size", "1000 is larger than the training split (160 samples)"]),
        (["--val-fraction", "0"], ["--val-fraction"]), (["--val-fraction", "1.5"], ["--val-fraction"]),
        (["--model", "7"], ["--model"]), (["--hidden", "64,x"], ["--hidden"]), (["--hidden", "64,0"], ["--hidden"]),
        (["--bn", "batch"], ["--bn"]), (["--optimizer", "sgd"], ["--optimizer"]), (["--collective-timeout", "-1"], ["--collective-timeout"]),
    ]

    /// `train` in `tmp` with the synthetic data, up to its flags.
    func trainCommand(in tmp: String) throws -> [String] {
        try writeSyntheticDataset(to: tmp + "/data", train: 200, test: 50)
        return ["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run"]
    }

    func testBadFlags() throws {
        let base = try trainCommand(in: try temporaryDirectory(self))
        for (flags, needles) in badFlagCases { try expectOneLine(np: 1, base + flags, needles) }
    }

    func testBadFlagsUnderMPI() throws {
        try requireMPI()
        let base = try trainCommand(in: try temporaryDirectory(self))
        // A batch smaller than the number of ranks: some rank would have no sample.
        try expectOneLine(np: 3, base + ["--batch-size", "2"], ["--batch-size", "2 is smaller than the number of ranks (3)"])
        for (flags, needles) in badFlagCases.prefix(3) { try expectOneLine(np: 2, base + flags, needles) }
    }

    /// `roofline` refuses, in one line naming the flag, what would divide by zero, time nothing or
    /// not fit in memory (it crashed on `--ranks 0` and `--batch-size 0`).
    func testRooflineBadFlags() throws {
        let cases: [([String], [String])] = [
            (["--ranks", "0"], ["--ranks", "found 0"]), (["--batch-size", "0"], ["--batch-size", "found 0"]),
            (["--threads", "0"], ["--threads"]), (["--input-width", "0"], ["--input-width"]), (["--classes", "1"], ["--classes"]),
            (["--model", "9"], ["--model", "9"]), (["--ranks", "200"], ["--ranks", "200 is more than the batch's 128 rows"]),
            (["--samples", "100"], ["--samples", "100 is fewer than one batch of 128"]),
            (["--input-width", "100000000"], ["--input-width 100000000", "GB"]), (["--precision", "fp8"], ["--precision", "fp8"]),
        ]
        for (flags, needles) in cases {
            try expectOneLine(np: 1, ["roofline"] + flags, needles)
            try expectOneLine(np: 1, ["roofline", "--memory"] + flags, needles)
        }
    }

    /// `check --batch-size` out of range: one line, every rank (it silently raised a batch below
    /// the rank count, and crashed allocating a huge one).
    func testCheckBadBatchSize() throws {
        try expectOneLine(["check", "--batch-size", "0"], ["--batch-size", "found 0"])
        try expectOneLine(["check", "--batch-size", "100000000000"], ["--batch-size", "expected 1 to 65536"])
        try requireMPI()
        try expectOneLine(np: 3, ["check", "--batch-size", "2"], ["--batch-size", "2 is smaller than the number of ranks (3)"])
    }

    func testUnwritableRunDirectory() throws {
        let tmp = try temporaryDirectory(self)
        let base = try unwritableRunCommand(in: tmp)
        try expectOneLine(np: 1, base, ["--run-dir", "a-file/run"])
    }

    func testUnwritableRunDirectoryUnderMPI() throws {
        try requireMPI()
        let tmp = try temporaryDirectory(self)
        try expectOneLine(np: 2, try unwritableRunCommand(in: tmp), ["rank 0", "--run-dir", "a-file/run"])
    }

    /// `train` with a run directory below a plain file.
    func unwritableRunCommand(in tmp: String) throws -> [String] {
        try writeSyntheticDataset(to: tmp + "/data", train: 200, test: 50)
        _ = FileManager.default.createFile(atPath: tmp + "/a-file", contents: Data("x".utf8))
        return ["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/a-file/run"] + small
    }

    // MARK: - Faults

    /// kill -9 of one rank mid-epoch: the job ends within 10 s with no process left behind,
    /// last.safetensors stays valid, and --resume finishes with the uninterrupted run's metrics.
    func testKill9OfOneRankThenResume() throws {
        let mpirun = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 5000, test: 200)
        let common = ["--data-dir", tmp + "/data", "--hidden", "128,64,32", "--epochs", "6", "--lr", "0.002",
                      "--batch-size", "50", "--threads", "1"]
        let full = try runMPI(2, ["train", "--run-dir", tmp + "/full"] + common)
        XCTAssertEqual(full.status, 0, full.stderr)

        // Rank 1 pauses before its 200th step (epoch 3, after two checkpoints) and says so; only then
        // is it killed, so the test never races the training speed.
        let ready = tmp + "/rank1-paused"
        let p = try startProcess(mpirun, ["--oversubscribe", "-np", "2", try trainerBinary(), "train", "--run-dir", tmp + "/cut"] + common,
                                 environment: ["DIST_TRAINER_FAULT": "pause:1:200", "DIST_TRAINER_FAULT_READY": ready], log: nil)
        XCTAssertTrue(waitForFile(ready, while: p), "rank 1 never reached its pause")
        guard let victim = rankPID(1, parent: p.processIdentifier) else { return XCTFail("rank 1 not found") }
        let killedAt = Date()
        kill(victim, SIGKILL)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertLessThan(Date().timeIntervalSince(killedAt), 10, "the job must end within 10 s")
        usleep(500_000)
        XCTAssertEqual(processes(matching: tmp + "/cut"), [], "processes left behind")

        let checkpoint = try readSafetensors(path: tmp + "/cut/last.safetensors")
        XCTAssertEqual(try CheckpointHeader(checkpoint, path: "last").kind, .last)
        XCTAssertEqual(try readMetrics(tmp + "/cut").count, 2, "the job died in epoch 3")
        let resumed = try runMPI(2, ["train", "--resume", tmp + "/cut"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let a = try readMetrics(tmp + "/full"), b = try readMetrics(tmp + "/cut")
        XCTAssertEqual(a.count, b.count)
        for (x, y) in zip(a, b) {
            for key in ["train_loss", "val_loss", "val_accuracy", "val_macro_f1"] { XCTAssertEqual(x[key] as! Double, y[key] as! Double, key) }
        }
        let s = try readJSON(tmp + "/full/summary.json")["test"] as! [String: Any]
        let t = try readJSON(tmp + "/cut/summary.json")["test"] as! [String: Any]
        XCTAssertEqual(s["accuracy"] as! Double, t["accuracy"] as! Double)
        XCTAssertEqual(s["loss"] as! Double, t["loss"] as! Double)
    }

    /// A rank that stops responding: the others' watchdog ends the job with a message naming the
    /// collective and the step, instead of hanging forever. Both ways the ranks of one node
    /// combine the step's first sums: in node-shared memory (the default, whose waiting is an
    /// MPI_Barrier inside) and through MPI_Allreduce ($DIST_TRAINER_SHARED_MEMORY=0, as across hosts).
    func testHungRankEndedByWatchdog() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 100)
        for (shared, collective) in [("1", "sums and maxima (shared memory)"), ("0", "MPI_Allreduce (sums and maxima)")] {
            let r = try runMPI(2, ["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run" + shared, "--collective-timeout", "2"] + small,
                               environment: ["DIST_TRAINER_FAULT": "hang:1:5", "DIST_TRAINER_SHARED_MEMORY": shared], timeout: 60)
            XCTAssertFalse(r.timedOut, "the job hung")
            XCTAssertNotEqual(r.status, 0)
            XCTAssertLessThan(r.seconds, 15)
            // Rank 1 stops before its 5th step; rank 0 waits in that step's first collective, the
            // BatchNorm sums of the first block's forward pass.
            XCTAssertTrue(r.stderr.contains("rank 0: \(collective) of ") && r.stderr.contains("epoch 1 step 5")
                          && r.stderr.contains("has not completed after"), r.stderr)
            usleep(500_000)
            XCTAssertEqual(processes(matching: tmp + "/run" + shared), [], "processes left behind")
        }
    }

    /// SIGTERM to mpirun (Slurm preemption) and Ctrl-C: the ranks finish the current step, rank 0
    /// saves last.safetensors and says how to resume, the job exits non-zero.
    func testSignalsToMpirunSaveState() throws {
        let mpirun = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 5000, test: 100)
        for (signal, name) in [(SIGTERM, "term"), (SIGINT, "int")] {
            let log = tmp + "/\(name).log"
            // Rank 0 pauses before its 100th step (epoch 2 step 20 of 80) until the signal arrives.
            let ready = tmp + "/\(name)-paused"
            let p = try startProcess(mpirun, ["--oversubscribe", "-np", "2", try trainerBinary(), "train", "--data-dir", tmp + "/data",
                                              "--run-dir", tmp + "/" + name, "--hidden", "128,64", "--epochs", "50", "--lr", "0.002",
                                              "--batch-size", "50", "--threads", "1"],
                                     environment: ["DIST_TRAINER_FAULT": "pause:0:100", "DIST_TRAINER_FAULT_READY": ready], log: log)
            XCTAssertTrue(waitForFile(ready, while: p), "rank 0 never reached its pause")
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            let output = try String(contentsOfFile: log, encoding: .utf8)
            XCTAssertNotEqual(p.terminationStatus, 0, output)
            XCTAssertTrue(output.contains("interrupted by") && output.contains("--resume " + tmp + "/" + name), output)
            let position = try readSafetensors(path: tmp + "/\(name)/last.safetensors").metadata["position"] ?? ""
            // Stopped after the paused step: 20 steps into epoch 2.
            XCTAssertTrue(position.contains("\"step_in_epoch\":20") && position.contains("\"epochs_done\":1"), position)
        }
    }

    /// A learning rate whose loss becomes non-finite is abandoned with a message; the sweep goes
    /// on and the best model comes from the healthy rates.
    func testDivergenceMovesOnToNextLearningRate() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1000, test: 100)
        let r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--hidden", "16,8",
                                "--epochs", "2", "--lr", "0.003,1e38,0.001", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("lr 1e+38: loss became non-finite"), r.stdout)
        let rows = try readMetrics(tmp + "/run")
        XCTAssertEqual(rows.filter { $0["lr"] as! Double == 0.003 }.count, 2)
        XCTAssertEqual(rows.filter { $0["lr"] as! Double == 0.001 }.count, 2)
        XCTAssertEqual(rows.filter { $0["lr"] as! Double == 1e38 }.count, 0)
        let summary = try readJSON(tmp + "/run/summary.json")
        XCTAssertEqual(summary["diverged_lrs"] as? [Double], [1e38])
        let best = summary["best"] as! [String: Any]
        XCTAssertNotEqual(best["lr"] as! Double, 1e38)
        let file = try readSafetensors(path: tmp + "/run/best.safetensors")
        XCTAssertTrue(file.tensors.allSatisfy { $0.values.allSatisfy(\.isFinite) })
        // Every rate diverging leaves no model: one line and exit 3, which no restart repeats.
        let none = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", tmp + "/none", "--hidden", "16,8",
                                   "--epochs", "2", "--lr", "1e38", "--threads", "1"])
        XCTAssertEqual(none.status, 3, none.stderr)
        XCTAssertTrue(none.stderr.contains("every learning rate diverged"), none.stderr)
        XCTAssertEqual(file.metadata["lr"], String(best["lr"] as! Double))
    }

    /// Disk full while writing a checkpoint (a small tmpfs): a clear error naming the file, and the
    /// previous checkpoint intact and loadable.
    func testDiskFullKeepsPreviousCheckpoint() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1000, test: 100)
        let flags = ["--data-dir", tmp + "/data", "--hidden", "64,32", "--lr", "0.003", "--threads", "1"]
        // Measure what one epoch writes, then give the run room for that and half a checkpoint more.
        XCTAssertEqual(try runTrainer(["train", "--run-dir", tmp + "/probe", "--epochs", "1"] + flags).status, 0)
        let sizes = try FileManager.default.contentsOfDirectory(atPath: tmp + "/probe").map {
            (try FileManager.default.attributesOfItem(atPath: tmp + "/probe/" + $0)[.size] as? Int) ?? 0
        }
        let last = (try FileManager.default.attributesOfItem(atPath: tmp + "/probe/last.safetensors")[.size] as? Int) ?? 0
        let room = (sizes.reduce(0, +) + last / 2 + 4095) / 4096 * 4096 + 8192
        let mountPoint = tmp + "/small"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(room)", "tmpfs", mountPoint])
        guard mount.status == 0 else { throw XCTSkip("cannot mount a small tmpfs here (needs root): \(mount.stderr)") }
        defer { _ = try? runProcess("/bin/umount", [mountPoint]) }

        let r = try runTrainer(["train", "--run-dir", mountPoint + "/run", "--epochs", "5"] + flags, timeout: 60)
        XCTAssertEqual(r.status, 74, "a write failure: " + r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains(mountPoint + "/run/") && r.stderr.contains("No space left on device"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        let file = try readSafetensors(path: mountPoint + "/run/last.safetensors")
        XCTAssertEqual(try CheckpointHeader(file, path: "last").kind, .last)
        XCTAssertTrue(file.metadata["position"]?.contains("\"epochs_done\":1") ?? false, file.metadata["position"] ?? "")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: mountPoint + "/run").filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "temporary files left behind")
    }

    // MARK: - Helpers


    /// The PID of the dist-trainer child of `parent` that is rank `rank`.
    func rankPID(_ rank: Int, parent: Int32) -> Int32? {
        for pid in descendants(of: parent) {
            guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let vars = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }

    func descendants(of parent: Int32) -> [Int32] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var children: [Int32] = []
        for entry in all {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { continue }
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            if fields.count > 2, Int32(fields[1]) == parent { children.append(pid) }
        }
        return children + children.flatMap { descendants(of: $0) }
    }

    /// PIDs of live processes whose command line contains `text`.
    func processes(matching text: String) -> [Int32] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return all.compactMap { entry -> Int32? in
            guard let pid = Int32(entry), pid != getpid(),
                  let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  !(stat.split(separator: ")").last?.hasPrefix(" Z") ?? false) else { return nil }
            return String(decoding: cmd.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(text) ? pid : nil
        }
    }
}
