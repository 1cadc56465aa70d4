// ParallelTests: the passes between the products split across the compute threads (Parallel.swift)
// — the parts cover a loop exactly once in whole grains, several threads really run them, and every
// kernel so split gives the bits of one thread, including the plain Double column sums whose value
// depends on the order of their rows and the exact sums split by rows into per-thread blocks, at
// Model 2's sizes and at odd ones.
//
// Not here: whole training runs on several threads (RankInvarianceTests), the products' own thread
// invariance (MatrixProductTests).
import Foundation
@testable import Kernels
import TestSupport
@testable import Training
import XCTest

final class ParallelTests: XCTestCase {
    var savedThreads = 1
    override func setUp() {
        super.setUp()
        savedThreads = computeThreads()
    }
    override func tearDown() {
        setComputeThreads(savedThreads)
        super.tearDown()
    }

    func testPartsCoverTheLoopOnceInWholeGrains() {
        var cases = 0
        for count in [0, 1, 15, 16, 17, 100, 512, 513, 784, 10_000] {
            for grain in [1, 4, 16, 32] {
                for threads in 1...5 {
                    var covered = [Int](repeating: 0, count: count)
                    for t in 0..<threads {
                        let part = parallelPart(count, grain: grain, thread: t, threads: threads)
                        if !part.isEmpty && part.upperBound < count { XCTAssertEqual(part.count % grain, 0, "\(count) \(grain) \(threads)") }
                        XCTAssertEqual(part.lowerBound % grain == 0 || part.isEmpty, true)
                        for i in part { covered[i] += 1 }
                    }
                    XCTAssertEqual(covered, [Int](repeating: 1, count: count), "count \(count), grain \(grain), \(threads) threads")
                    cases += 1
                }
            }
        }
        XCTAssertEqual(cases, 200)
    }

    /// With 2 threads a large pass runs in 2 parts on 2 threads; with 1, or below the threshold, in
    /// one part on the caller.
    func testPassesRunOnTheTeamOnlyWhenWorthIt() {
        func parts(threads: Int, work: Int) -> [(Range<Int>, pthread_t)] {
            setComputeThreads(threads)
            let lock = NSLock()
            var seen: [(Range<Int>, pthread_t)] = []
            parallelFor(1000, work: work) { part in
                lock.lock()
                seen.append((part, pthread_self()))
                lock.unlock()
            }
            return seen.sorted { $0.0.lowerBound < $1.0.lowerBound }
        }
        let split = parts(threads: 2, work: 1_000_000)
        XCTAssertEqual(split.map(\.0), [0..<512, 512..<1000])
        XCTAssertEqual(pthread_equal(split[0].1, split[1].1), 0, "the two parts ran on one thread")
        XCTAssertEqual(parts(threads: 1, work: 1_000_000).map(\.0), [0..<1000])
        XCTAssertEqual(parts(threads: 2, work: 2 * parallelWorkPerThread - 1).map(\.0), [0..<1000])
        let own = parts(threads: 2, work: 10)
        XCTAssertEqual(pthread_equal(own[0].1, pthread_self()), 1, "a small pass left the caller's thread")
        // A pass earns a thread per parallelWorkPerThread of work, up to the compute threads.
        XCTAssertEqual(parts(threads: 4, work: 3 * parallelWorkPerThread).map(\.0), [0..<336, 336..<672, 672..<1000])
        XCTAssertEqual(parts(threads: 4, work: 100 * parallelWorkPerThread).count, 4)
    }

