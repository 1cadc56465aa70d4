// FaultInjection: deliberate faults for the reliability tests, switched on by an environment
// variable and inert otherwise.
//
//   DIST_TRAINER_FAULT=hang:RANK:STEP    rank RANK stops responding before its STEP-th step
//   DIST_TRAINER_FAULT=crash:RANK:STEP   rank RANK dies (SIGKILL) before its STEP-th step
//
// STEP counts the steps this process has run (1-based), across epochs and learning rates. This is
// how the test suite produces a hung or dead rank at a known moment; it is not for production.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class FaultInjection {
    enum Kind: String { case hang, crash }
    let kind: Kind
    let atStep: Int
    private var count = 0

    /// The fault configured for `rank`, or nil.
    init?(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let spec = environment["DIST_TRAINER_FAULT"] else { return nil }
        let parts = spec.split(separator: ":").map(String.init)
        guard parts.count == 3, let kind = Kind(rawValue: parts[0]), let r = Int(parts[1]), let s = Int(parts[2]), r == rank else {
            return nil
        }
        self.kind = kind
        atStep = s
    }

    /// Called before every step.
    func step() {
        count += 1
        guard count == atStep else { return }
        switch kind {
        case .hang: while true { sleep(3600) }
        case .crash: kill(getpid(), SIGKILL)
        }
    }
}
