// Collective: the few communication operations data-parallel training needs, and the
// single-process implementation.
//
// The training loop is written once against this protocol. `SingleProcess` (here) makes every
// operation the identity, for debugging and tests without MPI; the MPI implementation lives in
// the DistTrainer target so that Core never imports MPI. Every operation is collective: all ranks
// must call it in the same order with the same sizes.

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
    /// The minimum and maximum of `value` over all ranks (used to verify that replicas agree).
    func allreduceMinMax(_ value: Double) throws -> (min: Double, max: Double)
    /// Sums `buffer` over all ranks, in place, for this rank's part only: afterwards
    /// `buffer[partition.range(rank)]` holds the sum of that part over all ranks, and the rest of
    /// `buffer` is unspecified.
    func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws
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
}

extension Collective {
    public func noteProgress(lrIndex: Int, epoch: Int, step: Int) {}

    /// Error agreement: every rank passes the error it hit (or nil); if any rank failed, every rank
    /// throws the same error, the one of the lowest failing rank, prefixed with that rank when the job
    /// has more than one. Use it after every step that can fail on some ranks only (reading files,
    /// checking flags), before the next collective, so no rank is left waiting in it.
    public func agree(_ local: TrainerError?) throws {
        if size == 1 {
            if let local { throw TrainerError(local.message, agreed: true) }
            return
        }
        let (lowest, _) = try allreduceMinMax(local == nil ? Double(size) : Double(rank))
        let failing = Int(lowest)
        guard failing < size else { return }
        var bytes = rank == failing ? Array(local!.message.utf8) : []
        try broadcast(&bytes, root: failing)
        let message = String(decoding: bytes, as: UTF8.self)
        throw TrainerError(message.hasPrefix("rank ") ? message : "rank \(failing): \(message)", agreed: true)
    }

    /// Runs `body` and agrees on its outcome across ranks (see `agree`); returns its value when
    /// every rank succeeded.
    public func agreeing<T>(_ body: () throws -> T) throws -> T {
        var value: T?
        var failure: TrainerError?
        do { value = try body() } catch let e as TrainerError { failure = e } catch {
            failure = TrainerError("\(error)")
        }
        try agree(failure)
        return value!
    }
}

/// The trivial collective of a job with one process: every operation is the identity.
public final class SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allreduceMinMax(_ value: Double) throws -> (min: Double, max: Double) { (value, value) }
    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {}
    public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {}
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {}
    public func barrier() throws {}
}
