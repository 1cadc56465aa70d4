// ExactSumTests: the grids that make a step's sums exact (Kernels/ExactSum.swift) — a grid's scale
// and limit against hand-computed powers of two, the vectorised `sumGrids` against `sumGrid` on
// every kind of bound, `boundFloat` against its definition, sums on a grid the same in any order and
// any split, and the operand rounding of the weight-gradient products by hand.
//
// Not here: the BatchNorm kernels' exact sums (ParallelTests), whole runs on any rank count
// (RankInvarianceTests), the products from the rounded operands (MatrixProductTests).
@testable import Kernels
import TestSupport
import XCTest

final class ExactSumTests: XCTestCase {
    func testGridsByHand() {
        // bound 1 < 2^1: limit 2^(1 + 8) = 512; 128 rows: grid 2^(9 + 7 − 52) = 2^-36.
        XCTAssertEqual(sumGrid(bound: 1, rows: 128).limit, 512)
        XCTAssertEqual(sumGrid(bound: 1, rows: 128).scale, 0x1p36)
        // bound 3 < 2^2, 1000 rows (⌈log₂⌉ = 10), headroom 16: limit 2^18, grid 2^(18 + 10 − 52).
        XCTAssertEqual(sumGrid(bound: 3, rows: 1000, headroom: 16).limit, 0x1p18)
        XCTAssertEqual(sumGrid(bound: 3, rows: 1000, headroom: 16).scale, 0x1p24)
        // No history, and a diverged one.
        XCTAssertEqual(sumGrid(bound: 0, rows: 128).limit, 0)
        XCTAssertEqual(sumGrid(bound: .infinity, rows: 128).limit, .infinity)
        XCTAssertEqual(sumGrid(bound: .nan, rows: 128).scale, 1)
        XCTAssertEqual([ceilLog2(1), ceilLog2(2), ceilLog2(3), ceilLog2(128), ceilLog2(129)], [0, 1, 2, 7, 8])
        XCTAssertEqual([productBits(rows: 128), productBits(rows: 256), productBits(rows: 1024), productBits(rows: 4096)], [8, 8, 7, 6])
    }

    /// The vectorised grids are `sumGrid`'s for every kind of bound: zeros of both signs, negative,
    /// non-finite, every Float exponent (the bounds a step makes come from Floats), their squares,
    /// and Doubles whose grids leave the normal range (the fallback).
    func testVectorisedGridsAreSumGrids() {
        var bounds: [Double] = [0, -0.0, -1, .infinity, -.infinity, .nan, 1, 0.75, 3]
        for e in -149...127 {
            let f = Double(Float(sign: .plus, exponent: e, significand: 1.5))
            bounds += [f, f * f, f.nextUp]
        }
        var rng = SplitMix64(31)
        bounds += (0..<200).map { _ in Double(rng.uniform(0, 1)) * 0x1p20 }
        let extremes: [Double] = [.leastNonzeroMagnitude, .leastNormalMagnitude, 0x1p-1000, 0x1p1000, .greatestFiniteMagnitude]
        for (set, name) in [(bounds, "a step's bounds"), (bounds + extremes, "with bounds outside the fast path")] {
            for rows in [1, 2, 64, 128, 1000] {
                for headroom in [sumHeadroomBits, 2 * sumHeadroomBits] {
                    let (scale, limit) = (Buffer<Double>(count: set.count), Buffer<Double>(count: set.count))
                    let b = Buffer(set)
                    sumGrids(bounds: b.pointer, count: set.count, rows: rows, headroom: headroom, scale: scale.pointer, limit: limit.pointer)
                    for (j, bound) in set.enumerated() {
                        let want = sumGrid(bound: bound, rows: rows, headroom: headroom)
                        XCTAssertEqual(scale.pointer[j].bitPattern, want.scale.bitPattern, "\(name): scale of \(bound), \(rows) rows, headroom \(headroom)")
                        XCTAssertEqual(limit.pointer[j].bitPattern, want.limit.bitPattern, "\(name): limit of \(bound), \(rows) rows, headroom \(headroom)")
                    }
                }
            }
        }
    }

