// FaultyCollective: a ThreadCollective with one deliberate bug, for tests that must show that a
// check (JobCheck, the Trainer's replica check, a test's tolerance) catches a broken collective.
//
// Every fault is one a real implementation could have: a ring that skips a rank, a broadcast that
// never copies, a gather that leaves the other parts alone, a min/max that never communicates.
import Collectives

/// One deliberate bug of a collective.
public enum CollectiveFault: String, CaseIterable, Sendable {
    /// The last rank's contribution to every reduce-scatter is lost (zeros are summed instead).
    case reduceScatterDropsLastRank
    /// The last rank's contribution to every Float allreduce is lost.
    case allreduceFloatDropsLastRank
    /// The last rank's contribution to every Double allreduce is lost.
    case allreduceDoubleDropsLastRank
    /// The last rank's contribution to every 16-bit allreduce is lost.
    case compressedAllreduceDropsLastRank
    /// Broadcasts of Float buffers copy nothing.
    case broadcastIsNoOp
    /// Broadcasts of bytes copy nothing.
    case byteBroadcastIsNoOp
    /// Allgathers copy nothing: every rank keeps only its own part current.
    case allgatherIsNoOp
    /// Min/max returns this rank's own value, never the others'.
    case minMaxIsLocal
}

/// `inner` with `fault`; every other operation is forwarded unchanged.
public final class FaultyCollective: Collective, @unchecked Sendable {
    public let inner: ThreadCollective
    public let fault: CollectiveFault
    public var rank: Int { inner.rank }
    public var size: Int { inner.size }

    public init(_ inner: ThreadCollective, fault: CollectiveFault) {
        self.inner = inner
        self.fault = fault
    }

    /// Whether this rank's contribution is dropped by `dropping`.
    private func drops(_ dropping: CollectiveFault) -> Bool { fault == dropping && rank == size - 1 }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        if drops(.allreduceFloatDropsLastRank) { buffer.update(repeating: 0) }
        try inner.allreduceSum(buffer)
    }

    public func allreduceSumAndMax(sums: UnsafeMutableBufferPointer<Double>, maxima: UnsafeMutableBufferPointer<Double>) throws {
        if drops(.allreduceDoubleDropsLastRank) { sums.update(repeating: 0) }
        try inner.allreduceSumAndMax(sums: sums, maxima: maxima)
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        if drops(.allreduceDoubleDropsLastRank) { buffer.update(repeating: 0) }
        try inner.allreduceSum(buffer)
    }

    public func allreduceMinMax(_ value: Double) throws -> (min: Double, max: Double) {
        fault == .minMaxIsLocal ? (value, value) : try inner.allreduceMinMax(value)
    }

    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {
        if drops(.reduceScatterDropsLastRank) { buffer.update(repeating: 0) }
        try inner.reduceScatterSum(buffer, partition: partition)
    }

    public func allreduceSumCompressed(_ buffer: UnsafeMutableBufferPointer<Float>, format: GradientCompression) throws {
        if drops(.compressedAllreduceDropsLastRank) { buffer.update(repeating: 0) }
        try inner.allreduceSumCompressed(buffer, format: format)
    }

    public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {
        if fault != .allgatherIsNoOp { try inner.allgather(buffer, partition: partition) }
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        if fault != .broadcastIsNoOp { try inner.broadcast(buffer, root: root) }
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        if fault != .byteBroadcastIsNoOp { try inner.broadcast(&bytes, root: root) }
    }

    public func barrier() throws { try inner.barrier() }

    public func noteProgress(lrIndex: Int, epoch: Int, step: Int) {
        inner.noteProgress(lrIndex: lrIndex, epoch: epoch, step: step)
    }
}
