// Check: `dist-trainer check`, a self-test of the MPI job before you spend hours training on it.
//
// Run it exactly as you would train (`mpirun -np N dist-trainer check`). It verifies, with exact
// expected values, that sum-allreduce (Float, Double, and the 16-bit ring of --grad-compression),
// min/max, broadcast of buffers and bytes and error agreement work across all ranks; that a
// data-parallel gradient computed on shards equals the single-process gradient of the whole
// batch; and that BatchNorm running statistics merge exactly in both `sync` and `local` modes.
// Rank 0 prints one line per check; exit status 1 if any check fails on any rank.
import CoreSupport
import Kernels
import Collectives
import Model
import Training
import Formats
import Datasets
import ArgumentParser
import Foundation

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify the MPI job: collectives, error agreement, sharded gradients, BatchNorm merging.")

    @Option(help: "Global batch of the sharded-gradient check (at least the number of ranks).")
    var batchSize: Int = 37

    @Flag(help: "Also measure the network: latency and bandwidth between rank 0 and every other rank, a small allreduce's latency, and whether a non-blocking allreduce progresses while the ranks compute.")
    var network = false

    @Flag(help: "With --network: print the measurement as one JSON object (for scripts/scaling_model.py).")
    var json = false

    func run() throws {
        try withMPIJob { mpi in
            setComputeThreads(1)
            var failures = 0
            func report(_ name: String, _ maxError: Double, tolerance: Double) throws {
                // Every rank must pass: the worst error over the job decides.
                let (_, worst) = try mpi.allreduceMinMax(maxError.isNaN ? .infinity : maxError)
                let ok = worst <= tolerance
                if !ok { failures += 1 }
                if mpi.rank == 0 {
                    print("\(ok ? "ok  " : "FAIL") \(name): max error \(worst) (tolerance \(tolerance))")
                }
            }
            if mpi.rank == 0 { print("dist-trainer check: \(mpi.size) rank(s) on \(mpi.nodeCount) host(s)") }
            try checkCollectives(mpi, report: report)
            try checkAgreement(mpi, report: report)
            for mode in BatchNormMode.allCases {
                try checkShardedStep(mpi, mode: mode, batch: max(batchSize, mpi.size), report: report)
            }
            if failures > 0 { throw TrainerError("\(failures) check(s) failed", agreed: true) }
            if mpi.rank == 0 { print("all checks passed") }
            if network { try reportNetwork(mpi) }
        }
    }

    /// `--network`: latency and bandwidth to every rank, and a small allreduce's latency.
    func reportNetwork(_ mpi: MPICollective) throws {
        let m = try mpi.probeNetwork()
        guard mpi.rank == 0 else { return }
        if json { return print(try JSONCoding.text(m)) }
        for l in m.links {
            print(String(format: "network: rank 0 (%@) <-> rank %d (%@): latency %.1f µs, bandwidth %.2f GB/s",
                         mpi.hostNames[0], l.rank, l.host, l.latency * 1e6, l.bandwidth / 1e9))
        }
        print(String(format: "network: 8-byte allreduce over %d ranks: %.1f µs", m.ranks, m.smallAllreduce * 1e6))
        print(String(format: "network: 4 MiB allreduce: %.2f ms; started non-blocking before as long a computation, %.0f %% of it was hidden%@",
                     m.largeAllreduce * 1e3, 100 * m.overlapHidden,
                     m.overlapHidden < 0.25 ? " (MPI moves little data outside MPI calls here, so overlapping reductions with compute hides little)" : ""))
    }

    /// Sums, min/max and broadcasts with values whose exact results are known.
    func checkCollectives(_ mpi: MPICollective, report: (String, Double, Double) throws -> Void) throws {
        let n = 1000
        let (r, s) = (mpi.rank, mpi.size)
        // Small integers are exact in Float, so the sums must be exact too.
        let f = Buffer<Float>(count: n)
        for i in 0..<n { f.pointer[i] = Float((r + 1) * (i % 13)) }
        try mpi.allreduceSum(f.all)
        var err = 0.0
        for i in 0..<n { err = max(err, abs(Double(f.pointer[i]) - Double(s * (s + 1) / 2 * (i % 13)))) }
        try report("allreduce sum (Float, \(n))", err, 0)

        let d = Buffer<Double>(count: n)
        for i in 0..<n { d.pointer[i] = Double(r) + Double(i) * 0.5 }
        try mpi.allreduceSum(d.all)
        err = 0
        for i in 0..<n { err = max(err, abs(d.pointer[i] - (Double(s * (s - 1) / 2) + Double(s) * Double(i) * 0.5))) }
        try report("allreduce sum (Double, \(n))", err, 0)

        try checkCompressedAllreduce(mpi, report: report)

        let (lo, hi) = try mpi.allreduceMinMax(Double(r) * 1.5 - 2)
        try report("allreduce min/max", max(abs(lo + 2), abs(hi - (Double(s - 1) * 1.5 - 2))), 0)

        let root = s - 1
        let b = Buffer<Float>(count: n)
        for i in 0..<n { b.pointer[i] = r == root ? Float(i) * 0.25 : -1 }
        try mpi.broadcast(b.all, root: root)
        err = 0
        for i in 0..<n { err = max(err, abs(Double(b.pointer[i]) - Double(i) * 0.25)) }
        try report("broadcast buffer from rank \(root)", err, 0)

        var bytes: [UInt8] = r == root ? Array("from rank \(root): ünïcödé".utf8) : [1, 2, 3]
        try mpi.broadcast(&bytes, root: root)
        try report("broadcast bytes from rank \(root)", String(decoding: bytes, as: UTF8.self) == "from rank \(root): ünïcödé" ? 0 : 1, 0)
        try mpi.barrier()
    }

    /// The 16-bit ring of --grad-compression: small integers are exact in bf16 and fp16, so their
    /// sums must be exact (an uneven length gives unequal ring parts); values that do round must
    /// stay within one 16-bit rounding per hop, and every rank must end with the same sums.
    func checkCompressedAllreduce(_ mpi: MPICollective, report: (String, Double, Double) throws -> Void) throws {
        let (r, s) = (mpi.rank, mpi.size)
        let m = 1001 + s
        for format in [GradientCompression.bf16, .fp16] {
            let g = Buffer<Float>(count: m)
            for i in 0..<m { g.pointer[i] = Float((r + 1) * (i % 7)) }
            try mpi.allreduceSumCompressed(g.all, format: format)
            var err = 0.0
            for i in 0..<m { err = max(err, abs(Double(g.pointer[i]) - Double(s * (s + 1) / 2 * (i % 7)))) }
            try report("allreduce sum in \(format) (ring, \(m))", err, 0)

            for i in 0..<m { g.pointer[i] = 1 / Float(1 + i + r) }
            try mpi.allreduceSumCompressed(g.all, format: format)
            err = 0
            var checksum = 0.0
            for i in 0..<m {
                let exact = (0..<s).reduce(0.0) { $0 + Double(1 / Float(1 + i + $1)) }
                err = max(err, abs(Double(g.pointer[i]) - exact) / exact)
                checksum += Double(g.pointer[i]) * Double(i % 11 + 1)
            }
            let unit = format == .bf16 ? 0x1p-8 : 0x1p-11  // relative rounding of one conversion
            try report("allreduce sum in \(format), rounded values: relative error", err, unit * Double(s))
            let (low, high) = try mpi.allreduceMinMax(checksum)
            try report("allreduce sum in \(format): every rank holds the same sums", high - low, 0)
        }
    }

    /// A failure on one rank only must reach every rank, with that rank's message.
    func checkAgreement(_ mpi: MPICollective, report: (String, Double, Double) throws -> Void) throws {
        var ok = true
        do { try mpi.agree(nil) } catch { ok = false }
        try report("agreement without errors", ok ? 0 : 1, 0)

        let culprit = mpi.size - 1
        let local = mpi.rank == culprit ? TrainerError("file x: expected 1, found 2") : nil
        var message = ""
        do { try mpi.agree(local) } catch let e as TrainerError { message = e.message }
        let expected = mpi.size == 1 ? "file x: expected 1, found 2" : "rank \(culprit): file x: expected 1, found 2"
        try report("agreement on rank \(culprit)'s error", message == expected ? 0 : 1, 0)
    }

    /// One training step on shards equals the single-process step on the whole batch: gradients,
    /// loss, and running statistics (sync mode), and in local mode the merged running statistics
    /// equal those of the whole batch.
    func checkShardedStep(_ mpi: MPICollective, mode: BatchNormMode, batch: Int, report: (String, Double, Double) throws -> Void) throws {
        let f = StepFixture(batch: batch, ranks: mpi.size)
        // The reference: the whole batch in one process.
        let whole = f.network(rows: 0..<batch)
        let reference = try whole.computeGradients(f.context(rows: 0..<batch, mode: .sync), collective: SingleProcess())

        let part = shardRange(batch: batch, rank: mpi.rank, size: mpi.size)
        let net = f.network(rows: part)
        let ctx = f.context(rows: part, mode: mode)
        let tally = try net.computeGradients(ctx, collective: mpi)
        let expected = mode == .sync ? whole.runningStats : f.localModeRunningStats()
        try report("\(mode) BatchNorm: running statistics = whole-batch statistics, batch \(batch)",
                   relativeError(net.runningStats, expected, count: net.runningStats.count), 1e-5)
        guard mode == .sync else { return }
        // The optimizer step as training does it (reduce-scatter, Adam on this rank's part,
        // allgather) against a plain Adam step on the whole-batch gradient.
        let sharded = f.network(rows: part)
        _ = try sharded.computeLocalGradients(ctx, collective: mpi)
        let optimizer = ShardedAdam(adam: AdamState(parameterCount: sharded.layout.count, variant: .adam), collective: mpi)
        try optimizer.step(sharded, collective: mpi, lr: 0.01)
        let plain = AdamState(parameterCount: whole.layout.count, variant: .adam)
        plain.update(params: whole.parameters.pointer, grads: whole.gradients.pointer, lr: 0.01)
        try report("sharded Adam step (reduce-scatter, update, allgather) = whole-batch step",
                   relativeError(sharded.parameters, whole.parameters, count: whole.layout.count), 1e-5)
        try report("sync BatchNorm: sharded gradient = whole-batch gradient, batch \(batch)",
                   relativeError(net.gradients, whole.gradients, count: net.layout.count), 1e-4)
        try report("sync BatchNorm: loss and correct count",
                   abs(tally.lossSum - reference.lossSum) / reference.lossSum + Double(abs(tally.correct - reference.correct)), 1e-5)
    }

    /// Largest absolute difference over the largest magnitude of `b`.
    func relativeError(_ a: Buffer<Float>, _ b: Buffer<Float>, count: Int) -> Double {
        var num = 0.0, den = 1e-6
        for i in 0..<count {
            num = max(num, abs(Double(a.pointer[i]) - Double(b.pointer[i])))
            den = max(den, abs(Double(b.pointer[i])))
        }
        return num / den
    }
}

