// BatchNorm: per-feature batch normalisation with a learnable scale and shift, as in the seed.
//
// Training: y = γ · (a − μ_B) / √(σ²_B + ε) + β with the batch mean and biased variance; the
// running statistics move as r ← m · r + (1 − m) · batch statistic (momentum m = 0.9, ε = 1e-7).
// Inference uses the running statistics instead.
//
// The kernels are split at the points where a data-parallel run must communicate: the per-feature
// sums (Σa, Σa² forward; Σdy, Σdy·x̂ backward) are computed locally, may then be summed across ranks
// (SyncBatchNorm) and are only then turned into moments or input gradients. Sums are in Double so
// the one-pass variance E[a²] − E[a]² loses nothing that matters in Float32 results; given grids
// (ExactSum.swift) they are exact, so that they do not depend on how the rows were split.
//
// The passes over a block's activations are fused where the data is the same: the ReLU active
// counts with the forward sums, dropout with normalisation (forward) and with the gradient sums
// (backward), and the ReLU gradient and the Dense bias gradient with the input gradient. (The ReLU
// itself is fused into the Dense product, a oneDNN post-op.)

/// The seed's BatchNorm constants.
public enum BatchNormConstants {
    public static let momentum: Float = 0.9
    public static let epsilon: Double = 1e-7
}

// MARK: - Forward

/// Per-column grids of exact row sums (ExactSum.swift): `scale[j]` turns a term into grid steps.
/// A kernel given grids writes sums in grid steps and each column's largest |term| into `maxima`
/// (merged: the caller zeroes it); without, it writes plain Double sums.
///
/// With `partials` (room for `partialCapacity` Doubles) and several compute threads, a kernel splits
/// its rows among the threads, each summing its rows into a block of its own, and adds the blocks
/// afterwards: exact, because every partial sum of grid steps is, and maxima do not depend on order.
/// (Splitting by columns instead, one thread per column, measured slower than one thread at Model
/// 2's sizes; see Parallel.swift.)
public struct SumGrids {
    public var scale: UnsafePointer<Double>
    public var maxima: UnsafeMutablePointer<Double>
    public var partials: UnsafeMutablePointer<Double>?
    public var partialCapacity: Int
    public init(scale: UnsafePointer<Double>, maxima: UnsafeMutablePointer<Double>,
                partials: UnsafeMutablePointer<Double>? = nil, partialCapacity: Int = 0) {
        self.scale = scale
        self.maxima = maxima
        self.partials = partials
        self.partialCapacity = partialCapacity
    }

    /// The threads a row split of `work` element operations with blocks of `block` Doubles may use
    /// (1: no row split).
    func rowSplitThreads(work: Int, block: Int) -> Int {
        guard partials != nil else { return 1 }
        return min(parallelThreads(work: work), partialCapacity / block)
    }

    /// Runs `pass(rows, block)` over `rows` split among `threads` threads, each with a zeroed block of
    /// `block` Doubles of `partials` (blocks of threads given no rows stay zero).
    func rowSplit(rows: Int, threads: Int, block: Int, _ pass: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) {
        let partials = partials!
        partials.update(repeating: 0, count: threads * block)
        parallelParts(rows, grain: 1, threads: threads) { part, t in pass(part, partials + t * block) }
    }

    /// Every block's `count` values at `offset`, summed (or with `maximum`, merged by max) into `out`
    /// (sums overwrite `out`; maxima merge into it).
    func combine(threads: Int, block: Int, offset: Int, count: Int, into out: UnsafeMutablePointer<Double>, maximum: Bool = false) {
        let partials = partials!
        if !maximum { out.update(repeating: 0, count: count) }
        for t in 0..<threads {
            let b = partials + t * block + offset
            if maximum {
                for j in 0..<count { out[j] = max(out[j], b[j]) }
            } else {
                for j in 0..<count { out[j] += b[j] }
            }
        }
    }
}

