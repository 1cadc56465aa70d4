// MatrixProduct: the network's matrix products, through oneDNN's matmul primitive.
//
// A dense layer needs three products, all row-major: forward y = act(x·W + b) (bias and ReLU fused
// into the product as oneDNN post-ops), weight gradient dW = xᵀ·dy, input gradient dx = dy·Wᵀ.
// Each distinct shape gets one oneDNN primitive, created on first use and kept (a training run
// meets a handful: the shard's rows, the evaluation chunk and its remainder). oneDNN's kernels
// (brgemm on AVX-512 and AVX2) compute every output row the same way whatever the row count of the
// call and the thread count, bitwise, so a sample's forward pass does not depend on how the batch
// was split, and a single process gives the same numbers with 1 or 2 threads.
//
// This file owns oneDNN's engine, stream and primitives; it is not a tensor library. Threads are
// OpenMP's (oneDNN is built on libgomp): `setComputeThreads` sets them for the whole process.
import CDNNL
import CoreSupport
import Foundation

/// Number format of the matrix products.
public enum ProductPrecision: String, Codable, CaseIterable, Sendable {
    /// float32 throughout.
    case fp32
    /// bfloat16 inputs and weights with float32 accumulation and results, float32 master weights
    /// and everything else (as PyTorch's CPU autocast); needs a CPU with AVX512_BF16 or AMX.
    case bf16
}

extension ProductPrecision {
    /// Throws one line when this CPU cannot compute in this precision (bf16 needs AVX512_BF16 or AMX).
    public func checkSupported() throws {
        if self == .bf16 && !cpuHasBF16 {
            throw SettingError("precision", "bf16: this CPU has no bf16 arithmetic (AVX512_BF16 or AMX; oneDNN finds \(cpuInstructionSet())); use fp32")
        }
    }
}

/// An element type the products read: Float (fp32), or UInt16 holding bfloat16 bit patterns.
public protocol ProductOperand { static var precision: ProductPrecision { get } }
extension Float: ProductOperand { public static var precision: ProductPrecision { .fp32 } }
/// UInt16 buffers handed to the products hold bfloat16 bit patterns (see `convertToBF16`).
extension UInt16: ProductOperand { public static var precision: ProductPrecision { .bf16 } }

/// Which product of a dense layer.
public enum ProductKind: Hashable, Sendable {
    /// y = x · W + b, then ReLU if `relu`.
    case forward(relu: Bool)
    /// dW = xᵀ · dy.
    case weightGradient
    /// dx = dy · Wᵀ.
    case inputGradient
}

/// One oneDNN matmul primitive with its memory objects; a call points them at the caller's buffers.
final class MatmulPrimitive {
    private let primitive: dnnl_primitive_t
    private let memories: [dnnl_memory_t]
    private var arguments: [dnnl_exec_arg_t]

