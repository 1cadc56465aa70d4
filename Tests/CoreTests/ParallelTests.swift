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
}
