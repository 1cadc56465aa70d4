// ThreadCollective: a complete Collective for an in-process job of any number of ranks on threads
// (see ThreadHub for the rendezvous and runRanks for starting the ranks).
//
// Every operation has the semantics of the MPI implementation (DistTrainer/MPI/MPICollective.swift),
// with results that are deterministic: exact sums are added in rank order (0, 1, 2, ...), and the
// 16-bit allreduce repeats the MPI ring's order and roundings hop by hop, because there the rounding
// is part of what the operation means. Where the protocol leaves something unspecified this
// collective makes it conspicuous: after a reduce-scatter the parts a rank does not own hold NaN, so
// code that reads them fails a test instead of passing by luck. Arguments that MPI would accept
// only by corrupting memory (a partition of the wrong rank count or past the buffer, a root out of
// range, different sizes on different ranks) fail the whole job with a message instead.
import Collectives

/// One rank of an in-process job.
public final class ThreadCollective: Collective, @unchecked Sendable {
    public let hub: ThreadHub
    public let rank: Int
    public var size: Int { hub.size }
    /// The copies this rank shares with the others (`sharedCopy`), by address.
    private var sharedCopies: Set<UnsafeMutablePointer<Float>> = []

    public init(hub: ThreadHub, rank: Int) {
        precondition((0..<hub.size).contains(rank))
        self.hub = hub
        self.rank = rank
    }

    private func exchange(_ signature: String, _ payload: Contribution.Payload) throws -> [Contribution] {
        try hub.exchange(rank: rank, Contribution(signature: signature, payload: payload))
    }

    /// Ends the job because this rank's own arguments are invalid.
    private func invalid(_ what: String) -> CollectiveFailure {
        hub.abort("rank \(rank): \(what)")
    }

