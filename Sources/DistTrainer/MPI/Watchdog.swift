// Watchdog: ends the job when a collective does not complete in time, instead of hanging.
//
// A rank that dies or hangs leaves every other rank blocked inside an allreduce forever (the
// failure Horovod and DDP users know). Each rank runs a watchdog thread that looks at the collective
// in progress: when one has been waiting for longer than --collective-timeout, it prints which
// collective, where in training (learning rate, epoch, step) and on which rank, and exits the
// process; mpirun then terminates the rest of the job. It also covers the other way a job ends
// while a rank is blocked: mpirun tearing the job down (a lost host, a dead rank) sends SIGTERM,
// which the training loop cannot act on inside a collective that will never complete; two seconds
// later the watchdog says where the rank was stuck and exits like the signal. The MPI calls stay on
// the main thread (MPI_THREAD_FUNNELED); the watchdog only reads atomics and exits.
import CoreSupport
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class Watchdog: @unchecked Sendable {
    /// The pause before a timed-out rank exits in a multi-host job (see `end`).
    static let launcherGrace = 8.0

    /// The timeout of every collective: `flag` when given, else $DIST_TRAINER_COLLECTIVE_TIMEOUT
    /// (for launchers that cannot pass flags), else 300 s; 0 disables the watchdog.
    static func timeout(flag: Double?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Double {
        if let flag { return flag }
        guard let text = environment["DIST_TRAINER_COLLECTIVE_TIMEOUT"] else { return 300 }
        guard let value = Double(text), value >= 0, value.isFinite else {
            throw TrainerError("DIST_TRAINER_COLLECTIVE_TIMEOUT: expected seconds ≥ 0, found '\(text)'")
        }
        return value
    }

    let timeout: Double
    /// Seconds between the timeout's message and the exit, in a job across hosts: time for the
    /// launcher to notice a lost host by itself (see `end`). Set once MPI is up.
    private let graceMilliseconds = Atomic<Int>(0)
    /// "rank 1 (node2)": how messages name this process (set once MPI is up).
    private let whoLock = NSLock()
    private var whoText: String
    private var who: String { whoLock.withLock { whoText } }
    /// Start of the collective in progress (uptime ns), 0 when none.
    private let enteredAt = Atomic<UInt64>(0)
    private let operation = Atomic<Int>(0)
    private let elements = Atomic<Int>(0)
    private let lrIndex = Atomic<Int>(-1), epoch = Atomic<Int>(0), step = Atomic<Int>(0)

    /// Started before MPI is initialised, so that a start-up that never completes is caught too;
    /// `rank` is the launcher's idea of it until `identify` gives MPI's.
    init(timeout: Double, rank: Int) {
        self.timeout = timeout
        whoText = "rank \(rank)"
        guard timeout > 0 else { return }
        let thread = Thread { [self] in self.watch() }
        thread.name = "dist-trainer watchdog"
        thread.start()
    }

    /// Names this process as MPI knows it, and sets the grace of a multi-host job.
    func identify(rank: Int, host: String, grace: Double) {
        whoLock.withLock { whoText = host.isEmpty ? "rank \(rank)" : "rank \(rank) (\(host))" }
        graceMilliseconds.store(Int(grace * 1000), ordering: .relaxed)
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
        var signalSeenAt: UInt64 = 0
        while true {
            usleep(100_000)
            // The start first, then the clock: read the other way round, a collective entered
            // between the two reads started "after now", and the unsigned difference wrapped to
            // 18 446 744 073 s, a false timeout that killed a healthy 3-host benchmark run.
            let start = enteredAt.load(ordering: .acquiring)
            let now = DispatchTime.now().uptimeNanoseconds
            if signalSeenAt == 0 && StopSignal.requested() { signalSeenAt = now }
            guard start != 0, now >= start else { continue }
            let waited = Double(now - start) / 1e9
            if waited > timeout {
                end("\(describeCollective()) has not completed after \(Int(waited)) s (collective timeout \(Int(timeout)) s); "
                    + "another rank has probably died or hung, or a host was lost; ending the job", code: ExitStatus.peerLost,
                    after: Double(graceMilliseconds.load(ordering: .relaxed)) / 1000)
            }
            // Stopped by a signal that arrived while this collective was already waiting and that
            // the collective has outlived by two seconds: the job is being torn down around us.
            if signalSeenAt != 0 && start < signalSeenAt && now - signalSeenAt > 2_000_000_000 {
                end("stopped by \(StopSignal.name) while \(describeCollective()) had waited \(Int(waited)) s for the other ranks "
                    + "(a host was lost or a rank died); last.safetensors holds the last saved state",
                    code: ExitStatus.peerLost)
            }
        }
    }

    /// "MPI_Allreduce (Float) of 4600 elements at learning rate #1 epoch 2 step 37".
    private func describeCollective() -> String {
        let op = (CollectiveOperation(rawValue: operation.load(ordering: .relaxed)) ?? .none).name
        if operation.load(ordering: .relaxed) == CollectiveOperation.startup.rawValue {
            return "MPI start-up (initialisation and the first collectives)"
        }
        let l = lrIndex.load(ordering: .relaxed)
        let place = l < 0 ? "during set-up or evaluation"
            : "at learning rate #\(l + 1) epoch \(epoch.load(ordering: .relaxed)) step \(step.load(ordering: .relaxed))"
        return "\(op) of \(elements.load(ordering: .relaxed)) elements \(place)"
    }

    /// One line on stderr, then the process ends (MPI cannot be shut down from here), `after`
    /// seconds later unless the launcher stops it first. Across hosts that pause matters: when a
    /// host's link is lost, a rank that exits makes its launcher daemon send a report over the dead
    /// link, and a TCP connection with data in flight waits out retransmissions for many minutes
    /// instead of failing on its keepalive; so the daemons get the time to notice the lost host
    /// with their keepalive first (scripts/ set it to a few seconds). Once they have, they stop the
    /// ranks with SIGTERM, and the pause ends at once.
    private func end(_ message: String, code: Int32, after: Double = 0) -> Never {
        FileHandle.standardError.write(Data("dist-trainer: error: \(who): \(message)\n".utf8))
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(after, 0) * 1e9)
        while DispatchTime.now().uptimeNanoseconds < deadline && !StopSignal.requested() { usleep(50_000) }
        _exit(code)
    }
}
