// ParameterLayout: where every trainable tensor sits in the one flat parameter buffer.
//
// All parameters (and, at the same offsets, all gradients and Adam moments) live in one contiguous
// Float buffer, so a data-parallel step reduces every gradient with a single allreduce and Adam is
// one loop. Order: for each hidden block its Dense weight [in × out], Dense bias [out], BatchNorm
// scale [out] and shift [out]; then the head's weight [in × classes] and bias [classes]. Weights are
// stored as the seed stores them, [fan_in × fan_out] row-major, so y = x · W + b.
//
// BatchNorm running statistics are not trained and live in their own buffer (RunningStatsLayout);
// initial values are in Initialization.swift.

/// Offsets of one dense layer's tensors.
public struct DenseSlot: Equatable, Sendable {
    public var fanIn: Int
    public var fanOut: Int
    /// Offset of the [fanIn × fanOut] weight.
    public var weight: Int
    /// Offset of the [fanOut] bias.
    public var bias: Int
}

/// Offsets of one BatchNorm's learnable tensors.
public struct NormSlot: Equatable, Sendable {
    public var width: Int
    /// Offset of the scale (γ, initialised to 1).
    public var scale: Int
    /// Offset of the shift (β, initialised to 0).
    public var shift: Int
}

/// Where each tensor of an architecture lives in the flat parameter buffer.
public struct ParameterLayout: Equatable, Sendable {
    public let architecture: Architecture
    /// One per hidden block.
    public let dense: [DenseSlot]
    /// One per hidden block.
    public let norm: [NormSlot]
    /// The classifier head.
    public let head: DenseSlot
    /// Total number of Floats.
    public let count: Int

    public init(_ arch: Architecture) {
        architecture = arch
        var offset = 0
        func take(_ n: Int) -> Int { defer { offset += n }; return offset }
        var dense: [DenseSlot] = []
        var norm: [NormSlot] = []
        for l in 0..<arch.blockCount {
            let (i, o) = (arch.fanIn(l), arch.fanOut(l))
            dense.append(DenseSlot(fanIn: i, fanOut: o, weight: take(i * o), bias: take(o)))
            norm.append(NormSlot(width: o, scale: take(o), shift: take(o)))
        }
        let (i, o) = (arch.fanIn(arch.blockCount), arch.classCount)
        head = DenseSlot(fanIn: i, fanOut: o, weight: take(i * o), bias: take(o))
        self.dense = dense
        self.norm = norm
        count = offset
    }

    /// All dense layers, hidden blocks first, head last.
    public var allDense: [DenseSlot] { dense + [head] }

    /// Where the Dense weights are (what AdamW decays; biases and BatchNorm are not).
    public var denseWeights: [Range<Int>] { allDense.map { $0.weight..<($0.weight + $0.fanIn * $0.fanOut) } }
}
