// JobCheck: the self-test of a data-parallel job that `dist-trainer check` runs, written against
// the Collective protocol so the same checks run under mpirun and on the tests' in-process ranks.
//
// Every check computes a value whose exact (or tightly bounded) expected result is known on every
// rank, so a broken collective, a wrong merge or a sharding bug shows as an error above its
// tolerance. The worst error over the job decides: a check passes only if it passes on every rank.
// Printing is the command's job; network measurements (latency, bandwidth) are MPI's and live there.
import Collectives
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
    /// Global batch of the sharded-step checks (raised to the rank count).
    let batch: Int
    private var outcomes: [CheckOutcome] = []

    public init(collective: Collective, batchSize: Int) {
        self.collective = collective
        batch = max(batchSize, collective.size)
    }

    /// Every check, in order: collectives, error agreement, the sharded step in both BatchNorm
    /// modes. `progress` is called on every rank as each outcome is known (rank 0 prints them).
    public static func runAll(collective: Collective, batchSize: Int,
                              progress: (CheckOutcome) -> Void = { _ in }) throws -> [CheckOutcome] {
        var check = JobCheck(collective: collective, batchSize: batchSize)
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
