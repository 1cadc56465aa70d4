// ParameterLayout: where every trainable tensor sits in the one flat parameter buffer.
//
// All parameters (and, at the same offsets, all gradients and Adam moments) live in one contiguous
// Float buffer, so a data-parallel step reduces every gradient with a single allreduce and Adam is
// one loop. Order: for each hidden block its Dense weight [in × out], Dense bias [out], BatchNorm
// scale [out] and shift [out]; then the head's weight [in × classes] and bias [classes]. Weights are
// stored as the seed stores them, [fan_in × fan_out] row-major, so y = x · W + b.
//
// BatchNorm running statistics are not trained and live in their own buffer (RunningStatsLayout).

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
}

/// Where BatchNorm running statistics live: for each block its mean [width] then variance [width].
public struct RunningStatsLayout: Equatable, Sendable {
    public let mean: [Int]
    public let variance: [Int]
    public let count: Int

    public init(_ arch: Architecture) {
        var offset = 0
        var mean: [Int] = []
        var variance: [Int] = []
        for w in arch.hidden {
            mean.append(offset)
            variance.append(offset + w)
            offset += 2 * w
        }
        self.mean = mean
        self.variance = variance
        count = offset
    }
}

// MARK: - Initialisation

/// Fills `params` with the seed's initial values: He-normal Dense weights, N(0, 2 / fan_in); zero
/// biases; BatchNorm scale 1 and shift 0. Deterministic in `seed` (see CounterRandom).
public func initializeParameters(_ params: UnsafeMutableBufferPointer<Float>, layout: ParameterLayout, seed: UInt64) {
    precondition(params.count == layout.count)
    let key = RandomKey(seed: seed, .initialization)
    for (l, slot) in layout.allDense.enumerated() {
        let layerKey = key.with(l)
        let std = (2.0 / Double(slot.fanIn)).squareRoot()
        for j in 0..<(slot.fanIn * slot.fanOut) {
            params[slot.weight + j] = Float(standardNormal(layerKey, j) * std)
        }
        for j in 0..<slot.fanOut { params[slot.bias + j] = 0 }
    }
    for slot in layout.norm {
        for j in 0..<slot.width {
            params[slot.scale + j] = 1
            params[slot.shift + j] = 0
        }
    }
}

/// Running statistics start as the seed's: mean 0, variance 1.
public func initializeRunningStats(_ stats: UnsafeMutableBufferPointer<Float>, layout: RunningStatsLayout, widths: [Int]) {
    precondition(stats.count == layout.count)
    for (l, w) in widths.enumerated() {
        for j in 0..<w {
            stats[layout.mean[l] + j] = 0
            stats[layout.variance[l] + j] = 1
        }
    }
}
