// Adam: the optimiser, in the standard form and in the seed's form.
//
// Both keep first and second moments m, v of every parameter (β1 = 0.9, β2 = 0.999, ε = 1e-8):
//   m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²
//   standard (`adam`):      p ← p − lr · m̂ / (√v̂ + ε),  m̂ = m / (1−β1^t), v̂ = v / (1−β2^t)
//   seed (`adam-seed`):     p ← p − lr · m / (√v + ε)   (the notebook's update; no bias correction)
//   and with weight decay λ (AdamW), p ← p · (1 − lr·λ) first, for the Dense weights only
// One loop over the flat parameter buffer (or a rank's part of it, see ShardedAdam); identical on
// every rank because the gradients are.
import Foundation
import Kernels

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
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float,
                       weightDecay: Float = 0, decayed: [Range<Int>] = [], bf16Copy: UnsafeMutablePointer<UInt16>? = nil) {
        update(params: params, grads: grads, range: 0..<m.count, lr: lr, weightDecay: weightDecay, decayed: decayed, bf16Copy: bf16Copy)
    }

    /// Applies one update with learning rate `lr` to parameters `range` only: `params` is the whole
    /// parameter buffer, `grads[i]` is the gradient of parameter `range.lowerBound + i`. Each rank
    /// of a sharded step updates its own range (see ShardedAdam).
    ///
    /// With `weightDecay` > 0 (AdamW), the parameters in `decayed` (the Dense weights) first shrink
    /// by lr · weightDecay, decoupled from the gradient as Loshchilov & Hutter and PyTorch's AdamW do.
    /// With `bf16Copy` (the whole buffer's bfloat16 copy, bf16 precision), each updated parameter is
    /// also written there, rounded as `convertToBF16` does, while it is at hand: a separate pass
    /// would read all the parameters again.
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, range: Range<Int>, lr: Float,
                       weightDecay: Float = 0, decayed: [Range<Int>] = [], bf16Copy: UnsafeMutablePointer<UInt16>? = nil) {
        precondition(range.lowerBound >= 0 && range.upperBound <= m.count)
        step += 1
        if weightDecay > 0 {
            let shrink = 1 - lr * weightDecay
            for d in decayed {
                let part = d.clamped(to: range)
                for i in part { params[i] *= shrink }
            }
        }
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
        // The Adam loop on its own, for the compiler to vectorise: over `part`, or with a bf16 copy
        // over blocks of it small enough to stay in the nearest cache, each converted right after.
        func adam(_ part: Range<Int>) {
            for i in part {
                let g = grads[i]
                let mi = b1 * mp[i] + c1 * g
                let vi = b2 * vp[i] + c2 * (g * g)
                mp[i] = mi
                vp[i] = vi
                p[i] -= stepSize * mi / (vi.squareRoot() + epsHat)
            }
        }
        if let bf16Copy {
            let copy = bf16Copy + range.lowerBound
            parallelFor(range.count, work: 4 * range.count) { part in
                forEachBlock(of: part) { block in
                    adam(block)
                    for i in block { copy[i] = bf16Bits(p[i]) }
                }
            }
            return
        }
        // Memory-bound: split across the compute threads (each element's arithmetic is the same).
        parallelFor(range.count, work: 4 * range.count) { part in adam(part) }
    }
}
