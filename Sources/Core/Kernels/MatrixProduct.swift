// Blas: the matrix products of the network, through OpenBLAS's cblas_sgemm.
//
// Every matrix here is row-major and dense. This file only adapts the CBLAS calling convention
// to the three products a dense layer needs; it is not a general linear-algebra layer.
import CBLAS

/// C = alpha · op(A) · op(B) + beta · C, row-major; op(X) is X or Xᵀ.
///
/// `m × k` times `k × n` gives `m × n` (sizes after the transposes); `lda`, `ldb`, `ldc` are the row
/// strides of the stored matrices.
public func sgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    // OpenBLAS's idle worker threads go to sleep between products, and waking them when the next
    // product is dispatched costs more than the small products of this network take. Announcing the
    // thread count again wakes them first (measured with 2 threads on 2 cores: 3.9 → 2.2 s per
    // epoch of Model 2). With one thread there is nothing to wake.
    if configuredThreads > 1 { openblas_set_num_threads(configuredThreads) }
    cblas_sgemm(
        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Sets the number of threads OpenBLAS uses for each product (at least 1).
///
/// Under mpirun every rank gets its share of the node's cores; oversubscribing cores with BLAS
/// threads makes every rank slower, and the slowest rank sets the pace of each allreduce.
public func setBlasThreads(_ n: Int) {
    configuredThreads = Int32(max(1, n))
    openblas_set_num_threads(configuredThreads)
}

/// The thread count set by `setBlasThreads`: written once at start-up, before any product.
nonisolated(unsafe) private var configuredThreads: Int32 = 1
