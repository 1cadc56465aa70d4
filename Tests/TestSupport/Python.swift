// Python: the Python oracles the tests compare against (NumPy, safetensors, matplotlib and the
// scripts under scripts/) — finding the interpreter, running it, and skipping a test with the reason
// printed when it or a module is missing, or failing it instead when CI sets NAME_REQUIRED=1.
//
// DIST_TRAINER_PYTHON overrides the interpreter (a path, or a name looked up on PATH); default:
// python3 on PATH.
import Foundation
#if canImport(XCTest)  // `swift build` compiles this target too, also where XCTest is missing
import XCTest
#endif

public enum Python {
    /// The interpreter as configured: $DIST_TRAINER_PYTHON when set and non-empty, else "python3".
    public static var name: String {
        ProcessInfo.processInfo.environment["DIST_TRAINER_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
    }

    /// The interpreter's path, nil when `name` is not an executable (on PATH).
    public static let path: String? = executableOnPath(name)

    struct NotFound: Error, CustomStringConvertible {
        var description: String {
            Python.name.contains("/") ? "\(Python.name) is not an executable file" : "\(Python.name) not found on PATH"
        }
    }

    /// Runs the interpreter with `arguments` (and `environment` added to ours); see `runCommand`.
    public static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> RunResult {
        guard let path else { throw NotFound() }
        return try runCommand(path, arguments, environment: environment, timeout: timeout)
    }

    /// Why the interpreter cannot import `modules` (nil when it can; `modules` empty: nil when the
    /// interpreter exists); `packages` is what `pip install` needs for them. Probed once per module list.
    public static func unavailableReason(importing modules: [String], install packages: [String]) -> String? {
        probes.value(for: modules.joined(separator: ", ")) {
            guard let path else { return NotFound().description }
            if modules.isEmpty { return nil }
            let run: RunResult
            do {
                // MPLBACKEND=Agg: importing matplotlib.pyplot must not look for a display.
                run = try runCommand(path, ["-c", "import " + modules.joined(separator: ", ")],
                                     environment: ["MPLBACKEND": "Agg"], timeout: 60)
            } catch {
                return "cannot start \(path): \(error)"
            }
            if run.status == 0 { return nil }
            let last = run.stderr.split(separator: "\n").last.map(String.init) ?? "exit status \(run.status)"
            return "\(modules.joined(separator: ", ")) not importable by \(path) (\(last)); "
                + "install with `\(path) -m pip install \(packages.joined(separator: " "))`"
        }
    }

    private static let probes = Memo()

    /// The probes' answers, behind a lock (shared mutable state must be thread-safe in Swift 6).
    private final class Memo: @unchecked Sendable {
        private let lock = NSLock()
        private var answers: [String: String?] = [:]
        func value(for key: String, _ compute: () -> String?) -> String? {
            lock.lock()
            defer { lock.unlock() }
            if let known = answers[key] { return known }
            let answer = compute()
            answers[key] = .some(answer)
            return answer
        }
    }
}

#if canImport(XCTest)
extension XCTestCase {
    /// Returns the Python interpreter's path when it can import `modules` (and `script`, if given,
    /// exists). Otherwise skips the test, printing the reason, or, when the environment variable
    /// `requiredEnv` is "1", fails it: "`feature` unavailable although `requiredEnv`=1: reason".
    @discardableResult
    public func requirePython(_ modules: [String], install packages: [String], script: String? = nil,
                              requiredEnv: String, feature: String,
                              file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let script, !FileManager.default.fileExists(atPath: script) {
            XCTFail("\(script) is missing", file: file, line: line)
            throw XCTSkip("failed above")
        }
        guard let reason = Python.unavailableReason(importing: modules, install: packages) else { return Python.path! }
        if ProcessInfo.processInfo.environment[requiredEnv] == "1" {
            XCTFail("\(feature) unavailable although \(requiredEnv)=1: \(reason)", file: file, line: line)
            throw XCTSkip("failed above")
        }
        print("\(String(describing: type(of: self))): skipping: \(reason)")
        throw XCTSkip("\(feature) unavailable: \(reason)")
    }
}
#endif
