// Distributed: the same binary under `mpirun -np N` on a synthetic data set. With SyncBatchNorm
// the per-epoch metrics are bitwise the same on any number of ranks (uneven shards included), and the
// MPI job self-test (`dist-trainer check`) must pass on 1, 2 and 3 ranks.
import Foundation
import Kernels
import XCTest

final class DistributedTests: XCTestCase {
    let metricKeys = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]

    func train(np: Int, data: String, run: String, extra: [String] = []) throws -> [[String: Any]] {
        // Batch 128 over 1600 samples: 12 steps per epoch; np = 3 gives shards of 42, 43 and 43.
        let args = ["train", "--data-dir", data, "--run-dir", run, "--hidden", "32,16,8", "--epochs", "3",
                    "--batch-size", "128", "--lr", "0.002,0.0005", "--threads", "1"] + extra
        let r = np == 1 ? try runTrainer(args, timeout: 300) : try runMPI(np, args, timeout: 300)
        XCTAssertFalse(r.timedOut, "np=\(np) timed out")
        XCTAssertEqual(r.status, 0, "np=\(np): \(r.stderr)")
        if np > 1 {
            // Only rank 0 speaks: one start line, so the header appears once.
            XCTAssertEqual(r.stdout.components(separatedBy: "dist-trainer: \(np) ranks on 1 host").count, 2, r.stdout)
        }
        return try readMetrics(run)
    }

    func testSyncBatchNormMetricsIndependentOfRankCount() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 400)
        let reference = try train(np: 1, data: tmp + "/data", run: tmp + "/np1")
        XCTAssertEqual(reference.count, 6)
        for np in [2, 3] {
            let rows = try train(np: np, data: tmp + "/data", run: tmp + "/np\(np)")
            XCTAssertEqual(rows.count, reference.count)
            for (a, b) in zip(rows, reference) {
                for key in metricKeys {
                    XCTAssertEqual(a[key] as! Double, b[key] as! Double, "np=\(np) lr \(a["lr"]!) epoch \(a["epoch"]!) \(key)")
                }
            }
            // The same best model is chosen and gives the same test result.
            let s = try readJSON(tmp + "/np\(np)/summary.json"), s1 = try readJSON(tmp + "/np1/summary.json")
            let t = s["test"] as! [String: Any], t1 = s1["test"] as! [String: Any]
            XCTAssertEqual(t["accuracy"] as! Double, t1["accuracy"] as! Double)
            XCTAssertEqual(t["loss"] as! Double, t1["loss"] as! Double)
        }
    }

    /// Local BatchNorm (DDP's semantics) legitimately differs from sync on more than one rank,
    /// but must still train, and on one rank computes sync's math: its statistics are plain Double
    /// sums where sync's are exact sums on grids (ExactSum.swift), so the two agree to the last
    /// bits of a Double in the first step and drift by rounding only (measured: ≤ 5e-5 relative
    /// after 3 epochs; a wrong count or statistic moves the loss by far more).
    func testLocalBatchNormTrainsAndMatchesSyncOnOneRank() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 400)
        let sync1 = try train(np: 1, data: tmp + "/data", run: tmp + "/s1")
        let local1 = try train(np: 1, data: tmp + "/data", run: tmp + "/l1", extra: ["--bn", "local"])
        XCTAssertEqual(local1.count, sync1.count)
        for (a, b) in zip(sync1, local1) {
            for key in metricKeys {
                let (x, y) = (a[key] as! Double, b[key] as! Double)
                XCTAssertEqual(x, y, accuracy: 1e-3 * abs(x), "lr \(a["lr"]!) epoch \(a["epoch"]!) \(key)")
            }
        }
        let local2 = try train(np: 2, data: tmp + "/data", run: tmp + "/l2", extra: ["--bn", "local"])
        XCTAssertEqual(local2.count, 6)
        XCTAssertGreaterThan(local2.map { $0["val_macro_f1"] as! Double }.max()!, 0.7)
        let differs = zip(local2, sync1).contains { abs(($0["train_loss"] as! Double) - ($1["train_loss"] as! Double)) > 1e-6 }
        XCTAssertTrue(differs, "local BatchNorm on 2 ranks should normalise per shard")
    }

    /// --grad-compression: the weight gradients travel in 16 bits through the ring (counted in the
    /// summary; no float32 reduce-scatter), training stays close to the exact run without equalling
    /// it, and a single process rounds its gradients the same way so np=1 and np=2 still agree.
    func testGradientCompressionTrainsCloseToExact() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 400)
        let started = Date()
        let exact = try train(np: 2, data: tmp + "/data", run: tmp + "/exact")
        let exactWallSeconds = Date().timeIntervalSince(started)
        let exactOne = try train(np: 1, data: tmp + "/data", run: tmp + "/exact-1")
        for format in ["bf16", "fp16"] {
            let two = try train(np: 2, data: tmp + "/data", run: tmp + "/\(format)-2", extra: ["--grad-compression", format])
            let one = try train(np: 1, data: tmp + "/data", run: tmp + "/\(format)-1", extra: ["--grad-compression", format])
            XCTAssertEqual(two.count, exact.count)
            var differs = false
            for (a, b) in zip(two, exact) {
                XCTAssertEqual(a["val_accuracy"] as! Double, b["val_accuracy"] as! Double, accuracy: 0.05, "\(format) epoch \(a["epoch"]!)")
                XCTAssertEqual(a["train_loss"] as! Double, b["train_loss"] as! Double, accuracy: 0.05 * (b["train_loss"] as! Double))
                differs = differs || a["train_loss"] as! Double != b["train_loss"] as! Double
            }
            XCTAssertTrue(differs, "\(format): 16-bit gradients should not give the exact float32 numbers")
            for (a, b) in zip(two, one) {
                XCTAssertEqual(a["val_accuracy"] as! Double, b["val_accuracy"] as! Double, accuracy: 0.05, "\(format) np=1 vs np=2")
            }
            // A single process rounds its gradients through the format too (MPICollective used to
            // skip the rounding on one rank, training exactly while claiming 16-bit gradients).
            XCTAssertTrue(zip(one, exactOne).contains { $0["train_loss"] as! Double != $1["train_loss"] as! Double },
                          "\(format): np=1 with 16-bit gradients gave the exact float32 numbers")
            XCTAssertEqual(try readJSON(tmp + "/\(format)-2/config.json")["gradient_compression"] as? String, format)
            // One 16-bit ring per step; no float32 reduce-scatter, and no allgather (Adam runs on
            // every rank and its moments never travel).
            let ops = try readJSON(tmp + "/\(format)-2/summary.json")["collectives"] as! [String: Any]
            checkOperation(ops, "16-bit allreduce (MPI_Sendrecv ring)", calls: Self.steps, atMost: Self.trainingSeconds(two), format)
            XCTAssertNil(ops["reduce-scatter (MPI_Sendrecv ring)"], "\(ops.keys)")
            XCTAssertNil(ops["MPI_Allgatherv"], "\(ops.keys)")
        }
        // Exact: one reduce-scatter (on a CPU with bf16 arithmetic, where the ranks share the
        // weight-gradient operands, a fence instead) and one allgather of the parameters per step
        // (on one node, in shared memory); an allgather of Adam's two moments after every epoch
        // (for the checkpoint).
        let exactOps = try readJSON(tmp + "/exact/summary.json")["collectives"] as! [String: Any]
        let gradientOperation = cpuHasBF16 ? "weight-gradient operands fence (shared memory)" : "reduce-scatter (shared memory)"
        checkOperation(exactOps, gradientOperation, calls: Self.steps, atMost: Self.trainingSeconds(exact), "exact")
        XCTAssertNil(exactOps[cpuHasBF16 ? "reduce-scatter (shared memory)" : "weight-gradient operands fence (shared memory)"], "\(exactOps.keys)")
        checkOperation(exactOps, "allgather (shared memory)", calls: Self.steps, atMost: Self.trainingSeconds(exact), "exact")
        XCTAssertNil(exactOps["reduce-scatter (MPI_Sendrecv ring)"], "\(exactOps.keys)")
        // The moments' allgathers happen between epochs, outside the steps' timing: bounded by the run.
        checkOperation(exactOps, "MPI_Allgatherv", calls: 2 * Self.epochs, atMost: exactWallSeconds, "exact")
        XCTAssertNil(exactOps["16-bit allreduce (MPI_Sendrecv ring)"], "\(exactOps.keys)")
    }

    /// Optimizer steps of `train`: 2 learning rates × 3 epochs of ⌊1600 / 128⌋ = 12 steps (1600 =
    /// 0.8 × 2000 training samples; the last partial batch is dropped).
    static let epochs = 2 * 3
    static let steps = epochs * ((2000 * 4 / 5) / 128)

    /// The time rank 0 spent in training steps over a run (its metrics rows).
    static func trainingSeconds(_ rows: [[String: Any]]) -> Double { rows.reduce(0) { $0 + ($1["train_seconds"] as! Double) } }

    /// Rank 0's totals of collective `name` in a summary: `calls` calls, and a time that is positive
    /// and at most `limit` seconds (the time of the part of the run the calls happen in).
    func checkOperation(_ ops: [String: Any], _ name: String, calls: Int, atMost limit: Double, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        guard let total = ops[name] as? [String: Any] else { return XCTFail("\(what): no \(name) in \(ops.keys)", file: file, line: line) }
        XCTAssertEqual(total["calls"] as? Int, calls, "\(what): \(name) calls", file: file, line: line)
        let seconds = total["seconds"] as? Double ?? -1
        XCTAssertTrue(seconds > 0 && seconds <= limit, "\(what): \(name) took \(seconds) s, expected (0, \(limit)] s", file: file, line: line)
    }

    /// `train --profile`: the step accounted for by phase (summary.json `step_profile`, and the lines
    /// printed): every phase ≥ 0, the phases add up to their total, the total is the step time the
    /// metrics record (within 10 %: the metrics also count the step's bookkeeping), the products
    /// are there, and with 2 ranks so are the collectives. The numbers are the unprofiled run's.
    func testProfileAccountsForTheStep() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 400)
        let plain = try train(np: 2, data: tmp + "/data", run: tmp + "/plain")
        let profiled = try train(np: 2, data: tmp + "/data", run: tmp + "/profiled", extra: ["--profile"])
        for (a, b) in zip(plain, profiled) {
            for key in metricKeys { XCTAssertEqual(a[key] as! Double, b[key] as! Double, key) }
        }
        let profile = try readJSON(tmp + "/profiled/summary.json")["step_profile"] as? [String: Double] ?? [:]
        let phases = profile.filter { $0.key != "total" }
        XCTAssertEqual(phases.count, 10, "\(profile)")
        XCTAssertTrue(phases.values.allSatisfy { $0 >= 0 }, "\(profile)")
        let total = profile["total"] ?? 0
        XCTAssertEqual(phases.values.reduce(0, +), total, accuracy: 1e-9)
        for phase in ["forwardProducts", "weightGradientProducts", "communication", "optimizer"] {
            XCTAssertGreaterThan(profile[phase] ?? 0, 0, phase)
        }
        let stepMs = 1000 * Self.trainingSeconds(profiled) / Double(Self.steps)
        XCTAssertEqual(total, stepMs, accuracy: 0.1 * stepMs, "profile total \(total) ms, metrics \(stepMs) ms per step")
    }

    /// `dist-trainer check`: exact collectives, error agreement, sharded gradients and BatchNorm
    /// merging on 1, 2 and 3 ranks.
    func testCheckPassesOnOneTwoThreeRanks() throws {
        _ = try mpirunPath()
        for np in [1, 2, 3] {
            let r = try runMPI(np, ["check"], timeout: 120)
            XCTAssertEqual(r.status, 0, "np=\(np): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stdout.contains("all checks passed"), r.stdout)
            XCTAssertFalse(r.stdout.contains("FAIL"), r.stdout)
            XCTAssertEqual(r.stdout.components(separatedBy: "ok   ").count - 1, 18, r.stdout)
        }
    }

    /// A data error on every rank: one message (from rank 0), every rank exits non-zero, no hang.
    func testDataErrorUnderMPIGivesOneLine() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        let r = try runMPI(2, ["train", "--data-dir", tmp + "/missing", "--run-dir", tmp + "/run"], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertNotEqual(r.status, 0)
        let ours = r.stderr.split(separator: "\n").filter { $0.hasPrefix("dist-trainer: error:") }
        XCTAssertEqual(ours.count, 1, r.stderr)
        XCTAssertTrue(ours.first?.contains(tmp + "/missing") ?? false, r.stderr)
    }

    /// A launcher that says N ranks while MPI says 1 (a binary linked to another MPI) is refused.
    func testSingletonUnderLauncherIsRefused() throws {
        let r = try runTrainer(["check"], environment: ["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "0"], timeout: 60)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("OMPI_COMM_WORLD_SIZE=4 but MPI reports 1 rank"), r.stderr)
    }
}