    /// `descriptors`: (argument, dims, strides) of src, weights, [bias,] dst; src and weights are of
    /// `precision`, bias and dst always f32.
    init(engine: dnnl_engine_t, descriptors: [(Int32, [Int64], [Int64])], relu: Bool, precision: ProductPrecision) {
        let operandType = precision == .bf16 ? dnnl_bf16 : dnnl_f32
        var mds = descriptors.map { argument, dims, strides -> dnnl_memory_desc_t in
            var md = dnnl_memory_desc_t()
            let type = argument == DNNL_ARG_SRC || argument == DNNL_ARG_WEIGHTS ? operandType : dnnl_f32
            MatmulPrimitive.check(dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), dims, type, strides), "memory descriptor")
            return md
        }
        var desc = dnnl_matmul_desc_t()
        let hasBias = descriptors.count == 4
        mds.withUnsafeMutableBufferPointer { md in
            let base = md.baseAddress!
            MatmulPrimitive.check(dnnl_matmul_desc_init(&desc, base, base + 1, hasBias ? base + 2 : nil, base + md.count - 1), "matmul descriptor")
        }
        var attr: dnnl_primitive_attr_t?
        MatmulPrimitive.check(dnnl_primitive_attr_create(&attr), "attributes")
        defer { dnnl_primitive_attr_destroy(attr) }
        if relu {
            var ops: dnnl_post_ops_t?
            MatmulPrimitive.check(dnnl_post_ops_create(&ops), "post-ops")
            MatmulPrimitive.check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "ReLU post-op")
            MatmulPrimitive.check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops")
            dnnl_post_ops_destroy(ops)
        }
        var pd: dnnl_primitive_desc_t?
        MatmulPrimitive.check(dnnl_primitive_desc_create(&pd, &desc, attr, engine, nil), "matmul primitive descriptor")
        defer { dnnl_primitive_desc_destroy(pd) }
        var p: dnnl_primitive_t?
        MatmulPrimitive.check(dnnl_primitive_create(&p, pd), "matmul primitive")
        primitive = p!
        memories = mds.indices.map { i in
            var m: dnnl_memory_t?
            MatmulPrimitive.check(dnnl_memory_create(&m, &mds[i], engine, nil), "memory object")
            return m!
        }
        arguments = zip(descriptors, memories).map { dnnl_exec_arg_t(arg: $0.0, memory: $1) }
    }

    deinit {
        memories.forEach { dnnl_memory_destroy($0) }
        dnnl_primitive_destroy(primitive)
    }

    /// Runs the product on `buffers` (in the order of the descriptors) and waits for it.
    func run(_ buffers: UnsafeRawPointer?..., stream: dnnl_stream_t) {
        for (memory, buffer) in zip(memories, buffers) {
            MatmulPrimitive.check(dnnl_memory_set_data_handle(memory, UnsafeMutableRawPointer(mutating: buffer)), "data handle")
        }
        arguments.withUnsafeBufferPointer { args in
            MatmulPrimitive.check(dnnl_primitive_execute(primitive, stream, Int32(args.count), args.baseAddress), "matmul")
        }
        MatmulPrimitive.check(dnnl_stream_wait(stream), "stream")
    }

    /// oneDNN fails only on programming errors or exhausted memory here: stop with its status.
    static func check(_ status: dnnl_status_t, _ what: String) {
        precondition(status == dnnl_success, "oneDNN \(what) failed with status \(status.rawValue)")
    }
}

/// The process's oneDNN engine, stream and primitives. Training calls it from one thread; a lock
/// makes concurrent callers (the tests' in-process ranks) take turns, since a primitive's memory
/// objects are pointed at the caller's buffers for the duration of a call.
public final class MatrixEngine: @unchecked Sendable {
    public static let shared = MatrixEngine()
    private let lock = NSLock()

    private let engine: dnnl_engine_t
    private let stream: dnnl_stream_t
    private struct Key: Hashable { var kind: ProductKind; var m: Int; var n: Int; var k: Int; var precision: ProductPrecision }
    private var primitives: [Key: MatmulPrimitive] = [:]

    private init() {
        var e: dnnl_engine_t?, s: dnnl_stream_t?
        MatmulPrimitive.check(dnnl_engine_create(&e, dnnl_cpu, 0), "CPU engine")
        MatmulPrimitive.check(dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue), "stream")
        engine = e!
        stream = s!
    }

    /// The primitive computing `kind` for a layer of `fanIn` → `fanOut` on `rows` rows.
    private func primitive(_ kind: ProductKind, rows: Int, fanIn: Int, fanOut: Int, precision: ProductPrecision) -> MatmulPrimitive {
        let key = Key(kind: kind, m: rows, n: fanOut, k: fanIn, precision: precision)
        if let p = primitives[key] { return p }
        let (r, i, o) = (Int64(rows), Int64(fanIn), Int64(fanOut))
        let p: MatmulPrimitive
        switch kind {
        case .forward(let relu):
            p = MatmulPrimitive(engine: engine, descriptors: [
                (DNNL_ARG_SRC, [r, i], [i, 1]), (DNNL_ARG_WEIGHTS, [i, o], [o, 1]),
                (DNNL_ARG_BIAS, [1, o], [o, 1]), (DNNL_ARG_DST, [r, o], [o, 1]),
            ], relu: relu, precision: precision)
        case .weightGradient:
            // xᵀ is x [rows × fanIn] read with swapped strides; the rows are the reduction.
            p = MatmulPrimitive(engine: engine, descriptors: [
                (DNNL_ARG_SRC, [i, r], [1, i]), (DNNL_ARG_WEIGHTS, [r, o], [o, 1]), (DNNL_ARG_DST, [i, o], [o, 1]),
            ], relu: false, precision: precision)
        case .inputGradient:
            p = MatmulPrimitive(engine: engine, descriptors: [
                (DNNL_ARG_SRC, [r, o], [o, 1]), (DNNL_ARG_WEIGHTS, [o, i], [1, o]), (DNNL_ARG_DST, [r, i], [i, 1]),
            ], relu: false, precision: precision)
        }
        primitives[key] = p
        return p
    }

    /// y [rows × fanOut] = act(x [rows × fanIn] · W [fanIn × fanOut] + b).
    public func forward<T: ProductOperand>(x: UnsafePointer<T>, rows: Int, weight: UnsafePointer<T>, bias: UnsafePointer<Float>,
                                           fanIn: Int, fanOut: Int, relu: Bool, y: UnsafeMutablePointer<Float>) {
        lock.lock()
        defer { lock.unlock() }
        primitive(.forward(relu: relu), rows: rows, fanIn: fanIn, fanOut: fanOut, precision: T.precision)
            .run(x, weight, bias, y, stream: stream)
    }

    /// dW [fanIn × fanOut] = xᵀ · dy (overwritten).
    public func weightGradient<T: ProductOperand>(x: UnsafePointer<T>, dy: UnsafePointer<T>, rows: Int, fanIn: Int, fanOut: Int,
                                                  dWeight: UnsafeMutablePointer<Float>) {
        lock.lock()
        defer { lock.unlock() }
        primitive(.weightGradient, rows: rows, fanIn: fanIn, fanOut: fanOut, precision: T.precision).run(x, dy, dWeight, stream: stream)
    }

    /// dx [rows × fanIn] = dy · Wᵀ (overwritten).
    public func inputGradient<T: ProductOperand>(dy: UnsafePointer<T>, rows: Int, weight: UnsafePointer<T>, fanIn: Int, fanOut: Int,
                                                 dx: UnsafeMutablePointer<Float>) {
        lock.lock()
        defer { lock.unlock() }
        primitive(.inputGradient, rows: rows, fanIn: fanIn, fanOut: fanOut, precision: T.precision).run(dy, weight, dx, stream: stream)
    }

    /// Number of distinct product shapes met so far (each has its primitive).
    public var primitiveCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return primitives.count
    }
}

