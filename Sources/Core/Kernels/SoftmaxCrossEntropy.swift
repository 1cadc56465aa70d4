// SoftmaxCrossEntropy: the classifier loss, its gradient, and the predictions it implies.
//
// loss_i = log Σ_c exp(z_ic) − z_i,y computed with the row maximum subtracted, so logits of ±1e4
// neither overflow nor lose the loss. (The seed computes −log(softmax + 1e-8), which caps each loss
// near 18.4 but has the same gradient, softmax − onehot, away from saturation; we keep the exact
// log-sum-exp, whose gradient the seed's backward pass already is.) The gradient is scaled by
// `gradScale`, 1 / global batch size, so that per-rank gradients sum to the global-batch mean.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sum of losses and count of correct predictions over a block of rows.
public struct LossTally: Equatable, Sendable {
    public var lossSum: Double = 0
    public var correct: Int = 0
    public init(lossSum: Double = 0, correct: Int = 0) {
        self.lossSum = lossSum
        self.correct = correct
    }
}

/// Computes the loss of each row of `logits` [rows × classes] against `labels`; writes the gradient
/// (softmax − target) · gradScale into `dLogits` when it is not nil, and each row's predicted class
/// (first maximum, as argmax) into `predictions` when it is not nil, and each row's loss into
/// `rowLosses` when it is not nil (for sums that must not depend on how rows are split).
///
/// With label smoothing ε the target is (1 − ε) · onehot + ε / classes, and the loss is the
/// cross-entropy against it: (1 − ε) · (lse − z_y) + ε · (lse − mean_c z_c).
public func softmaxCrossEntropy(
    logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int, classes: Int,
    gradScale: Float, dLogits: UnsafeMutablePointer<Float>?, predictions: UnsafeMutablePointer<Int32>?,
    smoothing: Float = 0, rowLosses: UnsafeMutablePointer<Double>? = nil
) -> LossTally {
    var tally = LossTally()
    for i in 0..<rows {
        let z = logits + i * classes
        var best = 0
        for c in 1..<classes where z[c] > z[best] { best = c }
        let zmax = z[best]
        var sum = 0.0
        // The exponentials are kept in the gradient's row (when there is one), so each is computed once.
        if let d = dLogits.map({ $0 + i * classes }) {
            for c in 0..<classes {
                d[c] = expf(z[c] - zmax)
                sum += Double(d[c])
            }
        } else {
            for c in 0..<classes { sum += Double(expf(z[c] - zmax)) }
        }
        let y = Int(labels[i])
        // log Σ exp(z − max) + max − z_y, formed so no large terms cancel.
        let nll = log(sum) + Double(zmax - z[y])
        var loss = nll
        if smoothing > 0 {
            var mean = 0.0
            for c in 0..<classes { mean += Double(zmax - z[c]) }
            loss = Double(1 - smoothing) * nll + Double(smoothing) * (log(sum) + mean / Double(classes))
        }
        tally.lossSum += loss
        rowLosses?[i] = loss
        if best == y { tally.correct += 1 }
        predictions?[i] = Int32(best)
        if let dLogits {
            let d = dLogits + i * classes
            let inv = 1.0 / sum
            let (on, off) = (1 - smoothing + smoothing / Float(classes), smoothing / Float(classes))
            for c in 0..<classes {
                let p = Float(Double(d[c]) * inv)
                d[c] = (p - (c == y ? on : off)) * gradScale
            }
        }
    }
    return tally
}