    // MARK: Sums

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        let all = try exchange("allreduceSum(Float × \(buffer.count))", .floats(Array(buffer))).map(\.floats)
        for i in buffer.indices { buffer[i] = Self.sumInRankOrder(all, i) }
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        let all = try exchange("allreduceSum(Double × \(buffer.count))", .doubles(Array(buffer))).map(\.doubles)
        for i in buffer.indices { buffer[i] = Self.sumInRankOrder(all, i) }
    }

    public func allreduceSumAndMax(sums: UnsafeMutableBufferPointer<Double>, maxima: UnsafeMutableBufferPointer<Double>) throws {
        let all = try exchange("allreduceSumAndMax(Double × \(sums.count), Double × \(maxima.count))",
                               .doubles(Array(sums) + Array(maxima))).map(\.doubles)
        for i in sums.indices { sums[i] = Self.sumInRankOrder(all.map { Array($0[0..<sums.count]) }, i) }
        for i in maxima.indices {
            let values = all.map { $0[sums.count + i] }
            if values.contains(where: \.isNaN) { throw invalid("allreduceSumAndMax: a NaN among the maxima (index \(i))") }
            maxima[i] = values.max()!
        }
    }

    /// A NaN on any rank makes both results NaN (MPI's max of a NaN depends on the order).
    public func allreduceMinMax(_ value: Double) throws -> (min: Double, max: Double) {
        let values = try exchange("allreduceMinMax", .doubles([value])).map { $0.doubles[0] }
        if values.contains(where: \.isNaN) { return (.nan, .nan) }
        return (values.min()!, values.max()!)
    }

    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {
        try validate(partition, count: buffer.count, in: "reduceScatterSum")
        let signature = "reduceScatterSum(Float × \(buffer.count), \(Self.describe(partition)))"
        let all = try exchange(signature, .floats(Array(buffer))).map(\.floats)
        let mine = partition.range(rank)
        for i in buffer.indices { buffer[i] = mine.contains(i) ? Self.sumInRankOrder(all, i) : .nan }
    }

    /// The MPI ring of 16-bit values (see `CompressedRing`); on one rank, one rounding, as
    /// SingleProcess does.
    public func allreduceSumCompressed(_ buffer: UnsafeMutableBufferPointer<Float>, format: GradientCompression) throws {
        guard format != .none else { throw invalid("allreduceSumCompressed needs a 16-bit format, not none") }
        let signature = "allreduceSumCompressed(Float × \(buffer.count), \(format))"
        let all = try exchange(signature, .floats(Array(buffer))).map(\.floats)
        CompressedRing(format: format, contributions: all).sum(into: buffer)
    }

    // MARK: Copies

    public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {
        try validate(partition, count: buffer.count, in: "allgather")
        let signature = "allgather(Float × \(buffer.count), \(Self.describe(partition)))"
        // One copy for all: every part is where every rank reads it; the call only synchronises.
        if isSharedCopy(buffer) { return _ = try exchange(signature, .none) }
        let all = try exchange(signature, .floats(Array(buffer))).map(\.floats)
        for r in 0..<size {
            for i in partition.range(r) { buffer[i] = all[r][i] }
        }
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        try validate(root: root, in: "broadcast(Float)")
        if isSharedCopy(buffer) { return _ = try exchange("broadcast(Float × \(buffer.count), root \(root))", .none) }
        let all = try exchange("broadcast(Float × \(buffer.count), root \(root))", .floats(Array(buffer)))
        let source = all[root].floats
        for i in buffer.indices { buffer[i] = source[i] }
    }

    /// Byte broadcasts may differ in length across ranks: the root's bytes replace everyone's.
    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        try validate(root: root, in: "broadcast(bytes)")
        let all = try exchange("broadcast(bytes, root \(root))", .bytes(bytes))
        bytes = all[root].bytes
    }

    public func barrier() throws {
        _ = try exchange("barrier", .none)
    }

    /// With a hub that shares memory: one copy for all ranks, which rank 0 allocates and whose
    /// address it hands to the others in the exchange (as MPICollective's shared window).
    public func sharedCopy(count: Int) throws -> UnsafeMutablePointer<Float>? {
        guard hub.sharesMemory else { return nil }
        var address = [UInt8](repeating: 0, count: MemoryLayout<UInt>.size)
        if rank == 0 {
            let copy = hub.allocateSharedCopy(count: count)
            address = withUnsafeBytes(of: UInt(bitPattern: copy)) { Array($0) }
        }
        let all = try exchange("sharedCopy(Float × \(count))", .bytes(address))
        let copy = UnsafeMutablePointer<Float>(bitPattern: all[0].bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt.self) })!
        sharedCopies.insert(copy)
        return copy
    }

    /// The hub's lock orders the threads' memory around the exchange.
    public func synchronizeShared() throws {
        _ = try exchange("synchronizeShared", .none)
    }

    private func isSharedCopy(_ buffer: UnsafeMutableBufferPointer<Float>) -> Bool {
        buffer.baseAddress.map { sharedCopies.contains($0) } ?? false
    }

    public func noteProgress(lrIndex: Int, epoch: Int, step: Int) {
        hub.note(rank: rank, "lr index \(lrIndex) epoch \(epoch) step \(step)")
    }

    // MARK: Helpers

    /// Σ over ranks of values[r][i], added in rank order.
    static func sumInRankOrder<T: FloatingPoint>(_ values: [[T]], _ i: Int) -> T {
        var s = values[0][i]
        for r in 1..<values.count { s += values[r][i] }
        return s
    }

    static func describe(_ partition: Partition) -> String {
        "parts " + zip(partition.offsets, partition.counts).map { "\($0)+\($1)" }.joined(separator: ",")
    }

    private func validate(_ partition: Partition, count: Int, in operation: String) throws {
        guard partition.counts.count == size, partition.offsets.count == size else {
            throw invalid("\(operation): the partition has \(partition.counts.count) parts for \(size) ranks")
        }
        for r in 0..<size where partition.counts[r] < 0 || partition.offsets[r] < 0 || partition.range(r).upperBound > count {
            throw invalid("\(operation): part \(r) (\(partition.range(r))) is outside the buffer of \(count)")
        }
    }

    private func validate(root: Int, in operation: String) throws {
        guard (0..<size).contains(root) else { throw invalid("\(operation): root \(root) is not a rank of \(size)") }
    }
}

/// The sums of MPICollective's 16-bit ring allreduce, computed in one place: part p of the buffer
/// (Partition over the ranks) starts as rank p+1's values rounded to 16 bits and travels the ring
/// p+2, p+3, ..., p (ranks modulo the size); each rank on the way adds its own float32 value to the
/// decoded 16-bit partial sum, in float32, and rounds the result to 16 bits again. Every rank ends
/// with the owner's final 16-bit value.
struct CompressedRing {
    let format: GradientCompression
    /// Every rank's values (index = rank).
    let contributions: [[Float]]

    func sum(into buffer: UnsafeMutableBufferPointer<Float>) {
        let n = contributions.count
        let partition = Partition(count: buffer.count, parts: n)
        for p in 0..<n {
            for i in partition.range(p) {
                var partial = round(contributions[(p + 1) % n][i])
                for hop in stride(from: 2, through: n, by: 1) {
                    partial = round(contributions[(p + hop) % n][i] + partial)
                }
                buffer[i] = partial
            }
        }
    }

    /// `x` through the 16-bit format and back, as the ring's encode and decode do.
    func round(_ x: Float) -> Float {
        var value = x, bits: UInt16 = 0, back: Float = 0
        format.encode(&value, count: 1, into: &bits)
        format.decode(&bits, count: 1, into: &back)
        return back
    }
}
