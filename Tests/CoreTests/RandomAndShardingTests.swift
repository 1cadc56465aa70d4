// RandomAndShardingTests: counter-based randomness (permutations, dropout masks, normals, He
// initialisation), how batches and data are divided (shardRange, DataSplit), and the validation of
// user settings (flag parsing, TrainingConfig).
@testable import Collectives
@testable import CoreSupport
import Foundation
@testable import Kernels
@testable import Model
import TestSupport
@testable import Training
import XCTest

final class RandomAndShardingTests: XCTestCase {

    // MARK: - Permutations

    func testPermutationIsAPermutationDeterministicInItsKey() {
        let key = RandomKey(seed: 12, .shuffle)
        for n in [0, 1, 2, 3, 10, 1000] {
            let p = permutation(n, key: key.with(0))
            XCTAssertEqual(p.sorted(), Array(0..<n), "n = \(n)")
            XCTAssertEqual(p, permutation(n, key: key.with(0)), "same key, same permutation")
        }
        let epoch0 = permutation(1000, key: key.with(0))
        let epoch1 = permutation(1000, key: key.with(1))
        let otherSeed = permutation(1000, key: RandomKey(seed: 13, .shuffle).with(0))
        let otherPurpose = permutation(1000, key: RandomKey(seed: 12, .split).with(0))
        XCTAssertNotEqual(epoch0, epoch1)
        XCTAssertNotEqual(epoch0, otherSeed)
        XCTAssertNotEqual(epoch0, otherPurpose)
        XCTAssertNotEqual(epoch0, Array(0..<1000), "must actually shuffle")
        // Two unrelated permutations agree in about one position (expected 1); far from all.
        XCTAssertLessThan(zip(epoch0, epoch1).filter { $0 == $1 }.count, 10)
    }

    func testPermutationsOfThreeAreUniform() {
        var counts: [[Int]: Int] = [:]
        let key = RandomKey(seed: 5, .shuffle)
        let trials = 6000
        for t in 0..<trials { counts[permutation(3, key: key.with(t)), default: 0] += 1 }
        XCTAssertEqual(counts.count, 6)
        // Each of the 6 orders ~1000 ± 29 (1σ); allow 5σ.
        for (p, c) in counts { XCTAssertEqual(Double(c), 1000, accuracy: 150, "order \(p)") }
    }

    // MARK: - Dropout masks

    func mask(rows: Int, width: Int, firstRow: Int = 0, key: RandomKey, keep: Float) -> [Float] {
        var m = [Float](repeating: .nan, count: rows * width)
        m.withUnsafeMutableBufferPointer {
            dropoutMask($0.baseAddress!, rows: rows, width: width, firstRow: firstRow, key: key, keep: keep)
        }
        return m
    }

    func testDropoutMaskKeepsFractionAndScales() {
        let key = RandomKey(seed: 12, .dropout).with(0).with(0).with(0)
        for keep: Float in [0.5, 0.8] {
            // 1000 × 101: 101 000 entries and an odd width (the last unit of a row uses half a draw).
            let (rows, width) = (1000, 101)
            let m = mask(rows: rows, width: width, key: key, keep: keep)
            let kept = m.filter { $0 != 0 }
            XCTAssertEqual(Double(kept.count) / Double(m.count), Double(keep), accuracy: 0.01, "keep \(keep)")
            XCTAssertTrue(kept.allSatisfy { $0 == 1 / keep }, "kept entries must be exactly 1/keep")
            XCTAssertTrue(m.allSatisfy { $0 == 0 || $0 == 1 / keep })
            // Every column, including the odd last one, keeps about `keep` (σ ≈ 0.016 over 1000 rows).
            for j in [0, 1, 50, width - 1] {
                let column = (0..<rows).filter { m[$0 * width + j] != 0 }.count
                XCTAssertEqual(Double(column) / Double(rows), Double(keep), accuracy: 0.07, "keep \(keep) column \(j)")
            }
            // Neighbouring units (the two halves of one 64-bit draw) are independent.
            var both = 0
            for i in 0..<rows { for p in 0..<50 where m[i * width + 2 * p] != 0 && m[i * width + 2 * p + 1] != 0 { both += 1 } }
            XCTAssertEqual(Double(both) / Double(rows * 50), Double(keep * keep), accuracy: 0.01)
        }
        // keep = 1 keeps everything at scale 1.
        XCTAssertTrue(mask(rows: 50, width: 9, key: key, keep: 1).allSatisfy { $0 == 1 })
    }

