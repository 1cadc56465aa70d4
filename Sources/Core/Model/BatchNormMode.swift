// BatchNormMode: how BatchNorm forms its batch statistics when the minibatch is split across ranks.
//
// A setting of the model's training step (part of TrainingConfig); the kernels themselves are in
// Kernels/BatchNorm.swift and the reductions they need in Network.forwardTrain and backward.

/// How BatchNorm forms batch statistics when the batch is split across ranks.
public enum BatchNormMode: String, Codable, CaseIterable, Sendable {
    /// Statistics of the whole global batch (summed across ranks per layer): results do not depend
    /// on the number of ranks. The default.
    case sync
    /// Each rank normalises with its own shard's statistics (PyTorch DDP's behaviour); running
    /// statistics are still merged exactly across ranks.
    case local
}
