// BatchNorm: per-feature batch normalisation with a learnable scale and shift, as in the seed.
//
// Training: y = γ · (a − μ_B) / √(σ²_B + ε) + β with the batch mean and biased variance; the
// running statistics move as r ← m · r + (1 − m) · batch statistic (momentum m = 0.9, ε = 1e-7).
// Inference uses the running statistics instead.
//
// The kernels are split at the points where a data-parallel run must communicate: the per-feature
// sums (Σa, Σa² forward; Σdy, Σdy·x̂ backward) are computed locally, may then be summed across ranks
// (SyncBatchNorm) and are only then turned into moments or input gradients. Sums are in Double so
// the one-pass variance E[a²] − E[a]² loses nothing that matters in Float32 results.

/// The seed's BatchNorm constants.
public enum BatchNormConstants {
    public static let momentum: Float = 0.9
    public static let epsilon: Double = 1e-7
}

// MARK: - Forward

/// Local per-feature sums of a [rows × width] matrix: sums[j] = Σ a[i,j], sums[width + j] = Σ a[i,j]².
public func batchNormSums(_ a: UnsafePointer<Float>, rows: Int, width: Int, into sums: UnsafeMutablePointer<Double>) {
    sums.update(repeating: 0, count: 2 * width)
    let sq = sums + width
    for i in 0..<rows {
        let row = a + i * width
        for j in 0..<width {
            let v = Double(row[j])
            sums[j] += v
            sq[j] += v * v
        }
    }
}

/// Batch mean, biased variance and 1/√(variance + ε) from sums over `count` rows.
public func batchNormMoments(
    sums: UnsafePointer<Double>, count: Int, width: Int,
    mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>, invStd: UnsafeMutablePointer<Float>
) {
    let inv = 1.0 / Double(count)
    for j in 0..<width {
        let mu = sums[j] * inv
        let v = max(sums[width + j] * inv - mu * mu, 0)
        mean[j] = Float(mu)
        variance[j] = Float(v)
        invStd[j] = Float(1.0 / (v + BatchNormConstants.epsilon).squareRoot())
    }
}

/// x̂ = (a − mean) · invStd and y = scale · x̂ + shift. `xhat` may be nil (inference keeps no cache).
public func batchNormNormalize(
    _ a: UnsafePointer<Float>, rows: Int, width: Int,
    mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
    scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
    xhat: UnsafeMutablePointer<Float>?, y: UnsafeMutablePointer<Float>
) {
    for i in 0..<rows {
        let (ai, yi) = (a + i * width, y + i * width)
        if let xhat {
            let xi = xhat + i * width
            for j in 0..<width {
                let h = (ai[j] - mean[j]) * invStd[j]
                xi[j] = h
                yi[j] = scale[j] * h + shift[j]
            }
        } else {
            for j in 0..<width { yi[j] = scale[j] * ((ai[j] - mean[j]) * invStd[j]) + shift[j] }
        }
    }
}

/// Inference-mode moments: mean = running mean, invStd = 1/√(running variance + ε).
public func batchNormInferenceMoments(
    runningMean: UnsafePointer<Float>, runningVariance: UnsafePointer<Float>, width: Int,
    mean: UnsafeMutablePointer<Float>, invStd: UnsafeMutablePointer<Float>
) {
    for j in 0..<width {
        mean[j] = runningMean[j]
        invStd[j] = Float(1.0 / (Double(runningVariance[j]) + BatchNormConstants.epsilon).squareRoot())
    }
}

/// r ← m · r + (1 − m) · batch value, for the running mean and variance.
public func batchNormUpdateRunning(
    runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
    mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, width: Int,
    momentum: Float = BatchNormConstants.momentum
) {
    for j in 0..<width {
        runningMean[j] = momentum * runningMean[j] + (1 - momentum) * mean[j]
        runningVariance[j] = momentum * runningVariance[j] + (1 - momentum) * variance[j]
    }
}

// MARK: - Backward

/// Local per-feature sums for the backward pass: sums[j] = Σ dy[i,j] (= dβ) and
/// sums[width + j] = Σ dy[i,j] · x̂[i,j] (= dγ).
public func batchNormGradientSums(
    _ dy: UnsafePointer<Float>, xhat: UnsafePointer<Float>, rows: Int, width: Int,
    into sums: UnsafeMutablePointer<Double>
) {
    sums.update(repeating: 0, count: 2 * width)
    let sdx = sums + width
    for i in 0..<rows {
        let (di, xi) = (dy + i * width, xhat + i * width)
        for j in 0..<width {
            sums[j] += Double(di[j])
            sdx[j] += Double(di[j] * xi[j])
        }
    }
}

/// dx = γ · invStd · (dy − Σdy / N − x̂ · Σ(dy·x̂) / N), in place on `grad` (dy in, dx out), where the
/// sums run over all N rows that were normalised together (`count`; across ranks for SyncBatchNorm).
/// This is the seed's dvar/dmu chain of rule applications, simplified algebraically.
public func batchNormBackwardInput(
    _ grad: UnsafeMutablePointer<Float>, xhat: UnsafePointer<Float>, rows: Int, width: Int,
    scale: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
    sums: UnsafePointer<Double>, count: Int, coefficients: UnsafeMutablePointer<Float>
) {
    // Per feature: dx = k · dy − c0 − c1 · x̂ with k = γ·invStd, c0 = k·Σdy/N, c1 = k·Σdy·x̂/N.
    let k = coefficients, c0 = coefficients + width, c1 = coefficients + 2 * width
    let inv = 1.0 / Double(count)
    for j in 0..<width {
        let kj = Double(scale[j]) * Double(invStd[j])
        k[j] = Float(kj)
        c0[j] = Float(kj * sums[j] * inv)
        c1[j] = Float(kj * sums[width + j] * inv)
    }
    for i in 0..<rows {
        let (gi, xi) = (grad + i * width, xhat + i * width)
        for j in 0..<width { gi[j] = k[j] * gi[j] - c0[j] - c1[j] * xi[j] }
    }
}
