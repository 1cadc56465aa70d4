// Initialization: the seed's initial parameter values and running statistics.
//
// He-normal Dense weights from the counter-based generator, so every rank (and a resumed run)
// computes the same initial model from the seed alone; the Trainer still broadcasts rank 0's.
import Kernels

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
