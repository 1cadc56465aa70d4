// GradientCompression: 16-bit transport of the weight gradients (`--grad-compression bf16|fp16`),
// as Horovod's and DDP's compression hooks: half the bytes on the wire, float32 master weights and
// optimizer everywhere, sums formed in float32. Not exact: a partial sum is rounded to 16 bits at
// every hop of the ring. The default (none) keeps the exact float32 path.
import Kernels

/// How the weight gradients travel between ranks.
public enum GradientCompression: String, Codable, CaseIterable, Sendable {
    /// float32, exact (the default).
    case none
    /// bfloat16: float32's range, 8 bits of mantissa.
    case bf16
    /// IEEE half: 11 bits of mantissa, but values below 6e-8 flush to zero and above 65504 overflow.
    case fp16

    /// Rounds `count` Floats to the 16-bit format's bit patterns.
    public func encode(_ source: UnsafePointer<Float>, count: Int, into target: UnsafeMutablePointer<UInt16>) {
        switch self {
        case .none: preconditionFailure("no encoding for uncompressed gradients")
        case .bf16: convertToBF16(source, count: count, into: target)
        case .fp16: for i in 0..<count { target[i] = Float16(source[i]).bitPattern }
        }
    }

    /// The Floats `count` 16-bit patterns stand for.
    public func decode(_ source: UnsafePointer<UInt16>, count: Int, into target: UnsafeMutablePointer<Float>) {
        switch self {
        case .none: preconditionFailure("no decoding for uncompressed gradients")
        case .bf16: for i in 0..<count { target[i] = Float(bitPattern: UInt32(source[i]) << 16) }
        case .fp16: for i in 0..<count { target[i] = Float(Float16(bitPattern: source[i])) }
        }
    }

    /// Adds the Floats the 16-bit patterns stand for to `target`.
    public func decodeAdding(_ source: UnsafePointer<UInt16>, count: Int, into target: UnsafeMutablePointer<Float>) {
        switch self {
        case .none: preconditionFailure("no decoding for uncompressed gradients")
        case .bf16: for i in 0..<count { target[i] += Float(bitPattern: UInt32(source[i]) << 16) }
        case .fp16: for i in 0..<count { target[i] += Float(Float16(bitPattern: source[i])) }
        }
    }

    /// Rounds `buffer` in place through the format (what a single process does, so that one rank
    /// and many see gradients of the same precision).
    public func round(_ buffer: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutablePointer<UInt16>) {
        guard self != .none, let base = buffer.baseAddress else { return }
        encode(base, count: buffer.count, into: scratch)
        decode(scratch, count: buffer.count, into: base)
    }
}