/// Local per-feature sums of a [rows × width] matrix: sums[j] = Σ a[i,j], sums[width + j] = Σ a[i,j]²,
/// and activeCounts[j] = the number of rows with a[i,j] > 0 (in the same pass; see Network for why
/// the count of active ReLU units matters). With `grids` (2 × width scales: Σa's, then Σa²'s) the
/// sums are exact, in grid steps, and `grids.maxima[j]` gets the largest |a[i,j]| (Σa²'s maximum is
/// its square).
public func batchNormSums(_ a: UnsafePointer<Float>, rows: Int, width: Int, into sums: UnsafeMutablePointer<Double>,
                          activeCounts: UnsafeMutablePointer<Double>? = nil, grids: SumGrids? = nil) {
    let w = width
    if let grids, case let threads = grids.rowSplitThreads(work: rows * w, block: 4 * w), threads > 1 {
        // Block: Σa, Σa² (2w), active counts (w), maxima (w).
        grids.rowSplit(rows: rows, threads: threads, block: 4 * w) { part, block in
            batchNormSums(a + part.lowerBound * w, rows: part.count, width: w, columns: 0..<w, into: block,
                          activeCounts: block + 2 * w, grids: SumGrids(scale: grids.scale, maxima: block + 3 * w))
        }
        grids.combine(threads: threads, block: 4 * w, offset: 0, count: 2 * w, into: sums)
        if let activeCounts { grids.combine(threads: threads, block: 4 * w, offset: 2 * w, count: w, into: activeCounts) }
        grids.combine(threads: threads, block: 4 * w, offset: 3 * w, count: w, into: grids.maxima, maximum: true)
        return
    }
    // Split by columns: each column's rows are summed in order by one thread, whatever the count.
    parallelForColumns(width, rows: rows) { columns in
        batchNormSums(a, rows: rows, width: width, columns: columns, into: sums, activeCounts: activeCounts, grids: grids)
    }
}

