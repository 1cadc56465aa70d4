// RankInvarianceTests (end to end): the release binary gives the same bits on any number of ranks
// and threads — every number of metrics.jsonl but the timings and rank-dependent fields, the
// summary's validation and test results and confusion matrices, and every tensor of
// best.safetensors and last.safetensors — for mpirun -np 1 to 4 (4 oversubscribes the machine),
// with the gradients reduced and the parameters gathered in shared memory and through MPI's
// messages, with the weight-gradient products in float32 and from bf16 copies, with bf16 and
// every recipe feature, and across a resume on another rank count mid-epoch.
//
// Not here: the same on 1-8 in-process ranks (CoreTests/RankInvarianceTests), across emulated
// hosts (MultiHostTests), under Slurm (SlurmTests).
import Formats
import Foundation
import Kernels
import TestSupport
import XCTest

/// The fields of a metrics row that are timings or depend on which rank was slowest.
let timingKeys: Set<String> = ["train_seconds", "val_seconds", "communication_seconds", "slowest_rank",
                               "compute_seconds_min", "compute_seconds_max"]

/// What must be bitwise the same in two run directories (see the file's comment); a message naming
/// the first difference, or nil.
func runDifference(_ a: String, _ b: String) throws -> String? {
    let (x, y) = (try readMetrics(a), try readMetrics(b))
    guard x.count == y.count else { return "metrics.jsonl: \(x.count) rows against \(y.count)" }
    for (i, (p, q)) in zip(x, y).enumerated() {
        let (u, v) = (p.filter { !timingKeys.contains($0.key) }, q.filter { !timingKeys.contains($0.key) })
        if !NSDictionary(dictionary: u).isEqual(to: v) { return "metrics.jsonl row \(i + 1): \(u) against \(v)" }
    }
    let (s, t) = (try readJSON(a + "/summary.json"), try readJSON(b + "/summary.json"))
    for key in ["best", "validation", "test", "diverged_lrs", "early_stopped"] {
        let (u, v) = (s[key] ?? NSNull(), t[key] ?? NSNull())
        if !(NSArray(object: u)).isEqual(to: [v]) { return "summary.json \(key): \(u) against \(v)" }
    }
    for file in ["best.safetensors", "last.safetensors"] {
        let (f, g) = (try readSafetensors(path: a + "/" + file), try readSafetensors(path: b + "/" + file))
        guard f.tensors.map(\.name) == g.tensors.map(\.name) else { return "\(file): tensors \(f.tensors.map(\.name)) against \(g.tensors.map(\.name))" }
        for (u, v) in zip(f.tensors, g.tensors) where u.shape != v.shape || tensorSHA256(u) != tensorSHA256(v) {
            return "\(file): tensor \(u.name) differs (sha256 \(tensorSHA256(u)) against \(tensorSHA256(v)))"
        }
    }
    return nil
}

/// The sha256 of a tensor's values as stored (little-endian float32 bit patterns).
func tensorSHA256(_ t: Tensor) -> String {
    sha256Hex(t.values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } })
}

final class RankInvarianceEndToEndTests: XCTestCase {
    /// 12 steps per epoch of 128 (1600 training samples): shards of 43/43/42 on 3 ranks, 32 on 4.
    let net = ["--hidden", "48,24,12", "--batch-size", "128", "--lr", "0.003,0.001", "--epochs", "3", "--threads", "1"]

    func run(_ np: Int, _ args: [String], environment: [String: String] = [:]) throws {
        let r = np == 1 ? try runTrainer(args, environment: environment, timeout: 300) : try runMPI(np, args, environment: environment, timeout: 300)
        XCTAssertFalse(r.timedOut, "np=\(np) \(args) timed out")
        XCTAssertEqual(r.status, 0, "np=\(np) \(args): \(r.stderr)")
    }

    func assertSameBits(_ a: String, _ b: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        if let difference = try runDifference(a, b) { XCTFail("\(what): \(difference)", file: file, line: line) }
    }

