// LossAndMetricsTests: softmax cross-entropy (values, gradient, stability, argmax ties) and the
// confusion matrix, per-class scores and macro-F1 against hand-computed examples (sklearn's
// definitions), plus `evaluate` against a row-by-row computation.
@testable import Collectives
import Foundation
@testable import Kernels
@testable import Model
@testable import Training
import XCTest


final class LossAndMetricsTests: XCTestCase {

    // MARK: - Helpers

    struct Result {
        var tally: LossTally
        var gradient: [Float]
        var predictions: [Int32]
    }

    /// Runs softmaxCrossEntropy on row-major logits with gradient and predictions.
    static func crossEntropy(_ logits: [[Float]], labels: [Int32], gradScale: Float = 1) -> Result {
        let classes = logits[0].count
        let flat = logits.flatMap { $0 }
        var gradient = [Float](repeating: .nan, count: flat.count)
        var predictions = [Int32](repeating: -1, count: logits.count)
        let tally = flat.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                gradient.withUnsafeMutableBufferPointer { d in
                    predictions.withUnsafeMutableBufferPointer { p in
                        softmaxCrossEntropy(logits: z.baseAddress!, labels: y.baseAddress!, rows: logits.count, classes: classes,
                                            gradScale: gradScale, dLogits: d.baseAddress!, predictions: p.baseAddress!)
                    }
                }
            }
        }
        return Result(tally: tally, gradient: gradient, predictions: predictions)
    }

    // MARK: - Softmax cross-entropy

    func testHandExample() {
        // loss = log(e¹ + e² + e³) − 3 = 0.40760596...; softmax = [0.09003057, 0.24472847, 0.66524096].
        let r = Self.crossEntropy([[1, 2, 3]], labels: [2])
        XCTAssertEqual(r.tally.lossSum, 0.4076059644, accuracy: 1e-6)
        XCTAssertEqual(r.tally.lossSum, log(exp(1.0) + exp(2.0) + exp(3.0)) - 3, accuracy: 1e-6)
        let expected: [Float] = [0.09003057, 0.24472847, 0.66524096 - 1]
        for (g, e) in zip(r.gradient, expected) { XCTAssertEqual(g, e, accuracy: 1e-6) }
        XCTAssertEqual(r.predictions, [2])
        XCTAssertEqual(r.tally.correct, 1)
    }

    func testBatchSumsLossesAndScalesGradient() {
        // Row 0 as above with label 0: loss log(Σ) − 1; row 1 is uniform over 3 classes: log 3.
        let r = Self.crossEntropy([[1, 2, 3], [0.5, 0.5, 0.5]], labels: [0, 1], gradScale: 0.5)
        let row0 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 1
        XCTAssertEqual(r.tally.lossSum, row0 + log(3), accuracy: 1e-6)
        let expected: [Float] = [0.5 * (0.09003057 - 1), 0.5 * 0.24472847, 0.5 * 0.66524096,
                                 0.5 / 3, 0.5 * (1.0 / 3 - 1), 0.5 / 3]
        for (g, e) in zip(r.gradient, expected) { XCTAssertEqual(g, e, accuracy: 1e-6) }
        // Row 0 predicts 2 (label 0: wrong); row 1 ties everywhere → class 0 (label 1: wrong).
        XCTAssertEqual(r.predictions, [2, 0])
        XCTAssertEqual(r.tally.correct, 0)
    }

    func testStableForHugeLogits() {
        // log(e^1e4 + e^−1e4 + e^0) − (−1e4) = 2e4 exactly (the other terms vanish in Double).
        let r = Self.crossEntropy([[1e4, -1e4, 0], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4], [-1e4, 0, 1e4]], labels: [1, 0, 2, 2])
        let expected = 2e4 + log(3.0) + log(3.0) + 0
        XCTAssertTrue(r.tally.lossSum.isFinite)
        XCTAssertEqual(r.tally.lossSum, expected, accuracy: 1e-6)
        // Each row separately.
        XCTAssertEqual(Self.crossEntropy([[1e4, -1e4, 0]], labels: [1]).tally.lossSum, 2e4)
        XCTAssertEqual(Self.crossEntropy([[1e4, 1e4, 1e4]], labels: [0]).tally.lossSum, log(3.0), accuracy: 1e-7)
        XCTAssertEqual(Self.crossEntropy([[-1e4, 0, 1e4]], labels: [2]).tally.lossSum, 0, accuracy: 1e-12)
        for g in r.gradient { XCTAssertTrue(g.isFinite) }
        for i in 0..<4 {
            let s = (0..<3).reduce(Float(0)) { $0 + r.gradient[i * 3 + $1] }
            XCTAssertEqual(s, 0, accuracy: 1e-6, "gradient row \(i) must sum to 0")
        }
        for (g, e) in zip(r.gradient[0..<3], [Float(1), -1, 0]) { XCTAssertEqual(g, e, accuracy: 1e-6) }
        for (g, e) in zip(r.gradient[3..<6], [Float(1.0 / 3 - 1), Float(1.0 / 3), Float(1.0 / 3)]) { XCTAssertEqual(g, e, accuracy: 1e-6) }
        XCTAssertEqual(r.predictions, [0, 0, 0, 2])
        XCTAssertEqual(r.tally.correct, 2)
    }

    func testArgmaxTiesTakeTheFirstIndex() {
        let r = Self.crossEntropy([[2, 5, 5, 1], [0, 0, 0, 0], [-1, -3, -1, -2], [1, 2, 3, 9]], labels: [2, 0, 0, 3])
        XCTAssertEqual(r.predictions, [1, 0, 0, 3])
        // Row 0's label is the second of the tied maxima: not counted as correct.
        XCTAssertEqual(r.tally.correct, 3)
    }

    func testNilOutputsGiveTheSameLoss() {
        let logits: [Float] = [0.3, -1.2, 2.2, 0.1, 0.0, 0.7]
        let labels: [Int32] = [1, 2]
        let tally = logits.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                softmaxCrossEntropy(logits: z.baseAddress!, labels: y.baseAddress!, rows: 2, classes: 3,
                                    gradScale: 0, dLogits: nil, predictions: nil)
            }
        }
        let full = Self.crossEntropy([[0.3, -1.2, 2.2], [0.1, 0.0, 0.7]], labels: labels)
        XCTAssertEqual(tally, full.tally)
        let e0 = log(exp(0.3) + exp(-1.2) + exp(2.2)) + 1.2
        let e1 = log(exp(0.1) + exp(0.0) + exp(0.7)) - 0.7
        XCTAssertEqual(tally.lossSum, e0 + e1, accuracy: 1e-6)
    }

    // MARK: - Confusion matrix and F1

    func testConfusionMatrixCountsTruthByPrediction() {
        let m = ConfusionMatrix(truth: [0, 0, 1, 2, 2, 2], predicted: [0, 1, 1, 2, 0, 2], classes: 3)
        XCTAssertEqual(m.counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
        XCTAssertEqual(m.total, 6)
        XCTAssertEqual(m.correct, 4)
        XCTAssertEqual(m.accuracy, 4.0 / 6, accuracy: 1e-15)
    }

    /// Class 3 occurs in the truth but is never predicted (F1 0, counted in the mean); class 4 occurs
    /// nowhere (excluded from the mean, as sklearn with labels=None).
    func testMacroF1HandExample() {
        let truth = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
        let predicted = [0, 0, 1, 2, 1, 1, 0, 2, 2, 0, 1]
        let m = ConfusionMatrix(truth: truth, predicted: predicted, classes: 5)
        let s = m.perClass()
        // class: (tp, predicted, support) → precision, recall, F1 = 2tp / (support + predicted)
        // 0: (2, 4, 4) → 1/2, 1/2, 1/2
        // 1: (2, 4, 3) → 1/2, 2/3, 4/7
        // 2: (2, 3, 2) → 2/3, 1, 4/5
        // 3: (0, 0, 2) → 0, 0, 0
        // 4: (0, 0, 0) → 0, 0, 0 (absent)
        let expected: [(Double, Double, Double, Int, Int)] = [
            (0.5, 0.5, 0.5, 4, 4), (0.5, 2.0 / 3, 4.0 / 7, 3, 4), (2.0 / 3, 1, 0.8, 2, 3), (0, 0, 0, 2, 0), (0, 0, 0, 0, 0),
        ]
        for (c, (p, r, f, support, pred)) in expected.enumerated() {
            XCTAssertEqual(s[c].precision, p, accuracy: 1e-12, "class \(c) precision")
            XCTAssertEqual(s[c].recall, r, accuracy: 1e-12, "class \(c) recall")
            XCTAssertEqual(s[c].f1, f, accuracy: 1e-12, "class \(c) F1")
            XCTAssertEqual(s[c].support, support, "class \(c) support")
            XCTAssertEqual(s[c].predicted, pred, "class \(c) predicted")
        }
        // sklearn f1_score(truth, predicted, average='macro') = (1/2 + 4/7 + 4/5 + 0) / 4 = 0.4678571...
        XCTAssertEqual(m.macroF1, (0.5 + 4.0 / 7 + 0.8 + 0) / 4, accuracy: 1e-12)
        XCTAssertEqual(m.macroF1, 0.46785714285714286, accuracy: 1e-12)
        XCTAssertEqual(m.accuracy, 6.0 / 11, accuracy: 1e-12)
    }

    /// A class that is predicted but never true counts (F1 0), as in sklearn.
    func testMacroF1CountsPredictedOnlyClass() {
        let m = ConfusionMatrix(truth: [0, 0, 1], predicted: [0, 2, 1], classes: 4)
        // 0: tp 1, predicted 1, support 2 → F1 2/3; 1: F1 1; 2: tp 0, predicted 1, support 0 → 0; 3 absent.
        XCTAssertEqual(m.perClass()[2].f1, 0)
        XCTAssertEqual(m.perClass()[2].precision, 0)
        XCTAssertEqual(m.perClass()[0].f1, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(m.macroF1, (2.0 / 3 + 1 + 0) / 3, accuracy: 1e-12)
    }

    func testPerfectPredictionAndEdgeCases() {
        let truth = [0, 1, 2, 2, 1, 0, 2]
        let perfect = ConfusionMatrix(truth: truth, predicted: truth, classes: 4)
        XCTAssertEqual(perfect.macroF1, 1)
        XCTAssertEqual(perfect.accuracy, 1)
        for c in 0..<3 {
            XCTAssertEqual(perfect.perClass()[c].f1, 1)
            XCTAssertEqual(perfect.perClass()[c].precision, 1)
            XCTAssertEqual(perfect.perClass()[c].recall, 1)
        }
        // Everything wrong: every present class has F1 0.
        let wrong = ConfusionMatrix(truth: [0, 1, 0], predicted: [1, 0, 1], classes: 2)
        XCTAssertEqual(wrong.macroF1, 0)
        XCTAssertEqual(wrong.accuracy, 0)
        // Empty matrix.
        let empty = ConfusionMatrix(classes: 3)
        XCTAssertEqual(empty.macroF1, 0)
        XCTAssertEqual(empty.accuracy, 0)
        XCTAssertEqual(empty.total, 0)
        // Evaluation passes them through.
        let e = Evaluation(loss: 0.25, confusion: ConfusionMatrix(truth: [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3],
                                                                  predicted: [0, 0, 1, 2, 1, 1, 0, 2, 2, 0, 1], classes: 5))
        XCTAssertEqual(e.macroF1, 0.46785714285714286, accuracy: 1e-12)
        XCTAssertEqual(e.accuracy, 6.0 / 11, accuracy: 1e-12)
    }

    // MARK: - evaluate

    /// `evaluate` in chunks of the network's capacity (3, 3, 1 rows) equals a row-by-row computation.
    func testEvaluateMatchesRowByRow() throws {
        let arch = Architecture(inputWidth: 4, hidden: [5], dropoutAfter: [true], classCount: 3)
        let net = Network(architecture: arch, capacity: 3)
        net.reset(seed: 8)
        // Non-trivial running statistics.
        for j in 0..<5 {
            net.runningStats.pointer[net.statsLayout.mean[0] + j] = 0.1 * Float(j)
            net.runningStats.pointer[net.statsLayout.variance[0] + j] = 0.5 + 0.2 * Float(j)
        }
        let count = 7
        let pixels = (0..<(count * 4)).map { UInt8(($0 * 37 + 11) % 256) }
        let labels: [UInt8] = [0, 1, 2, 0, 1, 2, 1]
        let images = LabeledData(pixels: pixels, labels: labels, rows: 2, cols: 2, classCount: 10)
        let evaluation = try evaluate(net, on: images, collective: SingleProcess())

        var lossSum = 0.0
        var confusion = ConfusionMatrix(classes: 3)
        for i in 0..<count {
            for j in 0..<4 { net.input.pointer[j] = Float(pixels[i * 4 + j]) / 255 }
            net.labels.pointer[0] = Int32(labels[i])
            net.forwardInference(rows: 1)
            let logits = (0..<3).map { Double(net.logits.pointer[$0]) }
            let lse = log(logits.map { exp($0) }.reduce(0, +))
            lossSum += lse - logits[Int(labels[i])]
            let prediction = logits.firstIndex(of: logits.max()!)!
            confusion.counts[Int(labels[i])][prediction] += 1
        }
        XCTAssertEqual(evaluation.loss, lossSum / Double(count), accuracy: 1e-5)
        XCTAssertEqual(evaluation.confusion, confusion)
        XCTAssertEqual(evaluation.confusion.total, count)
    }
}