/// `batchNormSums` of columns `c` only.
private func batchNormSums(_ a: UnsafePointer<Float>, rows: Int, width: Int, columns c: Range<Int>, into sums: UnsafeMutablePointer<Double>,
                           activeCounts: UnsafeMutablePointer<Double>?, grids: SumGrids?) {
    let sq = sums + width
    for j in c { (sums[j], sq[j]) = (0, 0) }
    if let counts = activeCounts { for j in c { counts[j] = 0 } }
    var first = 0
    if let grids {
        // Four rows at a time: grid steps add exactly in any order, so a column's four terms are
        // added among themselves first and its accumulators are read and written once per four
        // rows (those loads and stores, not the arithmetic, set the pace of the one-row loop).
        let (s1, s2, m) = (grids.scale, grids.scale + width, grids.maxima)
        while first + 4 <= rows {
            let r0 = a + first * width
            let (r1, r2, r3) = (r0 + width, r0 + 2 * width, r0 + 3 * width)
            for j in c {
                let (v0, v1, v2, v3) = (Double(r0[j]), Double(r1[j]), Double(r2[j]), Double(r3[j]))
                sums[j] += gridSteps(v0, v1, v2, v3, s1[j])
                sq[j] += gridSteps(v0 * v0, v1 * v1, v2 * v2, v3 * v3, s2[j])
                m[j] = max(m[j], largestMagnitude(v0, v1, v2, v3))
            }
            if let counts = activeCounts {
                for j in c { counts[j] += ((r0[j] > 0 ? 1 : 0) + (r1[j] > 0 ? 1 : 0)) + ((r2[j] > 0 ? 1 : 0) + (r3[j] > 0 ? 1 : 0)) }
            }
            first += 4
        }
    }
    for i in first..<rows {
        let row = a + i * width
        if let grids {
            let (s1, s2, m) = (grids.scale, grids.scale + width, grids.maxima)
            for j in c {
                let v = Double(row[j])
                sums[j] += gridSteps(v, s1[j])
                sq[j] += gridSteps(v * v, s2[j])
                m[j] = max(m[j], abs(v))
            }
        } else {
            for j in c {
                let v = Double(row[j])
                sums[j] += v
                sq[j] += v * v
            }
        }
        if let counts = activeCounts {
            for j in c { counts[j] += row[j] > 0 ? 1 : 0 }
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

/// x̂ = (a − mean) · invStd and y = scale · x̂ + shift, times `mask` when given (dropout, fused into
/// the same pass). `xhat` may be nil (inference keeps no cache).
public func batchNormNormalize(
    _ a: UnsafePointer<Float>, rows: Int, width: Int,
    mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
    scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
    xhat: UnsafeMutablePointer<Float>?, y: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>? = nil
) {
    parallelFor(rows, grain: 4, work: rows * width) { part in
        for i in part {
            let (ai, yi) = (a + i * width, y + i * width)
            if let xhat, let mask {
                let (xi, mi) = (xhat + i * width, mask + i * width)
                for j in 0..<width {
                    let h = (ai[j] - mean[j]) * invStd[j]
                    xi[j] = h
                    yi[j] = (scale[j] * h + shift[j]) * mi[j]
                }
            } else if let xhat {
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
/// sums[width + j] = Σ dy[i,j] · x̂[i,j] (= dγ). With `mask` (dropout), dy is first multiplied by
/// it, in place, in the same pass: the gradient through dropout is the mask times the gradient.
/// With `grids` (2 × width scales, 2 × width maxima: |dy|'s, then |dy·x̂|'s) the sums are exact, in
/// grid steps.
public func batchNormGradientSums(
    _ dy: UnsafeMutablePointer<Float>, xhat: UnsafePointer<Float>, rows: Int, width: Int,
    into sums: UnsafeMutablePointer<Double>, mask: UnsafePointer<Float>? = nil, grids: SumGrids? = nil
) {
    let w = width
    if let grids, case let threads = grids.rowSplitThreads(work: rows * w, block: 4 * w), threads > 1 {
        // Block: Σdy, Σdy·x̂ (2w), then their maxima (2w).
        grids.rowSplit(rows: rows, threads: threads, block: 4 * w) { part, block in
            let o = part.lowerBound * w
            batchNormGradientSums(dy + o, xhat: xhat + o, rows: part.count, width: w, columns: 0..<w, into: block,
                                  mask: mask.map { $0 + o }, grids: SumGrids(scale: grids.scale, maxima: block + 2 * w))
        }
        grids.combine(threads: threads, block: 4 * w, offset: 0, count: 2 * w, into: sums)
        grids.combine(threads: threads, block: 4 * w, offset: 2 * w, count: 2 * w, into: grids.maxima, maximum: true)
        return
    }
    parallelForColumns(width, rows: rows) { columns in
        batchNormGradientSums(dy, xhat: xhat, rows: rows, width: width, columns: columns, into: sums, mask: mask, grids: grids)
    }
}

/// `batchNormGradientSums` of columns `c` only.
private func batchNormGradientSums(
    _ dy: UnsafeMutablePointer<Float>, xhat: UnsafePointer<Float>, rows: Int, width: Int, columns c: Range<Int>,
    into sums: UnsafeMutablePointer<Double>, mask: UnsafePointer<Float>?, grids: SumGrids?
) {
    let sdx = sums + width
    for j in c { (sums[j], sdx[j]) = (0, 0) }
    var first = 0
    if let grids {
        // Four rows at a time, as in batchNormSums (exact in any order; a quarter of the
        // accumulators' loads and stores).
        let (s1, s2, m1, m2) = (grids.scale, grids.scale + width, grids.maxima, grids.maxima + width)
        while first + 4 <= rows {
            let (d0, x0) = (dy + first * width, xhat + first * width)
            if let mask {
                let m0 = mask + first * width
                for r in 0..<4 {
                    let (dr, mr) = (d0 + r * width, m0 + r * width)
                    for j in c { dr[j] *= mr[j] }
                }
            }
            let (d1, d2, d3) = (d0 + width, d0 + 2 * width, d0 + 3 * width)
            let (x1, x2, x3) = (x0 + width, x0 + 2 * width, x0 + 3 * width)
            for j in c {
                let (a0, a1, a2, a3) = (Double(d0[j]), Double(d1[j]), Double(d2[j]), Double(d3[j]))
                let (b0, b1) = (Double(d0[j] * x0[j]), Double(d1[j] * x1[j]))
                let (b2, b3) = (Double(d2[j] * x2[j]), Double(d3[j] * x3[j]))
                sums[j] += gridSteps(a0, a1, a2, a3, s1[j])
                sdx[j] += gridSteps(b0, b1, b2, b3, s2[j])
                m1[j] = max(m1[j], largestMagnitude(a0, a1, a2, a3))
                m2[j] = max(m2[j], largestMagnitude(b0, b1, b2, b3))
            }
            first += 4
        }
    }
    for i in first..<rows {
        let (di, xi) = (dy + i * width, xhat + i * width)
        if let mask {
            let mi = mask + i * width
            for j in c { di[j] *= mi[j] }
        }
        if let grids {
            let (s1, s2, m1, m2) = (grids.scale, grids.scale + width, grids.maxima, grids.maxima + width)
            for j in c {
                let (d, dx) = (Double(di[j]), Double(di[j] * xi[j]))
                sums[j] += gridSteps(d, s1[j])
                sdx[j] += gridSteps(dx, s2[j])
                m1[j] = max(m1[j], abs(d))
                m2[j] = max(m2[j], abs(dx))
            }
        } else {
            for j in c {
                sums[j] += Double(di[j])
                sdx[j] += Double(di[j] * xi[j])
            }
        }
    }
}

/// dx = γ · invStd · (dy − Σdy / N − x̂ · Σ(dy·x̂) / N), in place on `grad` (dy in, dx out), where the
/// sums run over all N rows that were normalised together (`count`; across ranks for SyncBatchNorm).
/// This is the seed's dvar/dmu chain of rule applications, simplified algebraically.
///
/// Fused into the same pass when given: the gradient through the ReLU before BatchNorm (zero where
/// its output `reluOutput` was not positive; a > 0 exactly where the pre-activation was), and the
/// Double column sums of the result into `biasGradient` (the gradient of the Dense bias under it;
/// with `biasGrids`, exact in grid steps, and the columns' largest |result| into its maxima).
public func batchNormBackwardInput(
    _ grad: UnsafeMutablePointer<Float>, xhat: UnsafePointer<Float>, rows: Int, width: Int,
    scale: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
    sums: UnsafePointer<Double>, count: Int, coefficients: UnsafeMutablePointer<Float>,
    reluOutput: UnsafePointer<Float>? = nil, biasGradient: UnsafeMutablePointer<Double>? = nil, biasGrids: SumGrids? = nil
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
    let coefficients = UnsafePointer(coefficients)
    let w = width
    if let grids = biasGrids, let db = biasGradient, reluOutput != nil,
       case let threads = grids.rowSplitThreads(work: rows * w, block: 2 * w), threads > 1 {
        // Block: the bias gradient's grid steps (w), then its maxima (w).
        grids.rowSplit(rows: rows, threads: threads, block: 2 * w) { part, block in
            let o = part.lowerBound * w
            batchNormBackwardInput(grad + o, xhat: xhat + o, rows: part.count, width: w, columns: 0..<w, coefficients: coefficients,
                                   reluOutput: reluOutput.map { $0 + o }, biasGradient: block,
                                   biasGrids: SumGrids(scale: grids.scale, maxima: block + w))
        }
        grids.combine(threads: threads, block: 2 * w, offset: 0, count: w, into: db)
        grids.combine(threads: threads, block: 2 * w, offset: w, count: w, into: grids.maxima, maximum: true)
        return
    }
    parallelForColumns(width, rows: rows) { columns in
        batchNormBackwardInput(grad, xhat: xhat, rows: rows, width: width, columns: columns, coefficients: coefficients,
                               reluOutput: reluOutput, biasGradient: biasGradient, biasGrids: biasGrids)
    }
}

/// `batchNormBackwardInput`'s pass over the rows, for columns `c` only, given the coefficients.
private func batchNormBackwardInput(
    _ grad: UnsafeMutablePointer<Float>, xhat: UnsafePointer<Float>, rows: Int, width: Int, columns c: Range<Int>,
    coefficients: UnsafePointer<Float>, reluOutput: UnsafePointer<Float>?, biasGradient: UnsafeMutablePointer<Double>?,
    biasGrids: SumGrids?
) {
    let k = coefficients, c0 = coefficients + width, c1 = coefficients + 2 * width
    if let db = biasGradient { for j in c { db[j] = 0 } }
    var first = 0
    if let a = reluOutput, let db = biasGradient, let grids = biasGrids {
        // Four rows at a time, as in batchNormSums (exact in any order; a quarter of the
        // accumulators' loads and stores).
        let (scale, maxima) = (grids.scale, grids.maxima)
        while first + 4 <= rows {
            // The four rows' gradients first (one simple loop per row vectorises; one loop over
            // all four rows' arrays does not), then their sums from the nearest cache.
            for r in first..<(first + 4) {
                let (gi, xi, ai) = (grad + r * width, xhat + r * width, a + r * width)
                for j in c { gi[j] = ai[j] > 0 ? k[j] * gi[j] - c0[j] - c1[j] * xi[j] : 0 }
            }
            let g0 = UnsafePointer(grad + first * width)
            let (g1, g2, g3) = (g0 + width, g0 + 2 * width, g0 + 3 * width)
            for j in c {
                let (e0, e1, e2, e3) = (Double(g0[j]), Double(g1[j]), Double(g2[j]), Double(g3[j]))
                db[j] += gridSteps(e0, e1, e2, e3, scale[j])
                maxima[j] = max(maxima[j], largestMagnitude(e0, e1, e2, e3))
            }
            first += 4
        }
    }
    for i in first..<rows {
        let (gi, xi) = (grad + i * width, xhat + i * width)
        if let a = reluOutput, let db = biasGradient, let grids = biasGrids {
            let ai = a + i * width
            for j in c {
                let g = ai[j] > 0 ? k[j] * gi[j] - c0[j] - c1[j] * xi[j] : 0
                gi[j] = g
                db[j] += gridSteps(Double(g), grids.scale[j])
                grids.maxima[j] = max(grids.maxima[j], Double(abs(g)))
            }
        } else if let a = reluOutput, let db = biasGradient {
            let ai = a + i * width
            for j in c {
                let g = ai[j] > 0 ? k[j] * gi[j] - c0[j] - c1[j] * xi[j] : 0
                gi[j] = g
                db[j] += Double(g)
            }
        } else {
            for j in c { gi[j] = k[j] * gi[j] - c0[j] - c1[j] * xi[j] }
        }
    }
}
