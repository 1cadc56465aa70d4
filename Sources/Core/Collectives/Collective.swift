// Collective: the few communication operations data-parallel training needs.
//
// The training loop is written once against this protocol. `SingleProcess` makes every operation
// the identity, for debugging and tests without MPI; the MPI implementation lives in the DistTrainer
// target so that Core never imports MPI. Every operation is collective: all ranks must call it in
// the same order with the same sizes. Agreement on errors is built on top (Agreement.swift).

/// Communication among the ranks of a data-parallel job.
public protocol Collective: AnyObject {
    /// This process's index, 0 ..< size.
    var rank: Int { get }
    /// Number of processes in the job.
    var size: Int { get }

    /// Replaces `buffer` on every rank by the element-wise sum over all ranks.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Replaces `buffer` on every rank by the element-wise sum over all ranks.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Replaces `sums` by their element-wise sum and `maxima` by their element-wise maximum over all
    /// ranks, in one operation (an exact step sends its sums and the maxima its grids need in one
    /// message). Integer-valued sums below 2^53 are exact in any order of addition, so they come out
    /// the same for any number of ranks; `maxima` must hold no NaN (its maximum depends on the order).
    func allreduceSumAndMax(sums: UnsafeMutableBufferPointer<Double>, maxima: UnsafeMutableBufferPointer<Double>) throws
    /// The minimum and maximum of `value` over all ranks (used to verify that replicas agree).
    func allreduceMinMax(_ value: Double) throws -> (min: Double, max: Double)
    /// Sums `buffer` over all ranks, in place, for this rank's part only: afterwards
    /// `buffer[partition.range(rank)]` holds the sum of that part over all ranks, and the rest of
    /// `buffer` is unspecified.
    func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws
    /// Replaces `buffer` on every rank by the element-wise sum over all ranks, with the values
    /// travelling in 16 bits (`format`, not `.none`): afterwards every rank holds the identical sum,
    /// rounded to the format.
    func allreduceSumCompressed(_ buffer: UnsafeMutableBufferPointer<Float>, format: GradientCompression) throws
    /// Every rank contributes its part of `buffer` (per `partition`, in place); afterwards every rank
    /// holds every part.
    func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws
    /// Copies `buffer` from rank `root` to every other rank.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
    /// Copies `bytes` (any length) from rank `root` to every other rank.
    func broadcast(_ bytes: inout [UInt8], root: Int) throws
    /// Waits until every rank has arrived.
    func barrier() throws
    /// Tells the collective where training is (for diagnostics such as a hang watchdog); cheap,
    /// called once per step.
    func noteProgress(lrIndex: Int, epoch: Int, step: Int)
    /// Memory for `count` Floats of this rank that the collective can read from the other ranks
    /// directly (ranks sharing a node), or nil. When a buffer given to `reduceScatterSum` or
    /// `allgather` is such memory, the collective reads the other ranks' parts where they lie
    /// instead of sending copies (the weight gradients, the parameters). Collective: every rank
    /// calls it, with the same count, once per buffer. Between a `reduceScatterSum` or `allgather`
    /// and the next collective call, a rank writes only its own part (Adam's), and between
    /// collectives it may write its memory as it likes, as a training step does: another rank reads
    /// it only inside those two calls.
    func sharedStorage(count: Int) throws -> UnsafeMutablePointer<Float>?
    /// Memory for `count` Floats that is the same memory on every rank (one copy for the whole job,
    /// when all its ranks share a node), or nil. Collective, as `sharedStorage`. When a buffer given
    /// to `allgather` is such memory, every rank's part is already where every rank reads it, and
    /// the call only synchronises (as `synchronizeShared`). The rules of use: a rank writes only its
    /// own part between a `reduceScatterSum` and the `allgather` that follows it; any other write
    /// is made by one rank alone, between two `synchronizeShared` calls (no rank reads the old
    /// values after the first, every rank sees the new ones after the second).
    func sharedCopy(count: Int) throws -> UnsafeMutablePointer<Float>?
    /// Waits until every rank has arrived; what any rank wrote to shared memory (`sharedStorage`,
    /// `sharedCopy`) before it, every rank sees after it.
    func synchronizeShared() throws
    /// `synchronizeShared` between a step's writing of the weight-gradient operands the ranks
    /// share (SharedProductOperands) and their products; apart so that a collective may count it apart.
    func synchronizeOperands() throws
}

extension Collective {
    public func noteProgress(lrIndex: Int, epoch: Int, step: Int) {}
    public func sharedStorage(count: Int) throws -> UnsafeMutablePointer<Float>? { nil }
    public func sharedCopy(count: Int) throws -> UnsafeMutablePointer<Float>? { nil }
    public func synchronizeShared() throws { try barrier() }
    public func synchronizeOperands() throws { try synchronizeShared() }
}