    /// Every entry is its definition: unit j of global row r keeps iff the 24 bits of half j mod 2 of
    /// draw r·⌈width/2⌉ + ⌊j/2⌋ are below ⌈keep·2²⁴⌉ — for even widths (a pair stored as one 64-bit
    /// word) and odd ones alike.
    func testDropoutMaskEntriesAreTheirDefinition() {
        let key = RandomKey(seed: 9, .dropout).with(1).with(2).with(0)
        for (width, keep) in [(8, Float(0.5)), (512, 0.8), (101, 0.5), (2, 0.3)] {
            let (rows, firstRow, pairs) = (6, 5, (width + 1) / 2)
            let threshold = UInt64((Double(keep) * 16_777_216).rounded(.up))
            let m = mask(rows: rows, width: width, firstRow: firstRow, key: key, keep: keep)
            for i in 0..<rows {
                for j in 0..<width {
                    let bits = key.bits((firstRow + i) * pairs + j / 2) >> (32 * UInt64(j % 2)) & 0xFF_FFFF
                    XCTAssertEqual(m[i * width + j], bits < threshold ? 1 / keep : 0, "width \(width), row \(i), unit \(j)")
                }
            }
        }
    }

    /// A sample's mask depends on its global row, not on which call (rank) generates it.
    func testDropoutMaskIndependentOfHowRowsAreSplit() {
        let key = RandomKey(seed: 3, .dropout).with(4).with(2).with(1)
        for width in [7, 8] {
            let whole = mask(rows: 10, width: width, key: key, keep: 0.5)
            let first = mask(rows: 4, width: width, firstRow: 0, key: key, keep: 0.5)
            let second = mask(rows: 6, width: width, firstRow: 4, key: key, keep: 0.5)
            XCTAssertEqual(first + second, whole, "width \(width)")
            let uneven = (0..<10).flatMap { mask(rows: 1, width: width, firstRow: $0, key: key, keep: 0.5) }
            XCTAssertEqual(uneven, whole)
            // A different layer (key) or row gives a different mask.
            XCTAssertNotEqual(mask(rows: 10, width: width, key: key.with(9), keep: 0.5), whole)
            XCTAssertNotEqual(mask(rows: 4, width: width, firstRow: 1, key: key, keep: 0.5), first)
        }
    }

    /// Block masks of a network after one training forward pass over global rows `rows` of a
    /// batch of `batch` with step key `key` (two dropout blocks of width 16).
    func networkMasks(rows: Range<Int>, batch: Int, key: RandomKey) throws -> [[Float]] {
        let arch = Architecture(inputWidth: 3, hidden: [16, 16], dropoutAfter: [true, true], classCount: 2)
        let net = Network(architecture: arch, capacity: batch)
        net.reset(seed: 1)
        let ctx = StepContext(globalBatch: batch, firstRow: rows.lowerBound, rows: rows.count, dropoutKey: key, keep: 0.5, batchNormMode: .local)
        try net.forwardTrain(ctx, collective: SingleProcess())
        return net.blocks.map { Array($0.mask!.array[0..<(rows.count * 16)]) }
    }

