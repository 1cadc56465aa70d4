// AdamTests: both Adam variants against the textbook formulas evaluated in Double, step by step.
import Foundation
@testable import Kernels
@testable import Training
import XCTest


final class AdamTests: XCTestCase {

    /// The reference: Adam in Double, written from the formulas (not from the implementation).
    struct ReferenceAdam {
        let bias: Bool
        var m: [Double], v: [Double], t = 0
        let b1 = 0.9, b2 = 0.999, eps = 1e-8

        init(count: Int, biasCorrected: Bool) {
            bias = biasCorrected
            m = Array(repeating: 0, count: count)
            v = m
        }

        mutating func step(_ p: inout [Double], _ g: [Double], lr: Double) {
            t += 1
            for i in 0..<p.count {
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                if bias {
                    let mHat = m[i] / (1 - pow(b1, Double(t)))
                    let vHat = v[i] / (1 - pow(b2, Double(t)))
                    p[i] -= lr * mHat / (vHat.squareRoot() + eps)
                } else {
                    p[i] -= lr * m[i] / (v[i].squareRoot() + eps)
                }
            }
        }
    }

    /// One update from a gradient array; keeps both buffers alive across the call.
    static func apply(_ adam: AdamState, _ params: Buffer<Float>, _ grads: [Float], lr: Float) {
        withExtendedLifetime(params) {
            grads.withUnsafeBufferPointer { adam.update(params: params.pointer, grads: $0.baseAddress!, lr: lr) }
        }
    }

    /// Three parameters over three steps. Coordinate 2 has a zero gradient at step 1 (no move) and
    /// coordinate 0 at step 2 (moves on momentum alone); coordinate 1 has a tiny gradient where ε
    /// matters.
    static let start: [Float] = [0.5, -1.0, 2.0]
    static let gradients: [[Float]] = [
        [0.3, 1e-6, 0],
        [0, -2e-6, -1.5],
        [-0.2, 4e-6, 0.02],
    ]

    func run(_ variant: AdamVariant, lr: Float) {
        let adam = AdamState(parameterCount: 3, variant: variant)
        var reference = ReferenceAdam(count: 3, biasCorrected: variant == .adam)
        let params = Buffer(Self.start)
        var expected = Self.start.map(Double.init)
        for (t, g) in Self.gradients.enumerated() {
            let before = params.array
            Self.apply(adam, params, g, lr: lr)
            let expectedBefore = expected
            reference.step(&expected, g.map(Double.init), lr: Double(lr))
            XCTAssertEqual(adam.step, t + 1)
            // Zero gradient on the first step: m = v = 0, so parameter 2 must not move.
            if t == 0 { XCTAssertEqual(params.pointer[2], Self.start[2], "\(variant): no move on a zero first gradient") }
            for i in 0..<3 {
                let what = "\(variant) step \(t + 1) parameter \(i)"
                XCTAssertEqual(Double(params.pointer[i]), expected[i], accuracy: 1e-6 * abs(expected[i]), what)
                // The step itself, to 1e-4 of its size (Float parameters round at ~1e-7 absolute).
                let step = Double(params.pointer[i]) - Double(before[i])
                let expectedStep = expected[i] - expectedBefore[i]
                XCTAssertEqual(step, expectedStep, accuracy: 1e-4 * abs(expectedStep) + 1e-7, what + " (step size)")
                XCTAssertEqual(Double(adam.m.pointer[i]), reference.m[i], accuracy: 1e-6 * abs(reference.m[i]) + 1e-12, what + " m")
                // v is stored in Float; 5e-5 also admits forming 1 − β2 in Float (1 − Float(0.999) =
                // 0.00099998713, a 1.3e-5 relative offset that changes the update by < 1e-5 of its size).
                XCTAssertEqual(Double(adam.v.pointer[i]), reference.v[i], accuracy: 5e-5 * abs(reference.v[i]) + 1e-20, what + " v")
            }
        }
    }

    func testStandardAdamMatchesTextbook() {
        run(.adam, lr: 0.01)
        run(.adam, lr: 0.005)
    }

