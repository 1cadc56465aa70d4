// AccumulationTests: --accumulate K against an independent computation — the mean of the K
// minibatches' whole gradients, each computed on its own (BatchNorm over that minibatch, its own
// dropout masks), then one Adam step — and the setting's validation.
@testable import Collectives
@testable import CoreSupport
@testable import Kernels
@testable import Model
import TestSupport
@testable import Training
import XCTest

final class AccumulationTests: XCTestCase {
    /// 300 random 4×4 images in 10 classes, split as training runs do.
    func split() -> DataSplit {
        var rng = SplitMix64(7)
        let count = 300
        let pixels = (0..<(count * 16)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let labels = (0..<count).map { _ in UInt8.random(in: 0...9, using: &rng) }
        return DataSplit(LabeledData(pixels: pixels, labels: labels, rows: 4, cols: 4, classCount: 10), valFraction: 0.2, seed: 12)
    }

    func config(accumulate: Int) -> TrainingConfig {
        var c = TrainingConfig()
        c.hidden = [8, 6]
        c.batchSize = 20
        c.accumulate = accumulate
        c.learningRates = [0.01]
        c.dropout = 0.2
        c.epochs = 1
        return c
    }

    func testOneAccumulatedStepIsTheMeanOfItsMinibatches() throws {
        let data = split()
        let k = 3
        let trainer = try Trainer(config: config(accumulate: k), split: data, collective: SingleProcess())
        let reference = try Trainer(config: config(accumulate: 1), split: data, collective: SingleProcess())
        try trainer.startRun()
        try reference.startRun()
        XCTAssertEqual(trainer.stepsPerEpoch, data.train.count / 60)
        XCTAssertEqual(reference.stepsPerEpoch, data.train.count / 20)
        let count = trainer.network.layout.count
        XCTAssertEqual(Array(trainer.network.parameters.all), Array(reference.network.parameters.all))

        // The reference: each minibatch's whole gradient on its own, summed in Double in minibatch
        // order, times 1/k (what the trainer does with the reduced minibatch gradients).
        let order = permutation(data.train.count, key: RandomKey(seed: 12, .shuffle).with(0))
        let dropoutKey = RandomKey(seed: 12, .dropout).with(0)
        var mean = [Double](repeating: 0, count: count)
        var lossSum = 0.0, correct = 0
        for m in 0..<k {
            order.withUnsafeBufferPointer { o in
                reference.network.gather(data.train, indices: UnsafeBufferPointer(rebasing: o[(m * 20)..<((m + 1) * 20)]))
            }
            let ctx = StepContext(globalBatch: 20, firstRow: 0, rows: 20, dropoutKey: dropoutKey.with(m), keep: 0.8, batchNormMode: .sync)
            let tally = try reference.network.computeGradients(ctx, collective: SingleProcess())
            for i in 0..<count { mean[i] += Double(reference.network.gradients.pointer[i]) }
            lossSum += tally.lossSum
            correct += tally.correct
        }

        // The trainer's step: accumulated gradients, then the optimizer (its reduction is the
        // identity on one rank).
        let tally = try trainer.computeStepGradients(order: order, dropoutKey: dropoutKey, vote: false)
        XCTAssertEqual(tally.lossSum, lossSum, "the loss sums are exact")
        XCTAssertEqual(tally.correct, correct)
        // The step leaves the complete mean gradient (weights and per-feature) where Adam reads it.
        let g = trainer.network.gradients.pointer
        let expected = mean.map { Float($0 * (1 / Double(k))) }
        XCTAssertGreaterThan(expected.map(abs).max() ?? 0, 1e-3)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: g, count: count)), expected, "bit for bit")
        // Every minibatch updated the running statistics, in the same order.
        XCTAssertEqual(Array(trainer.network.runningStats.all), Array(reference.network.runningStats.all))

        // One Adam step from the mean gradient gives the trainer's parameters after trainStep.
        let stepped = try Trainer(config: config(accumulate: k), split: data, collective: SingleProcess())
        try stepped.startRun()
        XCTAssertTrue(try stepped.trainStep(order: order, dropoutKey: dropoutKey))
        XCTAssertEqual(stepped.position.stepInEpoch, 1)
        XCTAssertEqual(stepped.position.epochLossSum, lossSum / 60, accuracy: 1e-12)
        reference.network.reset(seed: 12)
        let after = reference.network.parameters.pointer
        expected.withUnsafeBufferPointer { AdamState(parameterCount: count, variant: .adam).update(params: after, grads: $0.baseAddress!, lr: 0.01) }
        // Adam's first step moves every parameter by about lr; a wrong mean moves some the other way.
        XCTAssertEqual(stepped.network.parameters.array, Array(UnsafeBufferPointer(start: after, count: count)), "bit for bit")
    }

    func testAccumulateIsValidated() throws {
        var c = config(accumulate: 0)
        XCTAssertThrowsError(try c.validateValues()) { XCTAssertEqual(($0 as? SettingError)?.setting, "accumulate", "\($0)") }
        c.accumulate = 13  // 13 × 20 = 260 samples per step, more than the 240 training samples
        XCTAssertNoThrow(try c.validateValues())
        XCTAssertThrowsError(try c.validate(trainingSamples: 240, ranks: 2)) { XCTAssertTrue("\($0)".contains("260 samples per step"), "\($0)") }
        c.accumulate = 12
        XCTAssertNoThrow(try c.validate(trainingSamples: 240, ranks: 2))
    }
}
