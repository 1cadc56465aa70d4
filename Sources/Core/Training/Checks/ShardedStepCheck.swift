// ShardedStepCheck: one data-parallel training step on shards against the single-process step on
// the whole batch — gradients, loss, running statistics in both BatchNorm modes and the sharded
// Adam step (part of JobCheck) — and the small fixture both sides compute on.
import Collectives
import Kernels
import Model

extension JobCheck {
    /// One training step on shards equals the single-process step on the whole batch bit for bit in
    /// sync mode (gradients, loss, running statistics, the sharded Adam step: every sum of the step
    /// is exact, ExactSum.swift), and in local mode the merged running statistics equal those of
    /// the whole batch (to rounding: local statistics are plain sums).
    mutating func checkShardedStep(mode: BatchNormMode) throws {
        let f = StepFixture(batch: batch, ranks: collective.size)
        // The reference: the whole batch in one process.
        let whole = f.network(rows: 0..<batch)
        let reference = try whole.computeGradients(f.context(rows: 0..<batch, mode: .sync), collective: SingleProcess())

        let part = shardRange(batch: batch, rank: collective.rank, size: collective.size)
        let net = f.network(rows: part)
        let ctx = f.context(rows: part, mode: mode)
        let tally = try net.computeGradients(ctx, collective: collective)
        let expected = mode == .sync ? whole.runningStats : try f.localModeRunningStats()
        try report("\(mode) BatchNorm: running statistics = whole-batch statistics\(mode == .sync ? ", bit for bit" : ""), batch \(batch)",
                   relativeError(net.runningStats, expected, count: net.runningStats.count), tolerance: mode == .sync ? 0 : 1e-5)
        guard mode == .sync else { return }
        // The optimizer step as training does it (reduce-scatter, Adam on this rank's part,
        // allgather) against a plain Adam step on the whole-batch gradient.
        let sharded = f.network(rows: part)
        _ = try sharded.computeLocalGradients(ctx, collective: collective)
        let optimizer = ShardedAdam(adam: AdamState(parameterCount: sharded.layout.count, variant: .adam), collective: collective)
        try optimizer.step(sharded, collective: collective, lr: 0.01)
        let plain = AdamState(parameterCount: whole.layout.count, variant: .adam)
        plain.update(params: whole.parameters.pointer, grads: whole.gradients.pointer, lr: 0.01)
        try report("sharded Adam step (reduce-scatter, update, allgather) = whole-batch step, bit for bit",
                   relativeError(sharded.parameters, whole.parameters, count: whole.layout.count), tolerance: 0)
        try report("sync BatchNorm: sharded gradient = whole-batch gradient, bit for bit, batch \(batch)",
                   relativeError(net.gradients, whole.gradients, count: net.layout.count), tolerance: 0)
        try report("sync BatchNorm: loss and correct count, bit for bit",
                   abs(tally.lossSum - reference.lossSum) / reference.lossSum + Double(abs(tally.correct - reference.correct)), tolerance: 0)
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
    let arch = ModelPreset.model1.architecture(inputWidth: 20, classCount: 10, hidden: [24, 12])
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
    func localModeRunningStats() throws -> Buffer<Float> {
        let shards = (0..<ranks).map { shardRange(batch: batch, rank: $0, size: ranks) }
        let replicas = try shards.map { rows -> Network in
            let replica = network(rows: rows)
            try replica.forwardTrain(context(rows: rows, mode: .local), collective: SingleProcess())
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
