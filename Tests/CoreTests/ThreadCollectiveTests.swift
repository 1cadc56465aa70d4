// ThreadCollectiveTests: the tests' in-process collective (TestSupport/ThreadCollective) against
// hand-computed results on 1 to 8 ranks — every operation, uneven and empty parts, the 16-bit
// ring's order and roundings, broadcasts from non-zero roots, byte broadcasts of other lengths —
// and its failure behaviour: mismatched sizes, a rank that never arrives, a rank that fails or
// leaves early; each ends the job with a message instead of a hang or corrupted memory.
@testable import Collectives
@testable import CoreSupport
import Foundation
import TestSupport
import XCTest

final class ThreadCollectiveTests: XCTestCase {
    let rankCounts = Array(1...8)

    /// `values` after `operation` ran on them in place.
    func applied(_ values: [Float], _ operation: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> [Float] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try operation($0) }
        return v
    }

    // MARK: - Sums

    func testAllreduceSumsAreExactAndAddedInRankOrder() throws {
        for n in rankCounts {
            let results = try runRanks(n) { c -> ([Float], [Double]) in
                // Element 0: rank 0 gives 1, every other rank 2^-24. In rank order each addition
                // is a tie that rounds back to 1; any other order would sum the small ones first.
                var f = (0..<30).map { Float((c.rank + 1) * ($0 % 5)) }
                f[0] = c.rank == 0 ? 1 : 0x1p-24
                f = try self.applied(f) { try c.allreduceSum($0) }
                var d = (0..<30).map { Double(c.rank) + 0.5 * Double($0) }
                try d.withUnsafeMutableBufferPointer { try c.allreduceSum($0) }
                return (f, d)
            }
            var expectedFloat = (0..<30).map { Float(n * (n + 1) / 2 * ($0 % 5)) }
            expectedFloat[0] = 1
            let expectedDouble = (0..<30).map { Double(n * (n - 1) / 2) + Double(n) * 0.5 * Double($0) }
            for (r, (f, d)) in results.enumerated() {
                XCTAssertEqual(f, expectedFloat, "n=\(n) rank \(r) Float")
                XCTAssertEqual(d, expectedDouble, "n=\(n) rank \(r) Double")
            }
        }
    }

    func testAllreduceMinMax() throws {
        for n in rankCounts {
            // 0 ..< n rotated by n/2, minus 2: the extremes sit on ranks in the middle, not at the ends.
            let results = try runRanks(n) { try $0.allreduceMinMax(Double(($0.rank + n / 2) % n) - 2) }
            for (r, m) in results.enumerated() {
                XCTAssertEqual(m.min, -2, "n=\(n) rank \(r)")
                XCTAssertEqual(m.max, Double(n - 1) - 2, "n=\(n) rank \(r)")
            }
            let nan = try runRanks(n) { try $0.allreduceMinMax($0.rank == n - 1 ? .nan : 1) }
            XCTAssertTrue(nan.allSatisfy { $0.min.isNaN && $0.max.isNaN }, "n=\(n): a NaN on one rank must show on all")
        }
    }

    /// Rank r gives 100·r + i at element i, so the sum of element i is 100·n(n−1)/2 + n·i; a rank
    /// owns only its part (parts of 16-element multiples, uneven, some empty), the rest is NaN.
    func testReduceScatterOwnPartsAreSumsTheRestNaN() throws {
        for n in rankCounts {
            for (count, alignment) in [(37 + n, 16), (10, 1), (5, 16)] {
                let partition = Partition(count: count, parts: n, alignment: alignment)
                let results = try runRanks(n) { c in
                    try self.applied((0..<count).map { Float(100 * c.rank + $0) }) { try c.reduceScatterSum($0, partition: partition) }
                }
                for (r, values) in results.enumerated() {
                    for i in 0..<count {
                        if partition.range(r).contains(i) {
                            XCTAssertEqual(values[i], Float(100 * n * (n - 1) / 2 + n * i), "n=\(n) count \(count) rank \(r) element \(i)")
                        } else {
                            XCTAssertTrue(values[i].isNaN, "n=\(n) count \(count) rank \(r) element \(i) outside its part")
                        }
                    }
                }
            }
        }
    }

    // MARK: - The 16-bit ring

    /// Small integers are exact in both formats (Σ over 8 ranks of (r+1)·6 = 216 < 256), so the ring
    /// must give the exact sums on every rank, with an uneven buffer length.
    func testCompressedAllreduceOfSmallIntegersIsExact() throws {
        for n in rankCounts {
            for format in [GradientCompression.bf16, .fp16] {
                let count = 1001 + n
                let results = try runRanks(n) { c in
                    try self.applied((0..<count).map { Float((c.rank + 1) * ($0 % 7)) }) { try c.allreduceSumCompressed($0, format: format) }
                }
                let expected = (0..<count).map { Float(n * (n + 1) / 2 * ($0 % 7)) }
                for (r, values) in results.enumerated() { XCTAssertEqual(values, expected, "n=\(n) \(format) rank \(r)") }
            }
        }
    }

    /// Three ranks, three elements (all in rank 2's part, so every element travels 0 → 1 → 2) holding
    /// the same values in other places: 1 and two ε, ε half a 16-bit step at 1. 1 + ε is a tie that
    /// rounds to even, back to 1, at every hop it happens; ε + ε = 2ε is exact and 1 + 2ε is
    /// representable. So the ring gives 1, 1 + 2ε, 1 — not the exact sum 1 + 2ε everywhere.
    func testCompressedAllreduceRoundsAtEveryHopInRingOrder() throws {
        for (format, epsilon) in [(GradientCompression.bf16, Float(0x1p-8)), (.fp16, Float(0x1p-11))] {
            let values: [[Float]] = [[1, epsilon, epsilon], [epsilon, epsilon, 1], [epsilon, 1, epsilon]]  // [rank][element]
            let results = try runRanks(3) { c in try self.applied(values[c.rank]) { try c.allreduceSumCompressed($0, format: format) } }
            for (r, got) in results.enumerated() { XCTAssertEqual(got, [1, 1 + 2 * epsilon, 1], "\(format) rank \(r)") }
            // One rank rounds once, as SingleProcess does: 1 + ε/2 is below the tie and rounds to 1.
            let single = try runRanks(1) { c in try self.applied([1 + epsilon / 2, 3]) { try c.allreduceSumCompressed($0, format: format) } }
            XCTAssertEqual(single[0], [1, 3], "\(format) one rank")
        }
    }

    /// Random values in fp16 against the ring computed here with Swift's own Float16 conversion.
    func testCompressedAllreduceMatchesAnIndependentFP16Ring() throws {
        for n in rankCounts {
            let count = 50 + 3 * n
            let inputs = (0..<n).map { r -> [Float] in
                var rng = SplitMix64(UInt64(40 + r))
                return rng.normals(count, scale: 3)
            }
            let results = try runRanks(n) { c in try self.applied(inputs[c.rank]) { try c.allreduceSumCompressed($0, format: .fp16) } }
            let partition = Partition(count: count, parts: n)
            var expected = [Float](repeating: 0, count: count)
            for p in 0..<n {
                for i in partition.range(p) {
                    var partial = Float(Float16(inputs[(p + 1) % n][i]))
                    for hop in stride(from: 2, through: n, by: 1) { partial = Float(Float16(inputs[(p + hop) % n][i] + partial)) }
                    expected[i] = partial
                }
            }
            for (r, got) in results.enumerated() { XCTAssertEqual(got, expected, "n=\(n) rank \(r)") }
        }
    }

    // MARK: - Copies

    func testAllgatherAssemblesEveryRanksPart() throws {
        for n in rankCounts {
            for (count, alignment) in [(40 + n, 16), (7, 1)] {
                let partition = Partition(count: count, parts: n, alignment: alignment)
                let results = try runRanks(n) { c in
                    let mine = partition.range(c.rank)
                    let values = (0..<count).map { mine.contains($0) ? Float(1000 * c.rank + $0) : -1 }
                    return try self.applied(values) { try c.allgather($0, partition: partition) }
                }
                let expected = (0..<count).map { i in Float(1000 * (0..<n).first { partition.range($0).contains(i) }! + i) }
                for (r, got) in results.enumerated() { XCTAssertEqual(got, expected, "n=\(n) count \(count) rank \(r)") }
            }
        }
    }

    func testBroadcastFromEveryRoot() throws {
        for n in rankCounts {
            for root in Set([0, n / 2, n - 1]) {
                let results = try runRanks(n) { c -> ([Float], [UInt8]) in
                    let floats = try self.applied((0..<9).map { c.rank == root ? Float($0) * 0.25 : Float(-c.rank) }) {
                        try c.broadcast($0, root: root)
                    }
                    var bytes: [UInt8] = c.rank == root ? Array("root \(root) of \(n): ünïcödé".utf8) : [UInt8](repeating: 7, count: c.rank * 3)
                    try c.broadcast(&bytes, root: root)
                    return (floats, bytes)
                }
                for (r, (floats, bytes)) in results.enumerated() {
                    XCTAssertEqual(floats, (0..<9).map { Float($0) * 0.25 }, "n=\(n) root \(root) rank \(r)")
                    XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "root \(root) of \(n): ünïcödé", "n=\(n) root \(root) rank \(r)")
                }
            }
        }
    }

    /// Byte broadcasts of lengths 0, 1 and 100 000 replace buffers of any other length.
    func testByteBroadcastOfDifferentLengths() throws {
        for n in rankCounts {
            for length in [0, 1, 100_000] {
                let root = n - 1
                let results = try runRanks(n) { c -> [UInt8] in
                    var bytes = c.rank == root ? (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) } : [UInt8](repeating: 9, count: 5 + c.rank)
                    try c.broadcast(&bytes, root: root)
                    return bytes
                }
                let expected = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                for (r, got) in results.enumerated() { XCTAssertEqual(got, expected, "n=\(n) length \(length) rank \(r)") }
            }
        }
    }

    /// No rank leaves the barrier before every rank has reached it.
    func testBarrierWaitsForEveryRank() throws {
        for n in rankCounts {
            let arrivals = Counter()
            let seen = try runRanks(n) { c -> Int in
                usleep(UInt32(2_000 * (n - c.rank)))  // the ranks arrive at different times
                arrivals.increment()
                try c.barrier()
                return arrivals.value
            }
            XCTAssertEqual(seen, Array(repeating: n, count: n), "n=\(n)")
        }
    }

    // MARK: - Failures end the job with a message

    func testMismatchedSizesFailEveryRankWithBothSizes() {
        let outcomes = rankOutcomes(3) { c in
            try self.applied([Float](repeating: 1, count: c.rank == 1 ? 5 : 4)) { try c.allreduceSum($0) }
        }
        for (r, outcome) in outcomes.enumerated() {
            let message = "\(outcome.failure.map { "\($0)" } ?? "no error")"
            XCTAssertTrue(message.contains("different operations (or sizes)") && message.contains("rank 1: allreduceSum(Float × 5)")
                          && message.contains("rank 0: allreduceSum(Float × 4)"), "rank \(r): \(message)")
        }
    }

    func testDifferentOperationsFailEveryRank() {
        let outcomes = rankOutcomes(2) { c in
            if c.rank == 0 { try c.barrier() } else { _ = try c.allreduceMinMax(1) }
        }
        for outcome in outcomes {
            XCTAssertTrue("\(outcome.failure!)".contains("rank 0: barrier; rank 1: allreduceMinMax"), "\(outcome.failure!)")
        }
    }

    func testRankThatNeverArrivesTimesOut() {
        let start = Date()
        let outcomes = rankOutcomes(3, timeout: 0.3) { c in
            if c.rank == 2 {
                c.noteProgress(lrIndex: 0, epoch: 1, step: 4)
                usleep(1_500_000)  // busy elsewhere, far longer than the timeout
            } else {
                try c.barrier()
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.5)
        for r in 0..<2 {
            let message = "\(outcomes[r].failure.map { "\($0)" } ?? "no error")"
            XCTAssertTrue(message.contains("waited 0.3 s in barrier") && message.contains("rank 2 (last at lr index 0 epoch 1 step 4) never arrived"),
                          "rank \(r): \(message)")
        }
    }

    /// A rank that throws releases the others at once; runRanks rethrows the cause.
    func testFailingRankReleasesTheOthers() {
        let start = Date()
        XCTAssertThrowsError(try runRanks(4, timeout: 30) { c in
            if c.rank == 2 { throw TrainerError("rank two broke") }
            try c.barrier()
        }) { error in
            XCTAssertEqual(error as? TrainerError, TrainerError("rank two broke"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the others must not wait for the timeout")
        let outcomes = rankOutcomes(4, timeout: 30) { c in
            if c.rank == 2 { throw TrainerError("rank two broke") }
            try c.barrier()
        }
        for r in [0, 1, 3] {
            XCTAssertTrue("\(outcomes[r].failure!)".contains("rank 2 failed (rank two broke)"), "\(outcomes[r].failure!)")
        }
    }

    func testRankThatFinishesEarlyFailsTheOperationItSkips() {
        let start = Date()
        let outcomes = rankOutcomes(3, timeout: 30) { c in
            if c.rank != 0 { try c.barrier() }
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertNil(outcomes[0].failure)
        for r in [1, 2] { XCTAssertTrue("\(outcomes[r].failure!)".contains("rank 0 finished"), "\(outcomes[r].failure!)") }
    }

    func testInvalidArgumentsFailTheJob() {
        let wrongParts = rankOutcomes(2) { c in
            try self.applied([Float](repeating: 0, count: 8)) { try c.reduceScatterSum($0, partition: Partition(count: 8, parts: 3)) }
        }
        XCTAssertTrue(wrongParts.allSatisfy { "\($0.failure!)".contains("partition has 3 parts for 2 ranks") }, "\(wrongParts)")
        let pastEnd = rankOutcomes(2) { c in
            try self.applied([Float](repeating: 0, count: 8)) { try c.allgather($0, partition: Partition(count: 40, parts: 2)) }
        }
        XCTAssertTrue(pastEnd.allSatisfy { "\($0.failure!)".contains("outside the buffer of 8") }, "\(pastEnd)")
        let badRoot = rankOutcomes(2) { c in
            var bytes: [UInt8] = [1]
            try c.broadcast(&bytes, root: 2)
        }
        XCTAssertTrue(badRoot.allSatisfy { "\($0.failure!)".contains("root 2 is not a rank of 2") }, "\(badRoot)")
    }
}

/// A counter the rank threads share.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