    /// Every split kernel's outputs with `threads` compute threads.
    func kernelOutputs(threads: Int, rows: Int, width: Int) -> [[UInt64]] {
        setComputeThreads(threads)
        var rng = SplitMix64(UInt64(rows * 1000 + width))
        let n = rows * width
        let a = Buffer(rng.normals(n).map { max($0, 0) })  // a ReLU output
        let (xhat, dyValues) = (Buffer(rng.normals(n)), rng.normals(n, scale: 1e-3))
        let scale = Buffer(rng.normals(width, offset: 1)), invStd = Buffer(rng.normals(width, scale: 0.1, offset: 1))
        var out: [[UInt64]] = []
        func record(_ b: Buffer<Float>) { out.append(b.array.map { UInt64($0.bitPattern) }) }
        func record(_ b: Buffer<Double>) { out.append(b.array.map(\.bitPattern)) }

        // Plain Double sums (their order matters) and grid sums with maxima, with active counts.
        let sums = Buffer<Double>(count: 3 * width)
        batchNormSums(a.pointer, rows: rows, width: width, into: sums.pointer, activeCounts: sums.pointer + 2 * width)
        record(sums)
        // Exact sums split by rows into per-thread blocks (partials; enough room for 3 threads, and
        // room for only 2), or by columns without.
        let gridScale = Buffer([Double](repeating: 0x1p40, count: 2 * width)), maxima = Buffer<Double>(count: 2 * width)
        let partials = Buffer<Double>(count: 3 * 4 * width)
        for room in [0, 2 * 4 * width, 3 * 4 * width] {
            func grids() -> SumGrids {
                SumGrids(scale: gridScale.pointer, maxima: maxima.pointer, partials: room > 0 ? partials.pointer : nil, partialCapacity: room)
            }
            maxima.zero()
            batchNormSums(a.pointer, rows: rows, width: width, into: sums.pointer, activeCounts: sums.pointer + 2 * width, grids: grids())
            record(sums)
            record(maxima)
            let (dy, gradSums) = (Buffer(dyValues), Buffer<Double>(count: 2 * width))
            maxima.zero()
            batchNormGradientSums(dy.pointer, xhat: a.pointer, rows: rows, width: width, into: gradSums.pointer, mask: a.pointer, grids: grids())
            record(gradSums)
            record(maxima)
            record(dy)
            let (bias, coefficients) = (Buffer<Double>(count: width), Buffer<Float>(count: 3 * width))
            maxima.zero()
            batchNormBackwardInput(dy.pointer, xhat: a.pointer, rows: rows, width: width, scale: scale.pointer, invStd: invStd.pointer,
                                   sums: gradSums.pointer, count: rows, coefficients: coefficients.pointer, reluOutput: a.pointer,
                                   biasGradient: bias.pointer, biasGrids: grids())
            record(dy)
            record(bias)
            record(maxima)
        }

        let mask = Buffer<Float>(count: n)
        dropoutMask(mask.pointer, rows: rows, width: width, firstRow: 7, key: RandomKey(seed: 3, .dropout), keep: 0.8)
        record(mask)
        let y = Buffer<Float>(count: n)
        batchNormNormalize(a.pointer, rows: rows, width: width, mean: scale.pointer, invStd: invStd.pointer, scale: scale.pointer,
                           shift: invStd.pointer, xhat: xhat.pointer, y: y.pointer, mask: mask.pointer)
        record(y)
        record(xhat)

        let dy = Buffer(dyValues), gradSums = Buffer<Double>(count: 2 * width)
        batchNormGradientSums(dy.pointer, xhat: xhat.pointer, rows: rows, width: width, into: gradSums.pointer, mask: mask.pointer)
        record(gradSums)
        record(dy)
        let bias = Buffer<Double>(count: width), coefficients = Buffer<Float>(count: 3 * width)
        batchNormBackwardInput(dy.pointer, xhat: xhat.pointer, rows: rows, width: width, scale: scale.pointer, invStd: invStd.pointer,
                               sums: gradSums.pointer, count: rows, coefficients: coefficients.pointer, reluOutput: a.pointer,
                               biasGradient: bias.pointer)
        record(dy)
        record(bias)

        let columns = Buffer<Double>(count: width)
        columnSums(dy.pointer, rows: rows, width: width, into: columns.pointer)
        record(columns)
        let columnMax = Buffer<Double>(count: width), scratch = Buffer<Float>(count: 2 * width)
        columnMaxima(dy.pointer, rows: rows, width: width, into: columnMax.pointer, scratch: scratch.pointer)
        record(columnMax)
        // Rounded into bfloat16 copies (what a bf16 weight-gradient product reads): the source stays.
        let before = dy.array
        let source = Buffer(before), copies = Buffer<UInt16>(count: n)
        roundColumns(source.pointer, rows: rows, width: width, maxima: columnMax.pointer, bits: 7, scratch: scratch.pointer, bf16: copies.pointer)
        out.append(copies.array.map(UInt64.init))
        roundColumns(dy.pointer, rows: rows, width: width, maxima: columnMax.pointer, bits: 7, scratch: scratch.pointer)
        record(dy)
        XCTAssertEqual(source.array, before, "rounding into bf16 copies leaves the Floats")
        XCTAssertEqual(copies.array.map(floatFromBF16), dy.array, "the bf16 copies hold the rounded Floats exactly")
        let bf16 = Buffer<UInt16>(count: n)
        convertToBF16(y.pointer, count: n, into: bf16.pointer)
        out.append(bf16.array.map(UInt64.init))

        let adam = AdamState(parameterCount: n, variant: .adam)
        let params = Buffer(rng.normals(n))
        for _ in 0..<3 { adam.update(params: params.pointer, grads: y.pointer, lr: 0.01) }
        record(params)
        record(adam.v)
        return out
    }

