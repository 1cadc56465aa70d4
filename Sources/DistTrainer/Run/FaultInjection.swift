// FaultInjection: deliberate faults for the reliability tests, switched on by an environment
// variable and inert otherwise.
//
//   DIST_TRAINER_FAULT=hang:RANK:STEP    rank RANK stops responding before its STEP-th step
//   DIST_TRAINER_FAULT=crash:RANK:STEP   rank RANK dies (SIGKILL) before its STEP-th step
//   DIST_TRAINER_FAULT=pause:RANK:STEP[:FILE]   rank RANK, before its STEP-th step, creates FILE
//                                        (default: the file named by DIST_TRAINER_FAULT_READY) and
//                                        waits for a stop signal, then goes on (so the stop takes
//                                        effect after that step); a pause whose file exists already
//                                        does not happen again (a restarted job's next run)
//   DIST_TRAINER_FAULT=startup:RANK      rank RANK (the launcher's numbering) never starts MPI, in any
//                                        command: the others wait in MPI's start-up
// Several faults, comma-separated, act independently (a test of two successive host losses).
//
// STEP counts the steps this process has run (1-based), across epochs and learning rates. This is
// how the test suite produces a hung or dead rank, or a signal or a kill, at a known moment instead
// of after a sleep that races the training speed; it is not for production.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class FaultInjection {
    enum Kind: String { case hang, crash, pause }
    struct Fault {
        let kind: Kind
        let atStep: Int
        /// The file `pause` creates once it is waiting.
        let readyFile: String?
    }
    /// This rank's faults.
    let faults: [Fault]
    private var count = 0

    /// The faults configured for `rank`, or nil when there are none.
    init?(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let spec = environment["DIST_TRAINER_FAULT"] else { return nil }
        faults = spec.split(separator: ",").compactMap { item in
            let parts = item.split(separator: ":", maxSplits: 3).map(String.init)
            guard parts.count >= 3, let kind = Kind(rawValue: parts[0]), let r = Int(parts[1]), let s = Int(parts[2]), r == rank else {
                return nil
            }
            return Fault(kind: kind, atStep: s, readyFile: parts.count == 4 ? parts[3] : environment["DIST_TRAINER_FAULT_READY"])
        }
        if faults.isEmpty { return nil }
    }

    /// Hangs this process for good if it is the rank a `startup:RANK` fault names (called before
    /// MPI is initialised, with the launcher's rank).
    static func beforeMPIStartup(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let spec = environment["DIST_TRAINER_FAULT"], spec == "startup:\(rank)" else { return }
        while true { sleep(3600) }
    }

    /// Called before every step.
    func beforeStep() {
        count += 1
        for fault in faults where fault.atStep == count {
            switch fault.kind {
            case .hang: while true { sleep(3600) }
            case .crash: kill(getpid(), SIGKILL)
            case .pause: pauseUntilStopSignal(readyFile: fault.readyFile)
            }
        }
    }

    /// Announces the pause through the ready file, then waits (at most ten minutes, so a broken
    /// test cannot leave a process behind forever) until a stop signal has arrived. Pauses once:
    /// when the ready file exists already (a requeued job's second run), it does not pause again.
    private func pauseUntilStopSignal(readyFile: String?) {
        if let readyFile {
            guard !FileManager.default.fileExists(atPath: readyFile) else { return }
            _ = FileManager.default.createFile(atPath: readyFile, contents: Data("\(getpid())\n".utf8))
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + 600_000_000_000
        while !StopSignal.requested() && DispatchTime.now().uptimeNanoseconds < deadline { usleep(5_000) }
    }
}
