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
    /// Part of `trainSeconds` spent in collectives on this rank.
    public var communicationSeconds: Double
}
