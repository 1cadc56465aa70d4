// JobCheck: the self-test of a data-parallel job that `dist-trainer check` runs, written against
// the Collective protocol so the same checks run under mpirun and on the tests' in-process ranks.
//
// Every check computes a value whose exact (or tightly bounded) expected result is known on every
// rank, so a broken collective, a wrong merge or a sharding bug shows as an error above its
// tolerance. The worst error over the job decides: a check passes only if it passes on every rank.
// Printing is the command's job; network measurements (latency, bandwidth) are MPI's and live there.
import Collectives
import CoreSupport
import Model

/// One check's outcome over the whole job (the same on every rank).
public struct CheckOutcome: Equatable, Sendable {
    public var name: String
    /// The largest error any rank saw (infinity when a rank saw NaN).
    public var maxError: Double
    public var tolerance: Double
    public var passed: Bool { maxError <= tolerance }
}

/// Runs the checks of `dist-trainer check` on `collective` (collective: every rank calls it).
public struct JobCheck {
    let collective: Collective
    /// Global batch of the sharded-step checks (at least one row per rank).
    let batch: Int
    private var outcomes: [CheckOutcome] = []

    /// Throws `validate`'s error for a batch below the rank count.
    public init(collective: Collective, batchSize: Int) throws {
        try JobCheck.validate(batchSize: batchSize, ranks: collective.size)
        self.collective = collective
        batch = batchSize
    }

    /// Throws a SettingError ("batch_size") when `batchSize` is below `ranks`: a rank with no row
    /// of the sharded step would check nothing. Every rank knows both numbers, so every rank
    /// throws the same error and none is left waiting in a collective.
    public static func validate(batchSize: Int, ranks: Int) throws {
        guard batchSize >= ranks else {
            throw SettingError("batch_size", "\(batchSize) is smaller than the number of ranks (\(ranks))")
        }
    }

    /// Every check, in order: collectives, error agreement, the sharded step in both BatchNorm
    /// modes. `progress` is called on every rank as each outcome is known (rank 0 prints them).
    public static func runAll(collective: Collective, batchSize: Int,
                              progress: (CheckOutcome) -> Void = { _ in }) throws -> [CheckOutcome] {
        var check = try JobCheck(collective: collective, batchSize: batchSize)
        var reported = 0
        func flush() {
            for outcome in check.outcomes[reported...] { progress(outcome) }
            reported = check.outcomes.count
        }
        try check.checkCollectives(); flush()
        try check.checkCompressedAllreduce(); flush()
        try check.checkAgreement(); flush()
        for mode in BatchNormMode.allCases {
            try check.checkShardedStep(mode: mode)
            flush()
        }
        return check.outcomes
    }

    /// Records a check: the worst error over all ranks against `tolerance`.
    mutating func report(_ name: String, _ maxError: Double, tolerance: Double) throws {
        let (_, worst) = try collective.allreduceMinMax(maxError.isNaN ? .infinity : maxError)
        outcomes.append(CheckOutcome(name: name, maxError: worst, tolerance: tolerance))
    }
}
