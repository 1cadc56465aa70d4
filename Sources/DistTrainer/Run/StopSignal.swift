// StopSignal: SIGINT, SIGTERM and SIGUSR1 (Ctrl-C, Slurm preemption and `scontrol requeue`,
// mpirun forwarding; Slurm's `--signal=USR1@SECONDS` warning before the time limit) as a request to
// stop cleanly.
//
// The handler only sets an atomic flag (async-signal-safe); the trainer polls it after every step
// and all ranks vote on it inside the step's reduction, so they stop after the same step, rank 0
// writes last.safetensors, and the job exits with 128 + the signal number — except after SIGUSR1,
// which exits with 75 (EX_TEMPFAIL: "try again"), the status the sbatch scripts requeue the job on.
// A second signal exits at once. Installed before any data is loaded, so a signal during start-up
// is remembered rather than fatal.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

enum StopSignal {
    /// The signal received (0: none).
    static let received = Atomic<Int32>(0)

    static func install() {
        for s in [SIGINT, SIGTERM, SIGUSR1] {
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
        case SIGUSR1: return "SIGUSR1"
        case let s: return "signal \(s)"
        }
    }

    /// The exit status that asks a batch script to requeue the job (EX_TEMPFAIL).
    static let requeueExitCode: Int32 = 75

    /// The exit status after the signal: 130 for SIGINT, 143 for SIGTERM, 75 (requeue me) for SIGUSR1.
    static var exitCode: Int32 {
        let s = received.load(ordering: .relaxed)
        if s == SIGUSR1 { return requeueExitCode }
        return s == 0 ? 1 : 128 + s
    }
}
