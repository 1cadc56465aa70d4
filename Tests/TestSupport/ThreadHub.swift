// ThreadHub: the rendezvous behind ThreadCollective — the ranks of one in-process job, on threads,
// meet here for every collective operation, each leaving a copy of its contribution.
//
// Operations are numbered in the order the ranks call them (MPI's rule: every rank calls the same
// collectives in the same order). When the last rank of an operation arrives, every rank receives
// all contributions and computes its own result from them. The hub never hangs a test: a rank that
// does not arrive within `timeout` seconds, a rank that calls a different operation (or the same one
// with other sizes), or a rank that fails or finishes while others wait in an operation it will
// never join, ends the job — every waiting and every later call throws the same CollectiveFailure.
import Foundation

/// Why an in-process job ended: the whole job's failure, thrown by every rank's next collective.
public struct CollectiveFailure: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "ThreadCollective: " + message }
}

/// What one rank brings to one operation: the operation's signature (kind, sizes, root, partition;
/// it must be identical on every rank) and a copy of its data.
struct Contribution: Sendable {
    enum Payload: Sendable {
        case none
        case floats([Float])
        case doubles([Double])
        case bytes([UInt8])
    }

    var signature: String
    var payload: Payload

    var floats: [Float] { if case .floats(let v) = payload { return v } else { return [] } }
    var doubles: [Double] { if case .doubles(let v) = payload { return v } else { return [] } }
    var bytes: [UInt8] { if case .bytes(let v) = payload { return v } else { return [] } }
}

/// The meeting point of the `size` ranks of one in-process job.
public final class ThreadHub: @unchecked Sendable {
    public let size: Int
    /// Seconds a rank waits for the others in one operation before the job fails.
    public let timeout: Double
    private let condition = NSCondition()
    /// The contributions to the operation being gathered (index = rank; nil: not arrived yet).
    private var pending: [Contribution?]
    /// Number of the operation being gathered (0, 1, 2, ...).
    private var operation = 0
    /// The last completed operation and everybody's contributions to it. One is enough: operation
    /// k + 1 cannot complete before every rank, so every reader of k, has arrived in it.
    private var completed: (operation: Int, contributions: [Contribution])?
    /// Set once the job has failed; from then on every wait and every call throws it.
    private var failure: CollectiveFailure?
    /// Ranks whose body has ended (they will call no more collectives), with how it ended.
    private var departed: [Int: String] = [:]
    /// Where each rank last said training was (`noteProgress`), for the timeout's message.
    private var progress: [String?]

    /// Whether the ranks keep one copy of what MPI ranks on one node would share (`sharedCopy`).
    public let sharesMemory: Bool
    /// The memory of those copies, freed with the hub (the ranks' threads have ended by then).
    private var sharedCopies: [UnsafeMutablePointer<Float>] = []

    public init(size: Int, timeout: Double = 60, sharesMemory: Bool = false) {
        precondition(size > 0, "a job needs at least one rank")
        self.size = size
        self.timeout = timeout
        self.sharesMemory = sharesMemory
        pending = Array(repeating: nil, count: size)
        progress = Array(repeating: nil, count: size)
    }

    deinit { for copy in sharedCopies { copy.deallocate() } }

    /// Zeroed memory for `count` Floats, kept until the hub goes (rank 0 allocates a shared copy).
    func allocateSharedCopy(count: Int) -> UnsafeMutablePointer<Float> {
        condition.lock()
        defer { condition.unlock() }
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        copy.initialize(repeating: 0, count: max(count, 1))
        sharedCopies.append(copy)
        return copy
    }

    /// One ThreadCollective per rank, in rank order.
    public func collectives() -> [ThreadCollective] { (0..<size).map { ThreadCollective(hub: self, rank: $0) } }

    /// The first failure of the job, if it has failed.
    public var jobFailure: CollectiveFailure? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// Rank `rank` joins the next operation with `contribution`; returns every rank's contribution
    /// (index = rank) once all have arrived, or throws the job's failure.
    func exchange(rank: Int, _ contribution: Contribution) throws -> [Contribution] {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        let mine = operation
        pending[rank] = contribution
        if let gone = departed.min(by: { $0.key < $1.key }) {
            throw fail("rank \(rank) called \(contribution.signature) (operation #\(mine)), but rank \(gone.key) \(gone.value) and will never join it")
        }
        if pending.allSatisfy({ $0 != nil }) { return try complete() }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let done = completed, done.operation == mine { return done.contributions }
            if let failure { throw failure }
            if !condition.wait(until: deadline), completed?.operation != mine, failure == nil {
                throw fail(timeoutMessage(rank: rank, contribution.signature, operation: mine))
            }
        }
    }

    /// The last rank has arrived: checks that every rank called the same operation with the same
    /// sizes, publishes the contributions and starts the next operation.
    private func complete() throws -> [Contribution] {
        let all = pending.map { $0! }
        let number = operation
        pending = Array(repeating: nil, count: size)
        operation += 1
        if Set(all.map(\.signature)).count > 1 {
            let calls = all.enumerated().map { "rank \($0.offset): \($0.element.signature)" }.joined(separator: "; ")
            throw fail("the ranks called different operations (or sizes) as operation #\(number): \(calls)")
        }
        completed = (number, all)
        condition.broadcast()
        return all
    }

    private func timeoutMessage(rank: Int, _ signature: String, operation: Int) -> String {
        let missing = (0..<size).filter { pending[$0] == nil }
        let whereabouts = missing.map { r in "rank \(r)" + (progress[r].map { " (last at \($0))" } ?? "") }
        return "rank \(rank) waited \(timeout) s in \(signature) (operation #\(operation)); "
            + "\(whereabouts.joined(separator: ", ")) never arrived"
    }

    /// Ends the job with `message` (every rank's next or current collective throws it) and returns
    /// the failure for the caller to throw. The first failure wins. The caller holds the lock.
    private func fail(_ message: String) -> CollectiveFailure {
        if failure == nil { failure = CollectiveFailure(message) }
        condition.broadcast()
        return failure!
    }

    /// Ends the job from outside an operation (a rank found its own arguments invalid).
    func abort(_ message: String) -> CollectiveFailure {
        condition.lock()
        defer { condition.unlock() }
        return fail(message)
    }

    /// Rank `rank`'s body has ended, with `error` or normally. A failed rank releases the others at
    /// once (their current or next collective throws); a rank that finished normally fails only the
    /// operations it never joined, including any the others are waiting in right now.
    public func depart(rank: Int, error: Error?) {
        condition.lock()
        defer { condition.unlock() }
        let how = error.map { "failed (\($0))" } ?? "finished"
        departed[rank] = how
        if error != nil {
            _ = fail("rank \(rank) \(how)")
        } else if pending.contains(where: { $0 != nil }) {
            let waiting = (0..<size).filter { pending[$0] != nil }.map(String.init).joined(separator: ", ")
            _ = fail("rank \(rank) finished without calling operation #\(operation), which ranks \(waiting) wait in")
        }
    }

    /// Records where rank `rank` is in training (named when the others time out waiting for it).
    func note(rank: Int, _ text: String) {
        condition.lock()
        defer { condition.unlock() }
        progress[rank] = text
    }
}
