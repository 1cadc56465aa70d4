// TrainingPosition: where a sweep stands — the learning rate, finished epochs and the partial
// epoch in progress — everything besides tensors that a checkpoint needs to resume exactly.

/// Where a sweep stands: everything besides tensors that a checkpoint needs to resume exactly.
public struct TrainingPosition: Codable, Equatable, Sendable {
    /// The learning rate being trained.
    public var lrIndex = 0
    /// Finished epochs of that learning rate.
    public var epochsDone = 0
    /// Finished steps of the epoch in progress, and its running sums (non-zero only when a run
    /// was interrupted mid-epoch).
    public var stepInEpoch = 0
    public var epochLossSum = 0.0
    public var epochAccuracySum = 0.0
    public var epochTrainSeconds = 0.0
    public var epochCommunicationSeconds = 0.0

    public init() {}

    /// True at the very start of a learning rate's run (fresh weights to be broadcast).
    public var atStartOfRun: Bool { epochsDone == 0 && stepInEpoch == 0 }
}
