// Dense: the fully-connected layer y = x · W + b, forward and backward.
//
// Shapes are row-major: x [n × fanIn], W [fanIn × fanOut], b [fanOut], y [n × fanOut]. Products go
// through oneDNN (MatrixProduct), with the bias and the following ReLU fused into the forward
// product; only the bias gradient is a plain loop, summed in Double (see Network for why). These
// are free functions over raw pointers so the training step can run them on preallocated buffers;
// they allocate nothing once each shape's primitive exists.

/// y = x · W + b, and ReLU when `relu` (the hidden blocks' Dense → ReLU). x and W are Float, or
/// bfloat16 bit patterns (UInt16) for bf16 products; b and y are always Float.
public func denseForward<T: ProductOperand>(
    x: UnsafePointer<T>, rows n: Int, weight: UnsafePointer<T>, bias: UnsafePointer<Float>,
    fanIn: Int, fanOut: Int, relu: Bool = false, y: UnsafeMutablePointer<Float>
) {
    guard n > 0 else { return }
    MatrixEngine.shared.forward(x: x, rows: n, weight: weight, bias: bias, fanIn: fanIn, fanOut: fanOut, relu: relu, y: y)
}

/// Gradients of y = x · W + b given dy: dW = xᵀ · dy (overwritten), and dx = dy · Wᵀ when `dx` is
/// not nil (the first layer needs no input gradient). The bias gradient db = Σ_rows dy is summed in
/// Double with `columnSums` by the caller (see Network for why it must be Double). x, dy and W are
/// Float, or bfloat16 bit patterns (UInt16) for bf16 products; dW and dx are always Float.
public func denseBackward<T: ProductOperand>(
    x: UnsafePointer<T>, dy: UnsafePointer<T>, rows n: Int, weight: UnsafePointer<T>,
    fanIn: Int, fanOut: Int,
    dWeight: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?
) {
    guard n > 0 else {
        dWeight.update(repeating: 0, count: fanIn * fanOut)
        return
    }
    MatrixEngine.shared.weightGradient(x: x, dy: dy, rows: n, fanIn: fanIn, fanOut: fanOut, dWeight: dWeight)
    if let dx {
        MatrixEngine.shared.inputGradient(dy: dy, rows: n, weight: weight, fanIn: fanIn, fanOut: fanOut, dx: dx)
    }
}

/// out[j] = Σ_i m[i, j] accumulated in Double (overwrites out); with `grids`, exact in grid steps,
/// and the columns' largest |m[i, j]| merged into its maxima.
public func columnSums(_ m: UnsafePointer<Float>, rows: Int, width: Int, into out: UnsafeMutablePointer<Double>, grids: SumGrids? = nil) {
    parallelForColumns(width, rows: rows) { c in  // by columns: each column's rows summed in order
        for j in c { out[j] = 0 }
        for i in 0..<rows {
            let row = m + i * width
            if let grids {
                for j in c {
                    out[j] += gridSteps(Double(row[j]), grids.scale[j])
                    grids.maxima[j] = max(grids.maxima[j], Double(abs(row[j])))
                }
            } else {
                for j in c { out[j] += Double(row[j]) }
            }
        }
    }
}