    func testSeedAdamMatchesTextbook() {
        run(.adamSeed, lr: 0.01)
        run(.adamSeed, lr: 0.005)
    }

    func testZeroGradientBehaviour() {
        for variant in AdamVariant.allCases {
            let adam = AdamState(parameterCount: 2, variant: variant)
            let params = Buffer<Float>([1, -3])
            // First step with g = 0 for parameter 0: no movement at all.
            Self.apply(adam, params, [0, 0.5], lr: 0.1)
            XCTAssertEqual(params.pointer[0], 1, "\(variant): zero gradient with zero moments must not move")
            XCTAssertNotEqual(params.pointer[1], -3)
            // Second step g = 0 for parameter 1: it keeps moving the same way on its momentum.
            let before = params.pointer[1]
            Self.apply(adam, params, [0, 0], lr: 0.1)
            XCTAssertLessThan(params.pointer[1], before, "\(variant): momentum carries the parameter on")
            XCTAssertEqual(params.pointer[0], 1)
        }
    }

    /// At t = 1 standard Adam moves every parameter with a nonzero gradient by ≈ lr (m̂/√v̂ = sign g),
    /// whatever the gradient's size; the seed's update moves by lr·0.1/√0.001 ≈ 3.162·lr.
    func testVariantsDifferOnTheFirstStep() {
        let lr: Float = 0.01
        let g: [Float] = [1e-3, 0.5, -100, 7]
        for variant in AdamVariant.allCases {
            let adam = AdamState(parameterCount: g.count, variant: variant)
            let params = Buffer<Float>(count: g.count)
            Self.apply(adam, params, g, lr: lr)
            for i in 0..<g.count {
                // |step| = lr·|g|/(|g| + ε) (standard) or lr·0.1|g|/(√0.001·|g| + ε) (seed).
                let a = Double(abs(g[i]))
                let expected = variant == .adam ? Double(lr) * a / (a + 1e-8) : Double(lr) * 0.1 * a / (0.001.squareRoot() * a + 1e-8)
                XCTAssertEqual(expected, variant == .adam ? 0.01 : 0.0316, accuracy: variant == .adam ? 1e-6 : 1e-4)
                XCTAssertEqual(Double(abs(params.pointer[i])), expected, accuracy: expected * 1e-4, "\(variant) g = \(g[i])")
                XCTAssertEqual(params.pointer[i].sign, g[i].sign == .minus ? .plus : .minus, "moves against the gradient")
            }
        }
    }

    func testResetClearsMomentsAndStep() {
        let adam = AdamState(parameterCount: 3, variant: .adam)
        let params = Buffer(Self.start)
        for g in Self.gradients { Self.apply(adam, params, g, lr: 0.01) }
        XCTAssertEqual(adam.step, 3)
        XCTAssertNotEqual(adam.m.array, [0, 0, 0])
        adam.reset()
        XCTAssertEqual(adam.step, 0)
        XCTAssertEqual(adam.m.array, [0, 0, 0])
        XCTAssertEqual(adam.v.array, [0, 0, 0])
        // After a reset the optimiser behaves exactly as a fresh one.
        let fresh = AdamState(parameterCount: 3, variant: .adam)
        let (p1, p2) = (Buffer(Self.start), Buffer(Self.start))
        for g in Self.gradients {
            Self.apply(adam, p1, g, lr: 0.01)
            Self.apply(fresh, p2, g, lr: 0.01)
        }
        XCTAssertEqual(p1.array, p2.array)
        XCTAssertEqual(adam.step, fresh.step)
    }

    func testVariantNamesAndConstants() {
        XCTAssertEqual(AdamVariant(rawValue: "adam"), .adam)
        XCTAssertEqual(AdamVariant(rawValue: "adam-seed"), .adamSeed)
        let adam = AdamState(parameterCount: 1, variant: .adamSeed)
        XCTAssertEqual(adam.beta1, 0.9)
        XCTAssertEqual(adam.beta2, 0.999)
        XCTAssertEqual(adam.epsilon, 1e-8)
    }
}
