// BatchNormSemanticsTests: what BatchNorm computes in training and in inference, how its running
// statistics move (hand-computed), and the exact merge of shard statistics in `local` mode.
@testable import Collectives
import Foundation
@testable import Kernels
@testable import Model
import TestSupport
import XCTest


final class BatchNormSemanticsTests: XCTestCase {

    // MARK: - Helpers

    static let key = RandomKey(seed: 4, .dropout).with(1)

    static func context(rows: Int, globalBatch: Int? = nil, firstRow: Int = 0, keep: Float = 1, mode: BatchNormMode = .sync) -> StepContext {
        StepContext(globalBatch: globalBatch ?? rows, firstRow: firstRow, rows: rows, dropoutKey: key, keep: keep, batchNormMode: mode)
    }

    static func setInput(_ net: Network, _ rows: [[Float]]) {
        let w = net.architecture.inputWidth
        for (i, row) in rows.enumerated() {
            precondition(row.count == w)
            for j in 0..<w { net.input.pointer[i * w + j] = row[j] }
        }
    }

    /// One hidden block of width 2 on 2 inputs whose Dense layer is the identity, so the BatchNorm
    /// input is relu(x) and everything can be computed by hand.
    static func identityNetwork(dropout: Bool = false, capacity: Int = 4) -> Network {
        let net = Network(architecture: Architecture(inputWidth: 2, hidden: [2], dropoutAfter: [dropout], classCount: 2), capacity: capacity)
        let p = net.parameters.pointer
        let (d, n, h) = (net.layout.dense[0], net.layout.norm[0], net.layout.head)
        for (i, v) in [Float(1), 0, 0, 1].enumerated() { p[d.weight + i] = v }
        for j in 0..<2 {
            p[d.bias + j] = 0
            p[n.scale + j] = 1
            p[n.shift + j] = 0
        }
        // Head: W = [[1, −1], [0.5, 2]] (fanIn × classes), b = [0.2, −0.1].
        for (i, v) in [Float(1), -1, 0.5, 2].enumerated() { p[h.weight + i] = v }
        p[h.bias] = 0.2
        p[h.bias + 1] = -0.1
        return net
    }

    /// Where Network keeps block `l`'s local-mode Σa (then Σa²) for the reduction and the merge.
    static func statisticsSums(_ net: Network, block l: Int = 0) -> UnsafeMutablePointer<Double> {
        net.exactSums.pointer + net.exactLayout.statistics + net.statsLayout.mean[l]
    }

    static func runningMean(_ net: Network, block l: Int = 0) -> [Float] {
        (0..<net.architecture.hidden[l]).map { net.runningStats.pointer[net.statsLayout.mean[l] + $0] }
    }

    static func runningVariance(_ net: Network, block l: Int = 0) -> [Float] {
        (0..<net.architecture.hidden[l]).map { net.runningStats.pointer[net.statsLayout.variance[l] + $0] }
    }

