// Dense: the fully-connected layer y = x · W + b, forward and backward.
//
// Shapes are row-major: x [n × fanIn], W [fanIn × fanOut], b [fanOut], y [n × fanOut]. Products go
// through sgemm; only the bias work is a plain loop. These are free functions over raw pointers so
// the training step can run them on preallocated buffers; they allocate nothing.

/// y = x · W + b.
public func denseForward(
    x: UnsafePointer<Float>, rows n: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    fanIn: Int, fanOut: Int, y: UnsafeMutablePointer<Float>
) {
    guard n > 0 else { return }
    // Broadcast the bias into y, then let sgemm accumulate onto it (beta = 1): one pass over y.
    for i in 0..<n {
        (y + i * fanOut).update(from: bias, count: fanOut)
    }
    sgemm(transA: false, transB: false, m: n, n: fanOut, k: fanIn,
          alpha: 1, a: x, lda: fanIn, b: weight, ldb: fanOut, beta: 1, c: y, ldc: fanOut)
}

/// Gradients of y = x · W + b given dy: dW = xᵀ · dy (overwritten), and dx = dy · Wᵀ when `dx` is
/// not nil (the first layer needs no input gradient). The bias gradient db = Σ_rows dy is summed in
/// Double with `columnSums` by the caller (see Network for why it must be Double).
public func denseBackward(
    x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows n: Int, weight: UnsafePointer<Float>,
    fanIn: Int, fanOut: Int,
    dWeight: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?
) {
    guard n > 0 else {
        dWeight.update(repeating: 0, count: fanIn * fanOut)
        return
    }
    sgemm(transA: true, transB: false, m: fanIn, n: fanOut, k: n,
          alpha: 1, a: x, lda: fanIn, b: dy, ldb: fanOut, beta: 0, c: dWeight, ldc: fanOut)
    if let dx {
        sgemm(transA: false, transB: true, m: n, n: fanIn, k: fanOut,
              alpha: 1, a: dy, lda: fanOut, b: weight, ldb: fanOut, beta: 0, c: dx, ldc: fanIn)
    }
}

/// out[j] = Σ_i m[i, j] accumulated in Double (overwrites out).
public func columnSums(_ m: UnsafePointer<Float>, rows: Int, width: Int, into out: UnsafeMutablePointer<Double>) {
    out.update(repeating: 0, count: width)
    for i in 0..<rows {
        let row = m + i * width
        for j in 0..<width { out[j] += Double(row[j]) }
    }
}
