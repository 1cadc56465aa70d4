// TrainingRecipeTests: the ingredients beyond the seed's recipe against hand-computed values —
// learning-rate schedules, AdamW's decoupled decay, label smoothing (and its gradient against
// finite differences), augmentation transforms and their independence of the rank — and the
// TensorBoard event encoding's checksum.
@testable import Formats
@testable import Kernels
@testable import Model
import TestSupport
@testable import Training
import XCTest

final class TrainingRecipeTests: XCTestCase {
    func testLearningRateSchedules() {
        var c = TrainingConfig()
        c.epochs = 10
        let steps = 100
        c.lrSchedule = .constant
        XCTAssertEqual(c.learningRate(base: 0.01, step: 537, stepsPerEpoch: steps), 0.01)
        c.lrSchedule = .cosine
        XCTAssertEqual(c.learningRate(base: 0.01, step: 0, stepsPerEpoch: steps), 0.01, accuracy: 1e-15)
        XCTAssertEqual(c.learningRate(base: 0.01, step: 500, stepsPerEpoch: steps), 0.005, accuracy: 1e-12)  // half way: cos(π/2) = 0
        XCTAssertEqual(c.learningRate(base: 0.01, step: 250, stepsPerEpoch: steps), 0.01 * 0.5 * (1 + cos(Double.pi / 4)), accuracy: 1e-15)
        XCTAssertEqual(c.learningRate(base: 0.01, step: 1000, stepsPerEpoch: steps), 0, accuracy: 1e-15)
        c.lrSchedule = .step
        XCTAssertEqual(c.learningRate(base: 0.01, step: 499, stepsPerEpoch: steps), 0.01)
        XCTAssertEqual(c.learningRate(base: 0.01, step: 500, stepsPerEpoch: steps), 0.001, accuracy: 1e-15)
        XCTAssertEqual(c.learningRate(base: 0.01, step: 750, stepsPerEpoch: steps), 0.0001, accuracy: 1e-15)
        // Linear warm-up over 2 epochs (200 steps), then cosine over the remaining 800.
        c.lrSchedule = .cosine
        c.warmupEpochs = 2
        XCTAssertEqual(c.learningRate(base: 0.01, step: 0, stepsPerEpoch: steps), 0.01 / 200, accuracy: 1e-15)
        XCTAssertEqual(c.learningRate(base: 0.01, step: 99, stepsPerEpoch: steps), 0.005, accuracy: 1e-15)
        XCTAssertEqual(c.learningRate(base: 0.01, step: 200, stepsPerEpoch: steps), 0.01, accuracy: 1e-15)
        XCTAssertEqual(c.learningRate(base: 0.01, step: 600, stepsPerEpoch: steps), 0.005, accuracy: 1e-12)
    }

    /// AdamW: p ← p·(1 − lr·λ) − lr·m̂/(√v̂+ε) for the decayed ranges; others get plain Adam.
    func testDecoupledWeightDecay() {
        let adam = AdamState(parameterCount: 4, variant: .adam)
        let params = Buffer<Float>([1, -2, 3, 4])
        let grads = Buffer<Float>([0.5, 0.5, -0.5, 0])
        let (lr, wd): (Float, Float) = (0.1, 0.01)
        adam.update(params: params.pointer, grads: grads.pointer, lr: lr, weightDecay: wd, decayed: [0..<2])
        // First bias-corrected step: m̂ = g, v̂ = g², update = lr·g/(|g|+ε) = ±lr (g ≠ 0).
        let step = { (g: Float) -> Float in g == 0 ? 0 : lr * g / (abs(g) + 1e-8) }
        XCTAssertEqual(params.pointer[0], 1 * (1 - lr * wd) - step(0.5), accuracy: 1e-6)
        XCTAssertEqual(params.pointer[1], -2 * (1 - lr * wd) - step(0.5), accuracy: 1e-6)
        XCTAssertEqual(params.pointer[2], 3 - step(-0.5), accuracy: 1e-6)
        XCTAssertEqual(params.pointer[3], 4, "not decayed, zero gradient: unchanged")
    }