/// A small network and a deterministic global batch whose shards have different means, so that a
/// wrong merge of per-shard statistics shows.
struct StepFixture {
    let batch: Int
    let ranks: Int
    let arch = ModelPreset.model1.architecture(inputWidth: 20, classCount: FashionMNIST.classCount, hidden: [24, 12])
    let key = RandomKey(seed: 7, .dropout).with(3)

    /// A network with the fixture's weights holding global samples `rows`.
    func network(rows: Range<Int>) -> Network {
        let net = Network(architecture: arch, capacity: max(rows.count, 1))
        net.reset(seed: 5)
        let data = RandomKey(seed: 99, .shuffle)
        for (row, global) in rows.enumerated() {
            for j in 0..<arch.inputWidth {
                // Per-sample data with a sample-dependent offset, so shard means differ.
                net.input.pointer[row * arch.inputWidth + j] = unitFloat(UInt32(truncatingIfNeeded: data.bits(global * 64 + j))) + Float(global % 4) * 0.3
            }
            net.labels.pointer[row] = Int32(data.bits(global * 64 + 63) % UInt64(arch.classCount))
        }
        return net
    }

    func context(rows: Range<Int>, mode: BatchNormMode) -> StepContext {
        StepContext(globalBatch: batch, firstRow: rows.lowerBound, rows: rows.count, dropoutKey: key, keep: 0.5, batchNormMode: mode)
    }