    /// Network draws block l's mask from (step key, l) at each sample's global position: the masks
    /// are random (not constant, rows differ), a shard at `firstRow` gets exactly those rows of the
    /// whole batch's masks (not the first rows), and another layer or step gets other masks.
    func testNetworkMasksDependOnGlobalRowLayerAndStep() throws {
        let key = RandomKey(seed: 1, .dropout).with(0).with(3)  // (seed, epoch 0, step 3)
        let whole = try networkMasks(rows: 0..<32, batch: 32, key: key)
        for l in 0..<2 {
            XCTAssertEqual(whole[l], mask(rows: 32, width: 16, key: key.with(l), keep: 0.5), "layer \(l): the mask of (step key, layer)")
            // 512 entries, half kept (σ = 11); 32 rows of 16 random bits almost never repeat.
            XCTAssertEqual(Double(whole[l].filter { $0 == 2 }.count), 256, accuracy: 60, "layer \(l): keep 0.5")
            XCTAssertEqual(whole[l].filter { $0 != 0 && $0 != 2 }, [], "layer \(l): entries are 0 or 1/keep")
            let distinctRows = Set((0..<32).map { Array(whole[l][($0 * 16)..<($0 * 16 + 16)]) })
            XCTAssertGreaterThanOrEqual(distinctRows.count, 30, "layer \(l): rows must get their own masks")
        }
        let shard = try networkMasks(rows: 5..<8, batch: 32, key: key)
        for l in 0..<2 {
            XCTAssertEqual(shard[l], Array(whole[l][(5 * 16)..<(8 * 16)]), "layer \(l): a shard's rows are its global rows")
            XCTAssertNotEqual(shard[l], Array(whole[l][0..<(3 * 16)]), "layer \(l): not the whole batch's first rows")
        }
        XCTAssertNotEqual(whole[0], whole[1], "the layers must get different masks")
        let nextStep = try networkMasks(rows: 0..<32, batch: 32, key: RandomKey(seed: 1, .dropout).with(0).with(4))
        for l in 0..<2 { XCTAssertNotEqual(nextStep[l], whole[l], "layer \(l): another step, another mask") }
    }

    /// The Trainer keys the masks by (seed, epoch, step) and the Network adds the layer: after a run
    /// on 1 and 3 ranks, each rank's last masks are those of the last step's key at its shard's rows,
    /// for runs that end in different epochs and steps (whose masks differ).
    func testTrainerMasksAreKeyedBySeedEpochStepAndGlobalRow() throws {
        let data = DataParallelTrainerTests.data
        let config = DataParallelTrainerTests.config { $0.model = .model3; $0.learningRates = [0.01]; $0.dropout = 0.5 }
        var seen: [[Float]] = []
        for n in [1, 3] {
            for (epochs, stopAtStep, lastEpoch, lastStep) in [(1, 3, 0, 2), (1, nil, 0, 9), (2, nil, 1, 9)] {
                var c = config
                c.epochs = epochs
                let ranks = try runRanks(n) { collective -> (masks: [[Float]], shard: Range<Int>) in
                    let trainer = try Trainer(config: c, split: data, collective: collective)
                    var polls = 0
                    trainer.stopRequested = { polls += 1; return polls == stopAtStep }
                    _ = try trainer.run()
                    return (trainer.network.blocks.map { Array($0.mask!.array[0..<(trainer.shard.count * $0.width)]) }, trainer.shard)
                }
                let key = RandomKey(seed: c.seed, .dropout).with(lastEpoch).with(lastStep)
                for (r, rank) in ranks.enumerated() {
                    for (l, got) in rank.masks.enumerated() {
                        let expected = mask(rows: rank.shard.count, width: 12 - 4 * l, firstRow: rank.shard.lowerBound, key: key.with(l), keep: 0.5)
                        XCTAssertEqual(got, expected, "\(n) ranks, epoch \(lastEpoch) step \(lastStep): rank \(r) layer \(l)")
                    }
                }
                if n == 1 { seen.append(ranks[0].masks[0]) }
            }
        }
        XCTAssertEqual(Set(seen).count, 3, "the three runs' last steps must have different masks, or the test proves nothing")
    }

    // MARK: - Normals and initialisation

