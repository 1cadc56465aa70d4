// RunRanks: runs the ranks of an in-process job, one thread each, over a ThreadCollective, and
// collects what each rank returned or threw.
//
// A rank whose body throws releases the others (ThreadHub.depart), so a failure on one rank ends
// the job at once instead of after the hub's timeout; `runRanks` then rethrows the error that
// happened first (the cause), not the CollectiveFailures it set off on the other ranks.
import Collectives
import Foundation

/// Runs `body` on `n` ranks, each on its own thread with rank r's ThreadCollective (passed through
/// `wrap`, e.g. into a deliberately broken variant), and returns every rank's result (index = rank).
/// Rethrows the first error any rank threw. With `sharedMemory` the ranks keep one copy of the
/// parameters, as MPI ranks on one node do (ThreadCollective.sharedCopy).
public func runRanks<T>(_ n: Int, timeout: Double = 60, sharedMemory: Bool = false, wrap: (ThreadCollective) -> Collective = { $0 },
                        _ body: (Collective) throws -> T) throws -> [T] {
    let run = runOnThreads(n, timeout: timeout, sharedMemory: sharedMemory, wrap: wrap, body)
    if let first = run.firstFailure, case .failure(let error) = run.outcomes[first] { throw error }
    return run.outcomes.map { try! $0.get() }
}

/// Like `runRanks`, but returns every rank's outcome, errors included (for tests of how failures
/// reach every rank).
public func rankOutcomes<T>(_ n: Int, timeout: Double = 60, wrap: (ThreadCollective) -> Collective = { $0 },
                            _ body: (Collective) throws -> T) -> [Result<T, any Error>] {
    runOnThreads(n, timeout: timeout, sharedMemory: false, wrap: wrap, body).outcomes
}

/// The threads of one job: every rank's outcome, and which rank failed first.
private func runOnThreads<T>(_ n: Int, timeout: Double, sharedMemory: Bool, wrap: (ThreadCollective) -> Collective,
                             _ body: (Collective) throws -> T) -> (outcomes: [Result<T, any Error>], firstFailure: Int?) {
    let hub = ThreadHub(size: n, timeout: timeout, sharesMemory: sharedMemory)
    let collectives = hub.collectives().map { Unchecked(wrap($0)) }
    let results = RankResults<T>(count: n)
    return withoutActuallyEscaping(body) { escapable in
        let work = RankBody(escapable)
        let done = DispatchGroup()
        for (rank, collective) in collectives.enumerated() {
            done.enter()
            let thread = Thread {
                let outcome = work.run(collective.value)
                // Recorded before departing: the cause is logged before the failures it releases.
                results.record(rank, outcome)
                hub.depart(rank: rank, error: outcome.failure)
                done.leave()
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        done.wait()
        // The threads may outlive this call for a moment; they must not keep `body` alive.
        work.release()
        return (results.outcomes, results.failureOrder.first)
    }
}

/// A value handed to the rank threads; the hub and the caller's waiting keep it race-free.
private struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The ranks' shared body, released once every rank has run it.
private final class RankBody<T>: @unchecked Sendable {
    private var body: ((Collective) throws -> T)?
    init(_ body: @escaping (Collective) throws -> T) { self.body = body }
    func run(_ collective: Collective) -> Result<T, any Error> { Result { try body!(collective) } }
    func release() { body = nil }
}

/// The outcomes as the threads finish, behind a lock.
private final class RankResults<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, any Error>?]
    private var failures: [Int] = []

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func record(_ rank: Int, _ outcome: Result<T, any Error>) {
        lock.lock()
        defer { lock.unlock() }
        slots[rank] = outcome
        if case .failure = outcome { failures.append(rank) }
    }

    var outcomes: [Result<T, any Error>] {
        lock.lock()
        defer { lock.unlock() }
        return slots.map { $0! }
    }

    var failureOrder: [Int] {
        lock.lock()
        defer { lock.unlock() }
        return failures
    }
}

extension Result {
    /// The error of a failure, nil for a success.
    public var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