    func testEverySplitKernelGivesTheBitsOfOneThread() {
        for (rows, width) in [(64, 512), (32, 128), (29, 784), (7, 33)] {
            let threshold = parallelWorkPerThread
            parallelWorkPerThread = 0
            defer { parallelWorkPerThread = threshold }
            let one = kernelOutputs(threads: 1, rows: rows, width: width)
            for threads in [2, 3] {
                let many = kernelOutputs(threads: threads, rows: rows, width: width)
                XCTAssertEqual(many.count, one.count)
                for (k, (a, b)) in zip(one, many).enumerated() where a != b {
                    let first = a.indices.first { $0 >= b.count || a[$0] != b[$0] }.map(String.init) ?? "length"
                    XCTFail("\(rows)×\(width), \(threads) threads: output \(k) differs from one thread's (first at element \(first))")
                }
            }
        }
    }

    /// The split column sum is the sum it was: against a plain loop over the rows in order.
    func testSplitColumnSumsAreTheRowOrderSums() {
        setComputeThreads(2)
        let threshold = parallelWorkPerThread
        parallelWorkPerThread = 0
        defer { parallelWorkPerThread = threshold }
        var rng = SplitMix64(5)
        let (rows, width) = (50, 300)
        let m = Buffer(rng.normals(rows * width))
        let out = Buffer<Double>(count: width)
        columnSums(m.pointer, rows: rows, width: width, into: out.pointer)
        for j in 0..<width {
            var s = 0.0
            for i in 0..<rows { s += Double(m.pointer[i * width + j]) }
            XCTAssertEqual(out.pointer[j].bitPattern, s.bitPattern, "column \(j)")
        }
    }

