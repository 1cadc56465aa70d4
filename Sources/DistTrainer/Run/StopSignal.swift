// StopSignal: SIGINT and SIGTERM (Ctrl-C, Slurm preemption, mpirun forwarding) as a request to
// stop cleanly.
//
// The handler only sets an atomic flag (async-signal-safe); the trainer polls it after every step
// and all ranks vote on it inside the step's reduction, so they stop after the same step, rank 0
// writes last.safetensors, and the job exits with 128 + the signal number. A second signal exits
// at once.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

enum StopSignal {
    /// The signal received (0: none).
    static let received = Atomic<Int32>(0)

    static func install() {
        for s in [SIGINT, SIGTERM] {
            signal(s) { number in
                let (exchanged, _) = StopSignal.received.compareExchange(expected: 0, desired: number, ordering: .relaxed)
                if !exchanged { _exit(128 + number) }
            }
        }
    }

    static func requested() -> Bool { received.load(ordering: .relaxed) != 0 }

    /// The signal's name for messages.
    static var name: String {
        switch received.load(ordering: .relaxed) {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case let s: return "signal \(s)"
        }
    }

    /// The conventional exit status after the signal (130 for SIGINT, 143 for SIGTERM).
    static var exitCode: Int32 {
        let s = received.load(ordering: .relaxed)
        return s == 0 ? 1 : 128 + s
    }
}
