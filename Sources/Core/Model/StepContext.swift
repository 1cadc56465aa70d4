// StepContext: what one rank needs to know about the training step it is computing — where its
// shard sits in the global minibatch, which dropout masks to draw, how BatchNorm normalises.
//
// A plain value built by the Trainer for every step and read by Network; it holds no buffers.
import Kernels

/// Where one rank's shard sits in the global minibatch, and which random numbers it uses.
public struct StepContext: Sendable {
    /// Size of the global minibatch (all ranks together).
    public var globalBatch: Int
    /// Position of this shard's first sample in the global minibatch.
    public var firstRow: Int
    /// Number of samples in this shard.
    public var rows: Int
    /// Key of this step's dropout masks: (seed, epoch, step); extended by the layer index.
    public var dropoutKey: RandomKey
    /// Keep probability of dropout (1 − drop probability).
    public var keep: Float
    public var batchNormMode: BatchNormMode
    /// Label smoothing ε of the training loss (0: plain cross-entropy).
    public var labelSmoothing: Float

    public init(globalBatch: Int, firstRow: Int, rows: Int, dropoutKey: RandomKey, keep: Float, batchNormMode: BatchNormMode,
                labelSmoothing: Float = 0) {
        self.globalBatch = globalBatch
        self.firstRow = firstRow
        self.rows = rows
        self.dropoutKey = dropoutKey
        self.keep = keep
        self.batchNormMode = batchNormMode
        self.labelSmoothing = labelSmoothing
    }
}