    func testStandardNormalMoments() {
        let key = RandomKey(seed: 77, .initialization).with(0)
        let n = 100_000
        let z = (0..<n).map { standardNormal(key, $0) }
        let mean = z.reduce(0, +) / Double(n)
        let variance = z.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.015)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
        // Shape: P(|z| < 1) = 0.6827, P(|z| < 2) = 0.9545.
        XCTAssertEqual(Double(z.filter { abs($0) < 1 }.count) / Double(n), 0.6827, accuracy: 0.01)
        XCTAssertEqual(Double(z.filter { abs($0) < 2 }.count) / Double(n), 0.9545, accuracy: 0.005)
        XCTAssertTrue(z.allSatisfy { $0.isFinite })
        XCTAssertEqual(standardNormal(key, 12345), z[12345], "deterministic in (key, index)")
        XCTAssertLessThan(unitFloat(0xFF_FFFF), 1)
        XCTAssertEqual(unitFloat(0), 0)
    }

    func testInitializationIsHeNormal() {
        let arch = Architecture(inputWidth: 200, hidden: [100, 80], dropoutAfter: [true, false], classCount: 10)
        let layout = ParameterLayout(arch)
        let params = Buffer<Float>([Float](repeating: 7, count: layout.count))
        initializeParameters(params.all, layout: layout, seed: 12)
        for (l, slot) in layout.allDense.enumerated() {
            let w = (0..<(slot.fanIn * slot.fanOut)).map { Double(params.pointer[slot.weight + $0]) }
            let mean = w.reduce(0, +) / Double(w.count)
            let std = (w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count)).squareRoot()
            let expected = (2 / Double(slot.fanIn)).squareRoot()
            // Sampling error of the std is ~1/√(2N): 0.5% (20 000), 1.1% (8 000), 2.5% (800).
            let tolerance = w.count >= 5000 ? 0.04 : 0.1
            XCTAssertEqual(std / expected, 1, accuracy: tolerance, "layer \(l) std \(std) vs √(2/fan_in) = \(expected)")
            XCTAssertEqual(mean, 0, accuracy: 4 * expected / Double(w.count).squareRoot(), "layer \(l) mean")
            for j in 0..<slot.fanOut { XCTAssertEqual(params.pointer[slot.bias + j], 0, "layer \(l) bias") }
        }
        for slot in layout.norm {
            for j in 0..<slot.width {
                XCTAssertEqual(params.pointer[slot.scale + j], 1)
                XCTAssertEqual(params.pointer[slot.shift + j], 0)
            }
        }
        // Deterministic in the seed; another seed differs; layers are not copies of each other.
        let again = Buffer<Float>(count: layout.count)
        initializeParameters(again.all, layout: layout, seed: 12)
        XCTAssertEqual(again.array, params.array)
        let other = Buffer<Float>(count: layout.count)
        initializeParameters(other.all, layout: layout, seed: 13)
        XCTAssertNotEqual(other.array, params.array)
        let (d0, d1) = (layout.dense[0], layout.dense[1])
        XCTAssertNotEqual(Array(params.array[d0.weight..<(d0.weight + 100)]), Array(params.array[d1.weight..<(d1.weight + 100)]))
        // Running statistics start at mean 0, variance 1.
        let stats = RunningStatsLayout(arch)
        let running = Buffer<Float>([Float](repeating: 5, count: stats.count))
        initializeRunningStats(running.all, layout: stats, widths: arch.hidden)
        for (l, w) in arch.hidden.enumerated() {
            for j in 0..<w {
                XCTAssertEqual(running.pointer[stats.mean[l] + j], 0)
                XCTAssertEqual(running.pointer[stats.variance[l] + j], 1)
            }
        }
    }

    func testParameterLayoutIsContiguous() {
        let arch = ModelPreset.model1.architecture(inputWidth: 784, classCount: 10)
        let layout = ParameterLayout(arch)
        // 784·128 + 3·128 + 128·64 + 3·64 + 64·10 + 10
        XCTAssertEqual(layout.count, 784 * 128 + 3 * 128 + 128 * 64 + 3 * 64 + 64 * 10 + 10)
        XCTAssertEqual(layout.dense[0].weight, 0)
        XCTAssertEqual(layout.dense[0].bias, 784 * 128)
        XCTAssertEqual(layout.norm[0].scale, 784 * 128 + 128)
        XCTAssertEqual(layout.norm[0].shift, 784 * 128 + 256)
        XCTAssertEqual(layout.dense[1].weight, 784 * 128 + 384)
        XCTAssertEqual(layout.head.bias + 10, layout.count)
        XCTAssertEqual(arch.widthsDescription, "784-128-64-10")
        XCTAssertEqual(ModelPreset.model3.architecture(inputWidth: 784, classCount: 10).dropoutAfter, [true, true, true, true])
        XCTAssertEqual(ModelPreset.model2.architecture(inputWidth: 784, classCount: 10).dropoutAfter, [true, true, false])
    }

    // MARK: - Shards

    func testShardRangeCoversBatchContiguously() {
        for (batch, size) in [(128, 3), (5, 5), (128, 1), (128, 8), (10, 4), (7, 3), (100, 7), (1, 1), (1000, 13)] {
            var next = 0
            var sizes: [Int] = []
            for rank in 0..<size {
                let r = shardRange(batch: batch, rank: rank, size: size)
                XCTAssertEqual(r.lowerBound, next, "(\(batch), \(size)) rank \(rank) not contiguous")
                next = r.upperBound
                sizes.append(r.count)
            }
            XCTAssertEqual(next, batch, "(\(batch), \(size)) must end at the batch size")
            XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, "(\(batch), \(size)) sizes \(sizes)")
            XCTAssertGreaterThanOrEqual(sizes.min()!, 1)
        }
        XCTAssertEqual((0..<3).map { shardRange(batch: 128, rank: $0, size: 3) }, [0..<42, 42..<85, 85..<128])
        XCTAssertEqual((0..<5).map { shardRange(batch: 5, rank: $0, size: 5) }, [0..<1, 1..<2, 2..<3, 3..<4, 4..<5])
    }

    // MARK: - Train/validation split

    /// Images whose three pixels encode their index, so a split can be traced back.
    func indexedImages(_ count: Int) -> LabeledData {
        var pixels = [UInt8](repeating: 0, count: count * 3)
        for i in 0..<count {
            pixels[3 * i] = UInt8(i & 0xFF)
            pixels[3 * i + 1] = UInt8((i >> 8) & 0xFF)
            pixels[3 * i + 2] = UInt8((i >> 16) & 0xFF)
        }
        return LabeledData(pixels: pixels, labels: (0..<count).map { UInt8($0 % 10) }, rows: 1, cols: 3, classCount: 10)
    }

    func indices(_ images: LabeledData) -> [Int] {
        (0..<images.count).map { i in
            Int(images.pixels[3 * i]) | Int(images.pixels[3 * i + 1]) << 8 | Int(images.pixels[3 * i + 2]) << 16
        }
    }

    func testDataSplitSizesAndCoverage() {
        let all = indexedImages(60000)
        let split = DataSplit(all, valFraction: 0.2, seed: 12)
        XCTAssertEqual(split.train.count, 48000)
        XCTAssertEqual(split.validation.count, 12000)
        let (train, validation) = (indices(split.train), indices(split.validation))
        XCTAssertTrue(Set(train).isDisjoint(with: Set(validation)), "train and validation overlap")
        XCTAssertEqual(Set(train).union(validation).count, 60000)
        XCTAssertEqual(Set(train).count, 48000, "no duplicates")
        // Labels travel with their images.
        for (k, i) in train.prefix(100).enumerated() { XCTAssertEqual(Int(split.train.labels[k]), i % 10) }
        // Shuffled, deterministic in the seed, different for another seed.
        XCTAssertNotEqual(Array(train.prefix(100)), Array(0..<100))
        XCTAssertEqual(indices(DataSplit(all, valFraction: 0.2, seed: 12).validation), validation)
        XCTAssertNotEqual(indices(DataSplit(all, valFraction: 0.2, seed: 13).validation), validation)
    }

    func testDataSplitRoundsHalfToEven() {
        // train = round-half-even((1 − f) · m).
        for (m, f, train) in [(5, 0.5, 2), (7, 0.5, 4), (10, 0.25, 8), (6, 0.25, 4), (3, 0.5, 2), (100, 0.1, 90)] {
            let split = DataSplit(indexedImages(m), valFraction: f, seed: 1)
            XCTAssertEqual(split.train.count, train, "m = \(m), f = \(f)")
            XCTAssertEqual(split.validation.count, m - train, "m = \(m), f = \(f)")
        }
    }

    // MARK: - Settings validation

    /// `body` throws a SettingError naming `setting` (by its key, as Core names settings), in one line.
    func assertError(_ setting: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error naming \(setting)", file: file, line: line)
        } catch let error as SettingError {
            XCTAssertEqual(error.setting, setting, "\(error)", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "one line", file: file, line: line)
            XCTAssertFalse(error.description.contains("--"), "Core names settings, not flags: \(error)", file: file, line: line)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
    }

    func testParseHiddenWidths() throws {
        XCTAssertEqual(try parseHiddenWidths("512,128,64"), [512, 128, 64])
        XCTAssertEqual(try parseHiddenWidths(" 8 , 4"), [8, 4])
        XCTAssertEqual(try parseHiddenWidths("32"), [32])
        for bad in ["", "0", "12,,4", "a,3", "-1", "3,", "1.5"] {
            assertError("hidden") { _ = try parseHiddenWidths(bad) }
        }
    }

    func testParseLearningRates() throws {
        XCTAssertEqual(try parseLearningRates("0.005,0.001"), [0.005, 0.001])
        XCTAssertEqual(try parseLearningRates(" 1e-3 "), [0.001])
        for bad in ["", "0", "-0.1", "abc", "0.1,,0.2", "inf", "nan", "0.1,"] {
            assertError("learning_rates") { _ = try parseLearningRates(bad) }
        }
    }

    func testTrainingConfigValidation() throws {
        try TrainingConfig().validate()
        try TrainingConfig().validate(trainingSamples: 48000, ranks: 4)
        func config(_ change: (inout TrainingConfig) -> Void) -> TrainingConfig {
            var c = TrainingConfig()
            change(&c)
            return c
        }
        let cases: [(String, TrainingConfig)] = [
            ("epochs", config { $0.epochs = 0 }),
            ("batch_size", config { $0.batchSize = 0 }),
            ("learning_rates", config { $0.learningRates = [] }),
            ("learning_rates", config { $0.learningRates = [0.1, -1] }),
            ("learning_rates", config { $0.learningRates = [.nan] }),
            ("learning_rates", config { $0.learningRates = [.infinity] }),
            ("dropout", config { $0.dropout = 1 }),
            ("dropout", config { $0.dropout = -0.1 }),
            ("val_fraction", config { $0.valFraction = 0 }),
            ("val_fraction", config { $0.valFraction = 1 }),
            ("hidden", config { $0.hidden = [] }),
            ("hidden", config { $0.hidden = [3, 0] }),
        ]
        for (flag, c) in cases { assertError(flag) { try c.validate() } }
        // Boundaries that are valid.
        try config { $0.dropout = 0; $0.epochs = 1; $0.batchSize = 1; $0.hidden = [1] }.validate()
        // Against data and ranks.
        assertError("batch_size") { try config { $0.batchSize = 3 }.validate(trainingSamples: 100, ranks: 4) }
        assertError("batch_size") { try config { $0.batchSize = 101 }.validate(trainingSamples: 100, ranks: 1) }
        try config { $0.batchSize = 4 }.validate(trainingSamples: 4, ranks: 4)
        // The architecture follows the preset unless hidden overrides it.
        XCTAssertEqual(config { $0.model = .model1 }.architecture(inputWidth: 784, classCount: 10).hidden, [128, 64])
        XCTAssertEqual(config { $0.model = .model3; $0.hidden = [20, 10] }.architecture(inputWidth: 784, classCount: 10).dropoutAfter, [true, true])
    }
}