    /// A bound is its value rounded toward zero to a Float: the same binary exponent.
    func testBoundFloatRoundsTowardZero() {
        var rng = SplitMix64(32)
        let values: [Double] = [0, 1, 0.1, 1e-40, 1e-46, 3.4028235677973366e38, 1e39, .infinity]
            + (0..<500).map { _ in Double(rng.uniform(0, 1)) * 1e-3 + Double(rng.uniform(0, 1)) * 1e-12 }
        for v in values {
            let f = Float(v)
            let want = Double(f) > v ? f.nextDown : f
            XCTAssertEqual(boundFloat(v).bitPattern, want.bitPattern, "\(v)")
            XCTAssertLessThanOrEqual(Double(boundFloat(v)), v)
        }
        XCTAssertTrue(boundFloat(.nan).isNaN)
    }

    /// Terms rounded to a grid add to the same Double in any order and any split into partial sums:
    /// the property every rank count relies on. Without the grid they do not (not vacuous).
    func testGridSumsDoNotDependOnOrderOrSplit() {
        var rng = SplitMix64(33)
        let rows = 128
        // Full 53-bit terms of mixed signs and scales (Doubles of Floats would add exactly anyway).
        let terms = (0..<rows).map { i in
            Double(rng.next() >> 11) * 0x1p-53 * Double(sign: i % 3 == 0 ? .minus : .plus, exponent: Int(rng.next() % 12) - 6, significand: 1)
        }
        let grid = sumGrid(bound: terms.map(abs).max()!, rows: rows)
        func sum(_ t: [Double]) -> Double { t.reduce(0) { $0 + gridSteps($1, grid.scale) } }
        let whole = sum(terms)
        var orders = 0
        for _ in 0..<50 {
            let shuffled = terms.shuffled(using: &rng)
            let cut = Int(rng.next() % UInt64(rows))
            XCTAssertEqual((sum(Array(shuffled[..<cut])) + sum(Array(shuffled[cut...]))).bitPattern, whole.bitPattern)
            if shuffled.reduce(0, +).bitPattern != terms.reduce(0, +).bitPattern { orders += 1 }
        }
        XCTAssertGreaterThan(orders, 0, "plain sums never depended on the order: the check above proves nothing")
    }

    /// Operand rounding by hand: 8 bits below the column's maximum, ties to even; a column below
    /// 2^-56 becomes zeros; with a bf16 target the Floats stay and the copy holds the rounded values.
    func testOperandRoundingByHand() {
        // Column 0: maximum 1.5 < 2^1, so multiples of 2^-7. Column 1: maximum 2^-57 (zeros).
        let values: [Float] = [1.5, 0x1p-57, 0.0078125 * 2.5, 0x1p-60, -0.0078125 * 3.5, 0]
        let maxima = Buffer<Double>([1.5, 0x1p-57])
        let (m, scratch) = (Buffer(values), Buffer<Float>(count: 4))
        let copy = Buffer<UInt16>(count: values.count)
        roundColumns(m.pointer, rows: 3, width: 2, maxima: maxima.pointer, bits: 8, scratch: scratch.pointer, bf16: copy.pointer)
        XCTAssertEqual(m.array, values, "with a bf16 target the Floats are left as they were")
        roundColumns(m.pointer, rows: 3, width: 2, maxima: maxima.pointer, bits: 8, scratch: scratch.pointer)
        // 2.5 and −3.5 steps of 2^-7 round to even: 2 and −4 steps.
        XCTAssertEqual(m.array, [1.5, 0, 0.0078125 * 2, 0, -0.0078125 * 4, 0])
        XCTAssertEqual((0..<values.count).map { floatFromBF16(copy.pointer[$0]) }, m.array)
    }
}
