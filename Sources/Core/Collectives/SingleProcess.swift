// SingleProcess: the Collective of a job with one process, where every operation is the identity.
//
// Used for single-process debugging runs without MPI and by the tests as the whole-batch reference.
import Kernels

/// The trivial collective of a job with one process: every operation is the identity.
public final class SingleProcess: Collective {
    public init() {}
    /// Scratch of `allreduceSumCompressed`'s rounding, grown once to the largest buffer.
    private var scratch = Buffer<UInt16>(count: 0)
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allreduceSumAndMax(sums: UnsafeMutableBufferPointer<Double>, maxima: UnsafeMutableBufferPointer<Double>) throws {}
    public func allreduceMinMax(_ value: Double) throws -> (min: Double, max: Double) { (value, value) }
    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {}
    public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {}
    public func allreduceSumCompressed(_ buffer: UnsafeMutableBufferPointer<Float>, format: GradientCompression) throws {
        if scratch.count < buffer.count { scratch = Buffer(count: buffer.count) }
        format.round(buffer, scratch: scratch.pointer)
    }
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {}
    public func barrier() throws {}
}
