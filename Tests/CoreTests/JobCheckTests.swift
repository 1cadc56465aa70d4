// JobCheckTests: the checks of `dist-trainer check` (JobCheck.runAll) on 1 to 8 in-process ranks —
// all pass on a correct collective, every rank sees the same outcomes, and each of a list of
// deliberately broken collectives (FaultyCollective) makes them fail, so a broken MPI job cannot
// pass its self-test.
@testable import Collectives
import CoreSupport
import TestSupport
@testable import Training
import XCTest

final class JobCheckTests: XCTestCase {
    /// Every rank's outcomes and the outcomes its progress callback saw, in order.
    typealias RankChecks = (outcomes: [CheckOutcome], progress: [CheckOutcome])

    func runChecks(_ n: Int, batch: Int, fault: CollectiveFault? = nil) -> [Result<RankChecks, any Error>] {
        rankOutcomes(n, wrap: { c -> Collective in fault.map { FaultyCollective(c, fault: $0) } ?? c }) { c -> RankChecks in
            var progress: [CheckOutcome] = []
            let outcomes = try JobCheck.runAll(collective: c, batchSize: batch) { progress.append($0) }
            return (outcomes, progress)
        }
    }

    /// 18 checks (collectives 6, 16-bit ring 6, agreement 2, sharded step 3 + 1), all passing, the
    /// same on every rank, with a large batch and with one of a row or two per rank; a batch below
    /// the rank count is refused by every rank alike (a rank without rows would check nothing).
    func testAllChecksPassOnOneToEightRanks() throws {
        for n in 1...8 {
            for batch in [37, 3] {
                if batch < n {
                    for (r, result) in runChecks(n, batch: batch).enumerated() {
                        XCTAssertThrowsError(try result.get(), "n=\(n) batch \(batch): rank \(r) ran the checks") { error in
                            XCTAssertEqual(error as? SettingError,
                                           SettingError("batch_size", "\(batch) is smaller than the number of ranks (\(n))"), "rank \(r)")
                        }
                    }
                    continue
                }
                let ranks = try runChecks(n, batch: batch).map { try $0.get() }
                let outcomes = ranks[0].outcomes
                XCTAssertEqual(outcomes.count, 18, "n=\(n) batch \(batch): \(outcomes.map(\.name))")
                for check in outcomes { XCTAssertTrue(check.passed, "n=\(n) batch \(batch): \(check)") }
                for (r, rank) in ranks.enumerated() {
                    XCTAssertEqual(rank.outcomes, outcomes, "n=\(n) batch \(batch): rank \(r) saw other outcomes")
                    XCTAssertEqual(rank.progress, rank.outcomes, "n=\(n) batch \(batch): rank \(r)'s progress")
                }
                XCTAssertTrue(outcomes.contains { $0.name == "broadcast buffer from rank \(n - 1)" }, "\(outcomes.map(\.name))")
                XCTAssertTrue(outcomes.contains { $0.name == "sync BatchNorm: sharded gradient = whole-batch gradient, bit for bit, batch \(batch)" },
                              "\(outcomes.map(\.name))")
            }
        }
    }

    /// The checks that must fail for each fault (a prefix of their names). A fault that makes the
    /// ranks take different paths ends the job in a collective mismatch instead (nil): the job
    /// fails, as MPI's watchdog would end it.
    static let caughtBy: [CollectiveFault: [String]?] = [
        .reduceScatterDropsLastRank: ["sharded Adam step"],
        .allreduceFloatDropsLastRank: ["allreduce sum (Float", "sync BatchNorm: sharded gradient"],
        .allreduceDoubleDropsLastRank: ["allreduce sum (Double", "sync BatchNorm: loss and correct count"],
        .compressedAllreduceDropsLastRank: ["allreduce sum in bf16 (ring", "allreduce sum in fp16 (ring"],
        .broadcastIsNoOp: ["broadcast buffer"],
        .byteBroadcastIsNoOp: ["broadcast bytes", "agreement on rank"],
        .allgatherIsNoOp: ["sharded Adam step"],
        .minMaxIsLocal: nil,
    ]

    func testEveryBrokenCollectiveFailsTheChecks() {
        for fault in CollectiveFault.allCases {
            guard let expected = Self.caughtBy[fault] else { return XCTFail("no expectation for \(fault)") }
            for n in 2...8 {
                let ranks = runChecks(n, batch: 37, fault: fault)
                for (r, rank) in ranks.enumerated() {
                    switch rank {
                    case .failure(let error):
                        XCTAssertNil(expected, "\(fault) n=\(n) rank \(r): the job failed (\(error)) instead of reporting failed checks")
                        XCTAssertTrue(error is CollectiveFailure, "\(fault) n=\(n) rank \(r): \(error)")
                    case .success(let checks):
                        let failed = checks.outcomes.filter { !$0.passed }.map(\.name)
                        for prefix in expected ?? [] {
                            XCTAssertTrue(failed.contains { $0.hasPrefix(prefix) }, "\(fault) n=\(n) rank \(r): '\(prefix)' passed; failed: \(failed)")
                        }
                        XCTAssertNotNil(expected, "\(fault) n=\(n) rank \(r): finished with failed checks \(failed)")
                    }
                }
            }
        }
    }

    /// On one rank the reductions have nothing to lose but the only contribution: still caught.
    func testDroppedContributionCaughtOnOneRank() throws {
        for fault in [CollectiveFault.reduceScatterDropsLastRank, .allreduceFloatDropsLastRank, .compressedAllreduceDropsLastRank] {
            let failed = try runChecks(1, batch: 37, fault: fault)[0].get().outcomes.filter { !$0.passed }
            XCTAssertFalse(failed.isEmpty, "\(fault) on one rank passed every check")
        }
    }
}
