// AgreementTests: error agreement (Collectives/Agreement.swift) on 1 to 8 in-process ranks — with
// failures on every subset of ranks, every rank throws the same agreed error, the lowest failing
// rank's message prefixed "rank K: " (no prefix on one rank); `agreeing` turns any error into one;
// `rootReads` reads on the root only and shares its bytes or its failure.
@testable import CoreSupport
import TestSupport
import XCTest

final class AgreementTests: XCTestCase {
    /// The message rank `r` fails with in these tests.
    static func message(_ r: Int) -> String { "file data-\(r).idx: expected 200 labels, found \(190 + r)" }

    /// Every subset of failing ranks (as a bit mask) on every rank count: all 510 of them.
    func testAgreeOnEverySubsetOfFailingRanks() {
        for n in 1...8 {
            for mask in 0..<(1 << n) {
                let fails = { (r: Int) in mask & (1 << r) != 0 }
                let outcomes = rankOutcomes(n) { c in try c.agree(fails(c.rank) ? TrainerError(Self.message(c.rank)) : nil) }
                guard let lowest = (0..<n).first(where: fails) else {
                    XCTAssertTrue(outcomes.allSatisfy { $0.failure == nil }, "n=\(n): no rank failed, yet \(outcomes)")
                    continue
                }
                let expected = n == 1 ? Self.message(0) : "rank \(lowest): " + Self.message(lowest)
                for (r, outcome) in outcomes.enumerated() {
                    let error = outcome.failure as? TrainerError
                    XCTAssertEqual(error?.message, expected, "n=\(n) failing \(String(mask, radix: 2)): rank \(r) got \(outcome)")
                    XCTAssertEqual(error?.agreed, true, "n=\(n) failing \(String(mask, radix: 2)): rank \(r) must know the error is agreed")
                }
            }
        }
    }

    /// A message that already names a rank (an agreed error passed on) is not prefixed again.
    func testAgreeKeepsAMessageThatNamesItsRank() {
        let outcomes = rankOutcomes(4) { c in try c.agree(c.rank == 2 ? TrainerError("rank 0: checkpoint x: bad header") : nil) }
        for outcome in outcomes { XCTAssertEqual((outcome.failure as? TrainerError)?.message, "rank 0: checkpoint x: bad header") }
    }

    struct NotATrainerError: Error, CustomStringConvertible {
        var description: String { "disk on fire" }
    }

    func testAgreeingReturnsValuesOrTheAgreedError() throws {
        for n in 1...8 {
            XCTAssertEqual(try runRanks(n) { c in try c.agreeing { c.rank * 10 } }, (0..<n).map { $0 * 10 }, "n=\(n)")
            // Any error becomes a TrainerError from its description; the lowest failing rank wins.
            let outcomes = rankOutcomes(n) { c in
                try c.agreeing { () throws -> Int in
                    if c.rank == n - 1 { throw NotATrainerError() }
                    if c.rank == n / 2 && n > 2 { throw TrainerError("bad flag --x") }
                    return c.rank
                }
            }
            let expected = n == 1 ? "disk on fire" : n == 2 ? "rank 1: disk on fire" : "rank \(n / 2): bad flag --x"
            for (r, outcome) in outcomes.enumerated() {
                XCTAssertEqual((outcome.failure as? TrainerError)?.message, expected, "n=\(n) rank \(r): \(outcome)")
            }
        }
    }

    func testRootReadsOnTheRootOnlyAndSharesItsBytes() throws {
        for n in 1...8 {
            for root in Set([0, n - 1]) {
                let reads = Counter()
                let got = try runRanks(n) { c in
                    try c.rootReads(root: root) {
                        reads.increment()
                        return Array("read by rank \(c.rank)".utf8)
                    }
                }
                XCTAssertEqual(reads.value, 1, "n=\(n) root \(root): only the root reads")
                XCTAssertEqual(got.map { String(decoding: $0, as: UTF8.self) }, Array(repeating: "read by rank \(root)", count: n), "n=\(n) root \(root)")
            }
        }
    }

    func testRootReadsFailureReachesEveryRank() {
        for n in 1...8 {
            for root in Set([0, n - 1]) {
                let outcomes = rankOutcomes(n) { c in
                    try c.rootReads(root: root) { throw TrainerError("/run/last.safetensors: No such file or directory") }
                }
                let expected = (n == 1 ? "" : "rank \(root): ") + "/run/last.safetensors: No such file or directory"
                for (r, outcome) in outcomes.enumerated() {
                    XCTAssertEqual((outcome.failure as? TrainerError)?.message, expected, "n=\(n) root \(root) rank \(r): \(outcome)")
                }
            }
        }
    }
}
