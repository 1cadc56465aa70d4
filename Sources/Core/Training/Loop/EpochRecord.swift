// EpochRecord: the metrics of one epoch of one learning rate — one row of metrics.jsonl and
// metrics.csv, one entry of a checkpoint's history.
//
// Codable with the on-disk names in snake case (see JSONCoding); the Trainer fills it in, the run
// files and checkpoints store it, `summarize` and the plotting script read it back.

/// The metrics of one epoch of one learning rate (one row of metrics.csv).
public struct EpochRecord: Codable, Equatable, Sendable {
    public var lr: Double
    /// Position of `lr` in the sweep.
    public var lrIndex: Int
    /// 1-based epoch number.
    public var epoch: Int
    /// Mean over the epoch's steps of the training-mode batch loss and accuracy (as the seed).
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var valLoss: Double
    public var valAccuracy: Double
    public var valMacroF1: Double
    /// Wall time of the epoch's training steps (not validation).
    public var trainSeconds: Double
    /// Wall time of the validation pass.
    public var valSeconds: Double
    /// Part of `trainSeconds` spent in collectives on this rank (transfers and waiting for others).
    public var communicationSeconds: Double
    /// The rank whose steps took longest outside collectives this epoch — the one every other rank
    /// waited for — and the least and the most such compute time over the ranks; their difference
    /// is how long the fastest rank spent waiting for the slowest. A single process has 0, t, t.
    public var slowestRank: Int = 0
    public var computeSecondsMin: Double = 0
    public var computeSecondsMax: Double = 0
    /// With a learning-rate schedule: the rate of the epoch's last step (absent otherwise).
    public var lrLast: Double? = nil
    /// True on the epoch after which early stopping ended this learning rate's run (absent otherwise).
    public var earlyStopped: Bool? = nil

    /// Seconds the fastest rank spent waiting for the slowest one.
    public var straggleSeconds: Double { computeSecondsMax - computeSecondsMin }
}

extension EpochRecord {
    /// Histories written before the straggler fields existed read them as zero.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        lr = try c.decode(Double.self, forKey: .lr)
        lrIndex = try c.decode(Int.self, forKey: .lrIndex)
        epoch = try c.decode(Int.self, forKey: .epoch)
        trainLoss = try c.decode(Double.self, forKey: .trainLoss)
        trainAccuracy = try c.decode(Double.self, forKey: .trainAccuracy)
        valLoss = try c.decode(Double.self, forKey: .valLoss)
        valAccuracy = try c.decode(Double.self, forKey: .valAccuracy)
        valMacroF1 = try c.decode(Double.self, forKey: .valMacroF1)
        trainSeconds = try c.decode(Double.self, forKey: .trainSeconds)
        valSeconds = try c.decode(Double.self, forKey: .valSeconds)
        communicationSeconds = try c.decode(Double.self, forKey: .communicationSeconds)
        slowestRank = try c.decodeIfPresent(Int.self, forKey: .slowestRank) ?? 0
        computeSecondsMin = try c.decodeIfPresent(Double.self, forKey: .computeSecondsMin) ?? 0
        computeSecondsMax = try c.decodeIfPresent(Double.self, forKey: .computeSecondsMax) ?? 0
        lrLast = try c.decodeIfPresent(Double.self, forKey: .lrLast)
        earlyStopped = try c.decodeIfPresent(Bool.self, forKey: .earlyStopped)
    }
}
