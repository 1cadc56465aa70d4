// Watchdog: ends the job when a collective does not complete in time, instead of hanging.
//
// A rank that dies or hangs leaves every other rank blocked inside an allreduce forever (the
// failure Horovod and DDP users know). Each rank runs a watchdog thread that looks at the collective
// in progress: when one has been waiting for longer than --collective-timeout, it prints which
// collective, where in training (learning rate, epoch, step) and on which rank, and exits the
// process; mpirun then terminates the rest of the job. The MPI calls stay on the main thread
// (MPI_THREAD_FUNNELED); the watchdog only reads atomics and exits.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class Watchdog: @unchecked Sendable {
    let timeout: Double
    let rank: Int
    /// Start of the collective in progress (uptime ns), 0 when none.
    private let enteredAt = Atomic<UInt64>(0)
    private let operation = Atomic<Int>(0)
    private let elements = Atomic<Int>(0)
    private let lrIndex = Atomic<Int>(-1), epoch = Atomic<Int>(0), step = Atomic<Int>(0)

    init(timeout: Double, rank: Int) {
        self.timeout = timeout
        self.rank = rank
        guard timeout > 0 else { return }
        let thread = Thread { [self] in self.watch() }
        thread.name = "dist-trainer watchdog"
        thread.start()
    }

    func enter(_ op: CollectiveOperation, elements count: Int) {
        operation.store(op.rawValue, ordering: .relaxed)
        elements.store(count, ordering: .relaxed)
        enteredAt.store(DispatchTime.now().uptimeNanoseconds, ordering: .releasing)
    }

    func leave() { enteredAt.store(0, ordering: .releasing) }

    func note(lrIndex l: Int, epoch e: Int, step s: Int) {
        lrIndex.store(l, ordering: .relaxed)
        epoch.store(e, ordering: .relaxed)
        step.store(s, ordering: .relaxed)
    }

    private func watch() {
        while true {
            usleep(200_000)
            let start = enteredAt.load(ordering: .acquiring)
            guard start != 0 else { continue }
            let waited = Double(DispatchTime.now().uptimeNanoseconds &- start) / 1e9
            guard waited > timeout else { continue }
            let op = (CollectiveOperation(rawValue: operation.load(ordering: .relaxed)) ?? .none).name
            let l = lrIndex.load(ordering: .relaxed)
            let place = l < 0 ? "during set-up or evaluation"
                : "at learning rate #\(l + 1) epoch \(epoch.load(ordering: .relaxed)) step \(step.load(ordering: .relaxed))"
            let message = "dist-trainer: error: rank \(rank): \(op) of \(elements.load(ordering: .relaxed)) elements \(place) "
                + "has not completed after \(Int(waited)) s (--collective-timeout \(Int(timeout))); another rank has probably died or hung; ending the job\n"
            FileHandle.standardError.write(Data(message.utf8))
            _exit(124)
        }
    }
}