    static func assertEqual(_ a: [Float], _ e: [Double], accuracy: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, e.count, what, file: file, line: line)
        for (x, y) in zip(a, e) {
            XCTAssertEqual(Double(x), y, accuracy: accuracy, "\(what): \(a) vs expected \(e)", file: file, line: line)
        }
    }

    /// A small random network (He weights, random biases / BN parameters).
    static func randomNetwork(_ arch: Architecture, capacity: Int, rng: inout SplitMix64) -> Network {
        let net = Network(architecture: arch, capacity: capacity)
        net.reset(seed: 21)
        let p = net.parameters.pointer
        for slot in net.layout.allDense { for j in 0..<slot.fanOut { p[slot.bias + j] = rng.normal() * 0.2 + 0.3 } }
        for (l, slot) in net.layout.norm.enumerated() {
            for j in 0..<slot.width {
                p[slot.scale + j] = (j % 4 == 3 ? -1 : 1) * (0.5 + Float(j % 5) * 0.2) + Float(l) * 0.1
                p[slot.shift + j] = rng.normal() * 0.5
            }
        }
        return net
    }

    // MARK: - Training mode: batch statistics

    func testTrainingOutputHasShiftMeanAndScaleStd() throws {
        var rng = SplitMix64(1)
        let arch = Architecture(inputWidth: 5, hidden: [6], dropoutAfter: [false], classCount: 3)
        let rows = 20
        let net = Self.randomNetwork(arch, capacity: rows, rng: &rng)
        for i in 0..<(rows * 5) { net.input.pointer[i] = rng.normal() }
        try net.forwardTrain(Self.context(rows: rows), collective: SingleProcess())
        let b = net.blocks[0]
        let (norm, w) = (net.layout.norm[0], 6)
        for j in 0..<w {
            let a = (0..<rows).map { Double(b.a.pointer[$0 * w + j]) }
            let aMean = a.reduce(0, +) / Double(rows)
            XCTAssertGreaterThan(a.map { ($0 - aMean) * ($0 - aMean) }.reduce(0, +) / Double(rows), 1e-2, "column \(j) too flat for this test")
            let y = (0..<rows).map { Double(b.out.pointer[$0 * w + j]) }
            let mean = y.reduce(0, +) / Double(rows)
            let std = (y.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(rows)).squareRoot()
            let (scale, shift) = (Double(net.parameters.pointer[norm.scale + j]), Double(net.parameters.pointer[norm.shift + j]))
            XCTAssertEqual(mean, shift, accuracy: 1e-5, "column \(j) mean")
            XCTAssertEqual(std, abs(scale), accuracy: 1e-4 * abs(scale), "column \(j) std (biased)")
        }
    }

    // MARK: - Running statistics

    func testRunningStatisticsHandComputed() throws {
        let net = Self.identityNetwork()
        let single = SingleProcess()
        XCTAssertEqual(Self.runningMean(net), [0, 0])
        XCTAssertEqual(Self.runningVariance(net), [1, 1])
        // Batch 1: relu gives column 0 = [1, 2, 3, 4] (mean 2.5, biased var 1.25) and
        // column 1 = [0, 0, 3, 5] (mean 2, biased var 18/4 = 4.5).
        Self.setInput(net, [[1, -1], [2, 0], [3, 3], [4, 5]])
        try net.forwardTrain(Self.context(rows: 4), collective: single)
        // r ← 0.9·r + 0.1·batch: mean 0.1·[2.5, 2]; var 0.9 + 0.1·[1.25, 4.5].
        Self.assertEqual(Self.runningMean(net), [0.25, 0.2], accuracy: 1e-6, "running mean after 1 step")
        Self.assertEqual(Self.runningVariance(net), [1.025, 1.35], accuracy: 1e-6, "running var after 1 step")
        // Batch 2: column 0 = [2, 2, 2, 2] (mean 2, var 0); column 1 = relu[1, 1, 7, −3] = [1, 1, 7, 0]
        // (mean 2.25, var (2·1.5625 + 22.5625 + 5.0625)/4 = 7.6875).
        Self.setInput(net, [[2, 1], [2, 1], [2, 7], [2, -3]])
        try net.forwardTrain(Self.context(rows: 4), collective: single)
        Self.assertEqual(Self.runningMean(net), [0.425, 0.405], accuracy: 1e-6, "running mean after 2 steps")
        Self.assertEqual(Self.runningVariance(net), [0.9225, 1.98375], accuracy: 1e-6, "running var after 2 steps")
        // Inference does not touch them.
        net.forwardInference(rows: 4)
        Self.assertEqual(Self.runningVariance(net), [0.9225, 1.98375], accuracy: 1e-6, "running var after inference")
    }

    func testLocalModeForwardLeavesRunningStatisticsForTheMerge() throws {
        let net = Self.identityNetwork()
        Self.setInput(net, [[1, -1], [2, 0], [3, 3], [4, 5]])
        try net.forwardTrain(Self.context(rows: 4, mode: .local), collective: SingleProcess())
        XCTAssertEqual(Self.runningMean(net), [0, 0])
        XCTAssertEqual(Self.runningVariance(net), [1, 1])
        // The shard's Σa and Σa² sit in the fused tail.
        let tail = Self.statisticsSums(net)
        XCTAssertEqual((0..<4).map { tail[$0] }, [10, 8, 30, 34])
        net.mergeRunningStatistics(globalBatch: 4)
        Self.assertEqual(Self.runningMean(net), [0.25, 0.2], accuracy: 1e-6, "merged running mean")
        Self.assertEqual(Self.runningVariance(net), [1.025, 1.35], accuracy: 1e-6, "merged running var")
    }

    // MARK: - Inference

    func testInferenceUsesRunningStatisticsAndNoDropout() throws {
        // Dropout after the block must not be applied in inference.
        let net = Self.identityNetwork(dropout: true)
        let (p, r, n) = (net.parameters.pointer, net.runningStats.pointer, net.layout.norm[0])
        p[n.scale] = 2; p[n.scale + 1] = 0.5
        p[n.shift] = 0.1; p[n.shift + 1] = -0.3
        r[net.statsLayout.mean[0]] = 1; r[net.statsLayout.mean[0] + 1] = 2
        r[net.statsLayout.variance[0]] = 4; r[net.statsLayout.variance[0] + 1] = 0.25
        // Row 0: a = [3, 1] → y = [2·(3−1)/2 + 0.1, 0.5·(1−2)/0.5 − 0.3] = [2.1, −1.3]
        //        logits = [2.1 − 0.65 + 0.2, −2.1 − 2.6 − 0.1] = [1.65, −4.8].
        // Row 1: a = [0, 4] → y = [−0.9, 1.7]; logits = [−0.9 + 0.85 + 0.2, 0.9 + 3.4 − 0.1] = [0.15, 4.2].
        Self.setInput(net, [[3, 1], [-1, 4]])
        net.forwardInference(rows: 2)
        Self.assertEqual(Array(net.logits.array[0..<4]), [1.65, -4.8, 0.15, 4.2], accuracy: 1e-5, "inference logits")
        // Training mode on the same two rows uses their batch statistics instead (and dropout).
        try net.forwardTrain(Self.context(rows: 2, keep: 1), collective: SingleProcess())
        // Batch stats: column 0 = [3, 0] → x̂ = [1, −1]; column 1 = [1, 4] → x̂ = [−1, 1] (up to ε).
        // y = [[2.1, −0.8], [−1.9, 0.2]]; logits row 0 = [2.1 − 0.4 + 0.2, −2.1 − 1.6 − 0.1].
        XCTAssertEqual(net.logits.pointer[0], 1.9, accuracy: 1e-4)
        XCTAssertEqual(net.logits.pointer[1], -3.8, accuracy: 1e-4)
    }

    func testInferenceIsPerRowAndDeterministicTrainingIsNot() throws {
        var rng = SplitMix64(2)
        let arch = Architecture(inputWidth: 10, hidden: [16, 8], dropoutAfter: [true, false], classCount: 5)
        let rows = 9
        let net = Self.randomNetwork(arch, capacity: rows, rng: &rng)
        // Move the running statistics away from (0, 1) with a few training forwards.
        for _ in 0..<3 {
            for i in 0..<(rows * 10) { net.input.pointer[i] = rng.normal() }
            try net.forwardTrain(Self.context(rows: rows, keep: 0.5), collective: SingleProcess())
        }
        let batch = rng.normals(rows * 10)
        for (i, v) in batch.enumerated() { net.input.pointer[i] = v }
        net.forwardInference(rows: rows)
        let together = Array(net.logits.array[0..<(rows * 5)])
        net.forwardInference(rows: rows)
        XCTAssertEqual(Array(net.logits.array[0..<(rows * 5)]), together, "inference must be deterministic")
        for i in 0..<rows {
            for j in 0..<10 { net.input.pointer[j] = batch[i * 10 + j] }
            net.forwardInference(rows: 1)
            for c in 0..<5 { XCTAssertEqual(net.logits.pointer[c], together[i * 5 + c], accuracy: 1e-5, "row \(i) alone vs in batch") }
        }
        // Training mode: row 0's logits depend on which other rows share its batch.
        for (i, v) in batch.enumerated() { net.input.pointer[i] = v }
        try net.forwardTrain(Self.context(rows: rows), collective: SingleProcess())
        let trainAll = Array(net.logits.array[0..<5])
        try net.forwardTrain(Self.context(rows: 4), collective: SingleProcess())
        let trainFirstFour = Array(net.logits.array[0..<5])
        let diff = zip(trainAll, trainFirstFour).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(diff, 1e-2, "training-mode output should depend on the batch")
        // ... and differs from inference.
        let diffInference = zip(trainAll, together[0..<5]).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(diffInference, 1e-2)
    }

    // MARK: - Exact merge of shard statistics (local mode)

    /// Mean and biased variance per column of a row-major matrix, two-pass in Double.
    static func moments(_ values: [Float], rows: Int, width: Int) -> (mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: width), variance = mean
        for j in 0..<width {
            let col = (0..<rows).map { Double(values[$0 * width + j]) }
            mean[j] = col.reduce(0, +) / Double(rows)
            variance[j] = col.map { ($0 - mean[j]) * ($0 - mean[j]) }.reduce(0, +) / Double(rows)
        }
        return (mean, variance)
    }

    func testMergeRunningStatisticsIsExact() {
        var rng = SplitMix64(3)
        let width = 4
        // Shards with clearly different means, so the spread of shard means matters.
        for (k1, k2) in [(5, 3), (4, 4), (1, 7)] {
            let shard1 = rng.normals(k1 * width, scale: 1, offset: 0)
            let shard2 = rng.normals(k2 * width, scale: 0.5, offset: 3)
            let all = shard1 + shard2
            let total = k1 + k2
            let net = Network(architecture: Architecture(inputWidth: 3, hidden: [width], dropoutAfter: [false], classCount: 2), capacity: total)
            let tail = Self.statisticsSums(net)
            for j in 0..<(2 * width) { tail[j] = 0 }
            for (shard, rows) in [(shard1, k1), (shard2, k2)] {
                let sums = Buffer<Double>(count: 2 * width)
                shard.withUnsafeBufferPointer { batchNormSums($0.baseAddress!, rows: rows, width: width, into: sums.pointer) }
                // As Network stores them and the reduction adds them.
                for j in 0..<(2 * width) { tail[j] += sums.pointer[j] }
            }
            net.mergeRunningStatistics(globalBatch: total)

            let (mean, variance) = Self.moments(all, rows: total, width: width)
            Self.assertEqual(Self.runningMean(net), mean.map { 0.1 * $0 }, accuracy: 1e-5, "merged running mean \(k1)+\(k2)")
            Self.assertEqual(Self.runningVariance(net), variance.map { 0.9 + 0.1 * $0 }, accuracy: 1e-5, "merged running var \(k1)+\(k2)")

            // The same as one pass over the concatenated batch with the kernels.
            let sums = Buffer<Double>(count: 2 * width)
            all.withUnsafeBufferPointer { batchNormSums($0.baseAddress!, rows: total, width: width, into: sums.pointer) }
            let (m, v, s) = (Buffer<Float>(count: width), Buffer<Float>(count: width), Buffer<Float>(count: width))
            batchNormMoments(sums: sums.pointer, count: total, width: width, mean: m.pointer, variance: v.pointer, invStd: s.pointer)
            let rm = Buffer<Float>(count: width), rv = Buffer<Float>([Float](repeating: 1, count: width))
            batchNormUpdateRunning(runningMean: rm.pointer, runningVariance: rv.pointer, mean: m.pointer, variance: v.pointer, width: width)
            for j in 0..<width {
                XCTAssertEqual(Self.runningMean(net)[j], rm.pointer[j], accuracy: 1e-5)
                XCTAssertEqual(Self.runningVariance(net)[j], rv.pointer[j], accuracy: 1e-5)
            }

            // Not the naive average of the shard variances (which ignores the spread of the means).
            let v1 = Self.moments(shard1, rows: k1, width: width).variance
            let v2 = Self.moments(shard2, rows: k2, width: width).variance
            for j in 0..<width {
                let naive = 0.9 + 0.1 * (v1[j] + v2[j]) / 2
                let weighted = 0.9 + 0.1 * (Double(k1) * v1[j] + Double(k2) * v2[j]) / Double(total)
                let merged = Double(Self.runningVariance(net)[j])
                XCTAssertGreaterThan(abs(merged - naive), 0.01, "merge must not average shard variances")
                XCTAssertGreaterThan(abs(merged - weighted), 0.01, "merge must include the spread of shard means")
            }
        }
    }

    /// The same merge through the Network: two replicas on uneven shards (5 + 3) in `local` mode,
    /// their fused buffers added as an allreduce would, then merged, match one replica running the
    /// whole batch in `sync` mode (block 0's input does not depend on the mode).
    func testLocalShardsMergedEqualSyncRunningStatistics() throws {
        var rng = SplitMix64(4)
        let arch = Architecture(inputWidth: 6, hidden: [5], dropoutAfter: [true], classCount: 3)
        let (batch, k) = (8, 5)
        let whole = Self.randomNetwork(arch, capacity: batch, rng: &rng)
        let input = (0..<batch).map { i in rng.normals(6, scale: 1, offset: i < k ? 0 : 1.5) }
        Self.setInput(whole, input)
        try whole.forwardTrain(Self.context(rows: batch, keep: 0.5), collective: SingleProcess())

        let shards = [0..<k, k..<batch].map { rows -> (Network, StepContext) in
            let net = Network(architecture: arch, capacity: batch)
            net.parameters.copy(from: whole.parameters)
            Self.setInput(net, Array(input[rows]))
            return (net, Self.context(rows: rows.count, globalBatch: batch, firstRow: rows.lowerBound, keep: 0.5, mode: .local))
        }
        for (net, ctx) in shards {
            try net.forwardTrain(ctx, collective: SingleProcess())
            net.lossAndGradient(ctx)
            try net.backward(ctx, collective: SingleProcess())
        }
        // The reduction of the Double sums (the statistics travel there).
        let summed = zip(shards[0].0.exactSums.array, shards[1].0.exactSums.array).map { $0 + $1 }
        for (net, _) in shards {
            for (i, v) in summed.enumerated() { net.exactSums.pointer[i] = v }
            net.mergeRunningStatistics(globalBatch: batch)
            for (a, e) in zip(net.runningStats.array, whole.runningStats.array) { XCTAssertEqual(a, e, accuracy: 1e-5) }
        }
        // The statistics did move (the check is not vacuous).
        let moved = zip(whole.runningStats.array, Network(architecture: arch, capacity: 1).runningStats.array).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(moved, 1e-2)
    }
}
