// Adam: the optimiser, in the standard form and in the seed's form.
//
// Both keep first and second moments m, v of every parameter (β1 = 0.9, β2 = 0.999, ε = 1e-8):
//   m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²
//   standard (`adam`):      p ← p − lr · m̂ / (√v̂ + ε),  m̂ = m / (1−β1^t), v̂ = v / (1−β2^t)
//   seed (`adam-seed`):     p ← p − lr · m / (√v + ε)   (the notebook's update; no bias correction)
// One loop over the flat parameter buffer; identical on every rank because the gradients are.

/// Which Adam update to apply.
public enum AdamVariant: String, Codable, CaseIterable, Sendable {
    /// Bias-corrected Adam (Kingma & Ba), as PyTorch's torch.optim.Adam.
    case adam
    /// The seed notebook's update, without bias correction.
    case adamSeed = "adam-seed"
}

/// Adam's state for a flat parameter buffer.
public final class AdamState {
    public let variant: AdamVariant
    public let beta1 = 0.9
    public let beta2 = 0.999
    public let epsilon = 1e-8
    /// First moments, one per parameter.
    public let m: Buffer<Float>
    /// Second moments, one per parameter.
    public let v: Buffer<Float>
    /// Number of updates applied so far.
    public var step: Int = 0

    public init(parameterCount: Int, variant: AdamVariant) {
        self.variant = variant
        m = Buffer(count: parameterCount)
        v = Buffer(count: parameterCount)
    }

    /// Clears the moments and the step count (a new learning rate of a sweep starts afresh).
    public func reset() {
        m.zero()
        v.zero()
        step = 0
    }

    /// Applies one update with learning rate `lr` to all `params` from `grads` (`m.count` entries).
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float) {
        update(params: params, grads: grads, range: 0..<m.count, lr: lr)
    }

    /// Applies one update with learning rate `lr` to parameters `range` only: `params` is the whole
    /// parameter buffer, `grads[i]` is the gradient of parameter `range.lowerBound + i`. Each rank
    /// of a sharded step updates its own range (see ShardedAdam).
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, range: Range<Int>, lr: Float) {
        precondition(range.lowerBound >= 0 && range.upperBound <= m.count)
        step += 1
        // Fold the bias corrections into the step size and ε: lr·m̂/(√v̂+ε) = a·m/(√v + ε') with
        // a = lr·√(1−β2^t)/(1−β1^t) and ε' = ε·√(1−β2^t). Computed in Double once per step; 1 − β is
        // formed in Double too (in Float, 1 − Float(0.999) is 9.99987e-4, not 1e-3).
        var a = Double(lr)
        var e = epsilon
        if variant == .adam {
            let c1 = 1 - pow(beta1, Double(step))
            let c2 = (1 - pow(beta2, Double(step))).squareRoot()
            a = Double(lr) * c2 / c1
            e = epsilon * c2
        }
        let (stepSize, epsHat) = (Float(a), Float(e))
        let (b1, b2) = (Float(beta1), Float(beta2))
        let (c1, c2) = (Float(1 - beta1), Float(1 - beta2))
        let (mp, vp, p) = (m.pointer + range.lowerBound, v.pointer + range.lowerBound, params + range.lowerBound)
        for i in 0..<range.count {
            let g = grads[i]
            let mi = b1 * mp[i] + c1 * g
            let vi = b2 * vp[i] + c2 * (g * g)
            mp[i] = mi
            vp[i] = vi
            p[i] -= stepSize * mi / (vi.squareRoot() + epsHat)
        }
    }
}

import Foundation

// MARK: - Sharded step

/// The data-parallel optimizer step with the work split across ranks (ZeRO stage 1): the weight
/// gradients are reduce-scattered, so each rank receives the global sum of its part only; it adds
/// the exactly reduced per-feature gradients, applies Adam to its part of the parameters, and the
/// parts are allgathered. The communication volume equals one allreduce (which is a reduce-scatter
/// followed by an allgather), but each rank does 1/N of Adam's work, which is memory-bound and
/// otherwise repeated identically on every rank. Moments stay full-size on every rank (only this
/// rank's part is current) and are gathered before a checkpoint.
public final class ShardedAdam {
    public let adam: AdamState
    public let partition: Partition
    public let rank: Int

    public init(adam: AdamState, collective: Collective) {
        self.adam = adam
        rank = collective.rank
        partition = Partition(count: adam.m.count, parts: collective.size)
    }

    /// One step: reduce-scatter of the weight gradients (in place), Adam on this rank's part,
    /// allgather of the parameters.
    public func step(_ network: Network, collective: Collective, lr: Float) throws {
        let range = partition.range(rank)
        try collective.reduceScatterSum(network.gradients.all, partition: partition)
        let part = network.gradients.pointer + range.lowerBound
        network.writeExactGradients(into: part, range: range)
        adam.update(params: network.parameters.pointer, grads: part, range: range, lr: lr)
        try collective.allgather(network.parameters.all, partition: partition)
    }

    /// Makes the moments current on every rank (each rank's own part to all), for checkpoints.
    public func gatherMoments(collective: Collective) throws {
        try collective.allgather(adam.m.all, partition: partition)
        try collective.allgather(adam.v.all, partition: partition)
    }
}