    /// Label smoothing's loss by hand, and its gradient against finite differences.
    func testLabelSmoothingLossAndGradient() {
        let (classes, eps) = (4, Float(0.2))
        let logits = Buffer<Float>([0.3, -1.2, 2.0, 0.5])
        let labels = Buffer<Int32>([2])
        let d = Buffer<Float>(count: classes)
        let tally = softmaxCrossEntropy(logits: logits.pointer, labels: labels.pointer, rows: 1, classes: classes,
                                        gradScale: 1, dLogits: d.pointer, predictions: nil, smoothing: eps)
        let z = logits.array.map(Double.init)
        let lse = log(z.map { exp($0) }.reduce(0, +))
        let expected = Double(1 - eps) * (lse - z[2]) + Double(eps) * (lse - z.reduce(0, +) / Double(classes))
        XCTAssertEqual(tally.lossSum, expected, accuracy: 1e-6)
        for c in 0..<classes {
            let h = 1e-3
            func loss(_ delta: Double) -> Double {
                var zz = z
                zz[c] += delta
                let l = log(zz.map { exp($0) }.reduce(0, +))
                return Double(1 - eps) * (l - zz[2]) + Double(eps) * (l - zz.reduce(0, +) / Double(classes))
            }
            XCTAssertEqual(Double(d.pointer[c]), (loss(h) - loss(-h)) / (2 * h), accuracy: 1e-4, "class \(c)")
        }
    }

    /// A translation moves the content and fills with zeros; a flip mirrors the columns; the
    /// transform depends on the image's index only, not on where (which rank, which row) it lands.
    func testAugmentationTransforms() {
        let image: [UInt8] = [10, 20, 30, 40, 50, 60, 70, 80, 90]  // 3×3
        var a = Augmentation(seed: 1, epoch: 0, shift: 1, flip: true)
        var index = 0
        var seen = Set<String>()
        // Find images that got (dx, dy, flip) = (1, 0, false) and (0, 1, true), and check them by hand.
        var checked = 0
        while index < 2000 {
            let t = a.transform(of: index)
            seen.insert("\(t)")
            let out = Buffer<Float>(count: 9)
            image.withUnsafeBufferPointer { a.apply($0.baseAddress!, rows: 3, cols: 3, index: index, into: out.pointer) }
            let got = out.array.map { Int(($0 * 255).rounded()) }
            if t == (1, 0, false) {
                XCTAssertEqual(got, [0, 10, 20, 0, 40, 50, 0, 70, 80])
                checked += 1
            } else if t == (0, 1, true) {
                XCTAssertEqual(got, [0, 0, 0, 30, 20, 10, 60, 50, 40])
                checked += 1
            }
            index += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 2)
        XCTAssertEqual(seen.count, 18, "every shift in -1...1 × -1...1 with and without a flip should occur")
        XCTAssertEqual(a.transform(of: 123).dx, Augmentation(seed: 1, epoch: 0, shift: 1, flip: true).transform(of: 123).dx)
        a = Augmentation(seed: 1, epoch: 1, shift: 1, flip: true)
        XCTAssertNotEqual((0..<50).map { "\(a.transform(of: $0))" }, (0..<50).map { "\(Augmentation(seed: 1, epoch: 0, shift: 1, flip: true).transform(of: $0))" })
    }

    /// CRC-32C's check value, and a record's framing (length, masked CRCs).
    func testTensorBoardRecordFraming() {
        XCTAssertEqual(crc32c(Array("123456789".utf8)), 0xE306_9283)
        let event = scalarEvent(wallTime: 1.5, step: 7, values: [("a", 2)])
        let record = tfRecord(event)
        XCTAssertEqual(record.count, 8 + 4 + event.count + 4)
        XCTAssertEqual(Array(record[0..<8]), [UInt8(event.count), 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(Array(record[12..<(12 + event.count)]), event)
    }
}