    /// In local mode a block's input depends on how earlier blocks normalised their shards, so the
    /// expected running statistics are the whole-batch statistics of the concatenated shard
    /// activations, recomputed here in one process, shard by shard, in Double.
    func localModeRunningStats() -> Buffer<Float> {
        let shards = (0..<ranks).map { shardRange(batch: batch, rank: $0, size: ranks) }
        let replicas = shards.map { rows -> Network in
            let replica = network(rows: rows)
            try? replica.forwardTrain(context(rows: rows, mode: .local), collective: SingleProcess())
            return replica
        }
        let stats = RunningStatsLayout(arch)
        let expected = Buffer<Float>(count: stats.count)
        for (l, width) in arch.hidden.enumerated() {
            for j in 0..<width {
                var sum = 0.0, sumSq = 0.0
                for (rows, replica) in zip(shards, replicas) {
                    let a = replica.batchNormInput(l, rows: rows.count)
                    for i in 0..<rows.count {
                        let v = Double(a[i * width + j])
                        sum += v
                        sumSq += v * v
                    }
                }
                let mean = sum / Double(batch)
                let variance = sumSq / Double(batch) - mean * mean
                expected.pointer[stats.mean[l] + j] = Float(0.1 * mean)
                expected.pointer[stats.variance[l] + j] = Float(0.9 + 0.1 * variance)
            }
        }
        return expected
    }
}