    func testSameBitsOnOneToFourRanksAndTwoThreads() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 400)
        let common = ["train", "--data-dir", tmp + "/data"] + net
        try run(1, common + ["--run-dir", tmp + "/np1"])
        try run(1, common + ["--run-dir", tmp + "/np1-2threads", "--threads", "2"])
        try assertSameBits(tmp + "/np1", tmp + "/np1-2threads", "one process, 2 threads")
        for np in [2, 3, 4] {
            try run(np, common + ["--run-dir", tmp + "/np\(np)"])
            try assertSameBits(tmp + "/np1", tmp + "/np\(np)", "np=\(np)")
            // On one node the ranks keep one copy of the parameters, so the allgather is a fence
            // and so are the writes of each learning rate's fresh weights, rank 0's alone
            // (NodeSharedMemory.swift). The weight gradients: where the products read bf16 copies,
            // each rank's part computed from every rank's rows of the operands they share (no
            // reduction); otherwise reduced in shared memory (as in the float32-products run below).
            let collectives = try readJSON(tmp + "/np\(np)/summary.json")["collectives"] as? [String: Any] ?? [:]
            XCTAssertEqual(collectives["weight-gradient operands fence (shared memory)"] != nil, cpuHasBF16, "np=\(np): \(collectives.keys.sorted())")
            XCTAssertEqual(collectives["reduce-scatter (shared memory)"] != nil, !cpuHasBF16, "np=\(np): \(collectives.keys.sorted())")
            XCTAssertNotNil(collectives["allgather (shared memory)"], "np=\(np): \(collectives.keys.sorted())")
            XCTAssertNotNil(collectives["shared-memory fence (MPI_Win_sync, MPI_Barrier)"], "np=\(np): \(collectives.keys.sorted())")
            // And the per-feature sums and maxima are combined there too.
            XCTAssertNotNil(collectives["sums and maxima (shared memory)"], "np=\(np): \(collectives.keys.sorted())")
            XCTAssertNil(collectives["MPI_Allreduce (sums and maxima)"], "np=\(np): \(collectives.keys.sorted())")
        }
        // And through MPI's messages when that is turned off: the same bits. (With Open MPI's
        // eager limit set by the environment, which dist-trainer leaves as it is.)
        try run(2, common + ["--run-dir", tmp + "/np2-messages"],
                environment: ["DIST_TRAINER_SHARED_MEMORY": "0", "OMPI_MCA_btl_vader_eager_limit": "8192"])
        try assertSameBits(tmp + "/np1", tmp + "/np2-messages", "np=2 without shared memory")
        // The shared-memory transport's eager limit as MPI reports it: raised to 64 KB by
        // dist-trainer (Open MPI's default is 4 KB), or what the environment said.
        func transport(_ run: String) throws -> [String: Int]? { try readJSON(tmp + "/" + run + "/summary.json")["mpi_transport"] as? [String: Int] }
        XCTAssertEqual(try transport("np2"), ["btl_vader_eager_limit": 65536, "btl_vader_max_send_size": 65536])
        XCTAssertEqual(try transport("np2-messages"), ["btl_vader_eager_limit": 8192, "btl_vader_max_send_size": 65536])
        XCTAssertNil(try transport("np1"), "one process has no MPI transport to report")
        let ring = try readJSON(tmp + "/np2-messages/summary.json")["collectives"] as? [String: Any] ?? [:]
        XCTAssertNotNil(ring["reduce-scatter (MPI_Sendrecv ring)"], "\(ring.keys.sorted())")
        XCTAssertNotNil(ring["MPI_Allreduce (sums and maxima)"], "\(ring.keys.sorted())")
        // Float32 weight-gradient products (a CPU without bf16 arithmetic) give the bits of the
        // bf16 copies this CPU may use.
        try run(2, common + ["--run-dir", tmp + "/np2-fp32-products"], environment: ["DIST_TRAINER_EXACT_PRODUCTS": "fp32"])
        try assertSameBits(tmp + "/np1", tmp + "/np2-fp32-products", "np=2 with float32 weight-gradient products")
        let fp32Products = try readJSON(tmp + "/np2-fp32-products/summary.json")["collectives"] as? [String: Any] ?? [:]
        XCTAssertNotNil(fp32Products["reduce-scatter (shared memory)"], "\(fp32Products.keys.sorted())")
        XCTAssertNil(fp32Products["weight-gradient operands fence (shared memory)"], "\(fp32Products.keys.sorted())")
        // Not vacuous: the runs trained, and another seed gives other bits.
        XCTAssertGreaterThan(try readJSON(tmp + "/np1/summary.json")["test"].flatMap { $0 as? [String: Any] }?["accuracy"] as? Double ?? 0, 0.5)
        try run(1, common + ["--run-dir", tmp + "/seed13", "--seed", "13"])
        XCTAssertNotNil(try runDifference(tmp + "/np1", tmp + "/seed13"), "another seed gave the same bits: the comparison sees nothing")
    }

    /// bf16 products (where the CPU has them) and every recipe feature at once.
    func testRecipeFeaturesAndBF16AreBitwiseAcrossRankCounts() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1200, test: 300)
        var features = ["--lr-schedule", "cosine", "--warmup-epochs", "1", "--weight-decay", "0.05", "--label-smoothing", "0.1",
                        "--augment-shift", "1", "--augment-flip", "--accumulate", "2", "--early-stopping", "2", "--model", "3"]
        if cpuHasBF16 { features += ["--precision", "bf16"] } else { print("bf16 not tested: this CPU has no bf16 arithmetic (\(cpuInstructionSet()))") }
        let common = ["train", "--data-dir", tmp + "/data", "--hidden", "32,24,16,8", "--batch-size", "60", "--lr", "0.004",
                      "--epochs", "4", "--threads", "1"] + features
        try run(1, common + ["--run-dir", tmp + "/np1"])
        for np in [2, 3] {
            try run(np, common + ["--run-dir", tmp + "/np\(np)"])
            try assertSameBits(tmp + "/np1", tmp + "/np\(np)", "np=\(np) with \(features)")
        }
    }

    /// Stopped mid-epoch (a rank paused before a known step, then SIGTERM to the job) on one rank
    /// count, resumed on another: the uninterrupted run's bits.
    func testMidEpochResumeOnAnotherRankCountIsBitwise() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 2000, test: 400)
        let common = ["train", "--data-dir", tmp + "/data"] + net
        try run(1, common + ["--run-dir", tmp + "/full"])
        // 12 steps per epoch: step 17 is the 5th of epoch 2, step 31 the 7th of epoch 3 (first lr).
        for (first, second, step) in [(2, 3, 17), (3, 1, 31)] {
            let dir = tmp + "/cut\(first)to\(second)", ready = dir + ".paused"
            let launcher = first == 1 ? try trainerBinary() : try mpirunPath()
            let prefix = first == 1 ? [] : ["--oversubscribe", "-np", String(first), try trainerBinary()]
            let p = try startProcess(launcher, prefix + common + ["--run-dir", dir],
                                     environment: ["DIST_TRAINER_FAULT": "pause:0:\(step)", "DIST_TRAINER_FAULT_READY": ready], log: dir + ".log")
            XCTAssertTrue(waitForFile(ready, while: p), "np=\(first) never paused")
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
            let log = (try? String(contentsOfFile: dir + ".log", encoding: .utf8)) ?? ""
            // A single process exits 143 (128 + SIGTERM); mpirun reports its ranks' failure as 1.
            XCTAssertEqual(p.terminationStatus, first == 1 ? 143 : 1, log)
            XCTAssertTrue(log.contains("interrupted by SIGTERM"), log)
            let saved = try readSafetensors(path: dir + "/last.safetensors").metadata["position"] ?? "{}"
            let position = try JSONSerialization.jsonObject(with: Data(saved.utf8)) as? [String: Any] ?? [:]
            XCTAssertEqual((position["step_in_epoch"] ?? position["stepInEpoch"]) as? Int, step % 12,
                           "the checkpoint should stand mid-epoch, after step \(step % 12) of its epoch: \(saved)")
            try run(second, ["train", "--resume", dir, "--threads", "1"])
            try assertSameBits(tmp + "/full", dir, "stopped at step \(step) on np=\(first), resumed on np=\(second)")
        }
    }
}