// MARK: - Threads and the library

/// Sets the number of threads every product uses (at least 1), for the whole process.
///
/// Under mpirun every rank gets its share of the node's cores; more threads than cores make every
/// rank slower, and the slowest rank sets the pace of each reduction.
public func setComputeThreads(_ n: Int) {
    omp_set_num_threads(Int32(max(1, n)))
}

/// The thread count the products use.
public func computeThreads() -> Int { Int(omp_get_max_threads()) }

/// "oneDNN 2.6.3 (avx512_core_bf16, OpenMP)": the library that computes the products, its version
/// and the instruction set its kernels were dispatched for on this CPU.
public func matrixLibraryDescription() -> String {
    let v = dnnl_version().pointee
    return "oneDNN \(v.major).\(v.minor).\(v.patch) (\(cpuInstructionSet()), OpenMP)"
}

/// Whether this CPU does bf16 arithmetic (AVX512_BF16 or AMX), which `--precision bf16` needs.
public var cpuHasBF16: Bool {
    let isa = dnnl_get_effective_cpu_isa()
    return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx
}

/// Where a training step's weight-gradient products compute (their operands are rounded to at most
/// 8 significant bits, so bf16 holds them exactly and both formats give the same bits: ExactSum.swift).
public enum ExactProducts {
    /// From bfloat16 copies where the CPU has bf16 arithmetic (about twice float32's speed), unless
    /// $DIST_TRAINER_EXACT_PRODUCTS is `fp32` (to compare the two paths).
    public static var bf16ByDefault: Bool {
        cpuHasBF16 && ProcessInfo.processInfo.environment["DIST_TRAINER_EXACT_PRODUCTS"] != "fp32"
    }
}

/// Rounds `count` Floats to bfloat16 (nearest, ties to even), as bit patterns.
public func convertToBF16(_ source: UnsafePointer<Float>, count: Int, into target: UnsafeMutablePointer<UInt16>) {
    parallelFor(count, grain: 32, work: count) { part in
        for i in part { target[i] = bf16Bits(source[i]) }
    }
}

/// `x` rounded to bfloat16 (nearest, ties to even), as a bit pattern.
@inline(__always)
public func bf16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// The Float a bfloat16 bit pattern stands for.
public func floatFromBF16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// The instruction set oneDNN's kernels use on this CPU.
public func cpuInstructionSet() -> String {
    switch dnnl_get_effective_cpu_isa() {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
    case dnnl_cpu_isa_avx512_core: return "avx512_core"
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
    case dnnl_cpu_isa_avx2: return "avx2"
    case dnnl_cpu_isa_avx: return "avx"
    case dnnl_cpu_isa_sse41: return "sse41"
    default: return "generic"
    }
}