    /// The exact BatchNorm sums (four rows at a time, then the rest one by one) are the sums of
    /// their terms' grid steps taken row by row, and the maxima, counts and gradients are each
    /// element's own: against plain loops, for row counts on both sides of a multiple of four.
    func testExactBatchNormSumsAreTheirTermsRowByRow() {
        setComputeThreads(1)
        let width = 33
        for rows in [1, 3, 4, 5, 9, 14] {
            var rng = SplitMix64(UInt64(40 + rows))
            let n = rows * width
            let a = Buffer(rng.normals(n).map { max($0, 0) }), xhat = Buffer(rng.normals(n))
            let mask = Buffer((0..<n).map { _ in Float(rng.next() % 2) * 2 })
            let dyValues = rng.normals(n, scale: 1e-3)
            let (k, c0, c1) = (rng.normals(width, offset: 1), rng.normals(width, scale: 1e-3), rng.normals(width, scale: 1e-3))
            let t = Buffer([Double](repeating: 0x1p40, count: 2 * width))
            func steps(_ v: Double, _ j: Int) -> Double { (v * t.pointer[j]).rounded(.toNearestOrEven) }

            let (sums, maxima) = (Buffer<Double>(count: 3 * width), Buffer<Double>(count: width))
            batchNormSums(a.pointer, rows: rows, width: width, into: sums.pointer, activeCounts: sums.pointer + 2 * width,
                          grids: SumGrids(scale: t.pointer, maxima: maxima.pointer))
            let dy = Buffer(dyValues), gradSums = Buffer<Double>(count: 2 * width), gradMaxima = Buffer<Double>(count: 2 * width)
            batchNormGradientSums(dy.pointer, xhat: xhat.pointer, rows: rows, width: width, into: gradSums.pointer, mask: mask.pointer,
                                  grids: SumGrids(scale: t.pointer, maxima: gradMaxima.pointer))
            let masked = dy.array
            // The coefficients as batchNormBackwardInput derives them: γ·invStd = k (invStd 1),
            // and sums chosen so that c0 and c1 come out as drawn.
            let zeroSums = Buffer<Double>((0..<width).map { Double(c0[$0]) / Double(k[$0]) } + (0..<width).map { Double(c1[$0]) / Double(k[$0]) })
            let (bias, biasMaxima, coefficients) = (Buffer<Double>(count: width), Buffer<Double>(count: width), Buffer<Float>(count: 3 * width))
            let (gamma, invStd) = (Buffer(k), Buffer([Float](repeating: 1, count: width)))
            batchNormBackwardInput(dy.pointer, xhat: xhat.pointer, rows: rows, width: width, scale: gamma.pointer, invStd: invStd.pointer,
                                   sums: zeroSums.pointer, count: 1, coefficients: coefficients.pointer, reluOutput: a.pointer,
                                   biasGradient: bias.pointer, biasGrids: SumGrids(scale: t.pointer, maxima: biasMaxima.pointer))
            let (ck, cc0, cc1) = (coefficients.pointer, coefficients.pointer + width, coefficients.pointer + 2 * width)
            for j in 0..<width {
                var (s1, s2, count, top) = (0.0, 0.0, 0.0, 0.0)
                var (d1, d2, top1, top2, b, topB) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
                for i in 0..<rows {
                    let e = i * width + j
                    let v = Double(a.pointer[e])
                    (s1, s2, top) = (s1 + steps(v, j), s2 + steps(v * v, width + j), max(top, abs(v)))
                    count += a.pointer[e] > 0 ? 1 : 0
                    let d = dyValues[e] * mask.pointer[e]
                    XCTAssertEqual(masked[e], d, "rows \(rows): the mask is applied in place")
                    let dx = Double(d * xhat.pointer[e])
                    (d1, d2) = (d1 + steps(Double(d), j), d2 + steps(dx, width + j))
                    (top1, top2) = (max(top1, abs(Double(d))), max(top2, abs(dx)))
                    let g = a.pointer[e] > 0 ? ck[j] * d - cc0[j] - cc1[j] * xhat.pointer[e] : 0
                    XCTAssertEqual(dy.pointer[e], g, "rows \(rows): the input gradient at (\(i), \(j))")
                    (b, topB) = (b + steps(Double(g), j), max(topB, Double(abs(g))))
                }
                XCTAssertEqual([sums.pointer[j], sums.pointer[width + j], sums.pointer[2 * width + j], maxima.pointer[j]], [s1, s2, count, top],
                               "rows \(rows), column \(j): Σa, Σa², active count, maximum")
                XCTAssertEqual([gradSums.pointer[j], gradSums.pointer[width + j], gradMaxima.pointer[j], gradMaxima.pointer[width + j]],
                               [d1, d2, top1, top2], "rows \(rows), column \(j): Σdy, Σdy·x̂ and their maxima")
                XCTAssertEqual([bias.pointer[j], biasMaxima.pointer[j]], [b, topB], "rows \(rows), column \(j): the bias gradient and its maximum")
            }
        }
    }
}
