// Processes: running a child process from a test — output to temporary files (a chatty child can
// never block on a full pipe), a time limit after which it gets SIGTERM and then SIGKILL (so a hang
// fails the test instead of stalling CI), and paths into this checkout.
import Foundation

/// What a finished child process left behind.
public struct RunResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var timedOut: Bool
    public var seconds: Double
}

/// Runs `executable` with `arguments` and this process's environment plus `extra`. After `timeout`
/// seconds it gets SIGTERM (mpirun forwards it to its ranks; a script's EXIT trap runs), then up to
/// `graceSeconds` to exit before SIGKILL; the result says `timedOut`. `standardInput` nil inherits ours.
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                       timeout: Double = 300, graceSeconds: Double = 2, workingDirectory: String? = nil,
                       standardInput: FileHandle? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
    if let workingDirectory { p.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
    if let standardInput { p.standardInput = standardInput }
    let base = NSTemporaryDirectory() + "dist-trainer-run-\(UUID().uuidString.prefix(8))"
    let (outPath, errPath) = (base + ".out", base + ".err")
    defer { try? FileManager.default.removeItem(atPath: outPath); try? FileManager.default.removeItem(atPath: errPath) }
    guard FileManager.default.createFile(atPath: outPath, contents: nil),
          FileManager.default.createFile(atPath: errPath, contents: nil),
          let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath)
    else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: base]) }
    p.standardOutput = out
    p.standardError = err
    let start = Date()
    try p.run()
    var timedOut = false
    while p.isRunning {
        if Date().timeIntervalSince(start) > timeout {
            timedOut = true
            p.terminate()
            let grace = Date()
            while p.isRunning && Date().timeIntervalSince(grace) < graceSeconds { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            break
        }
        usleep(20_000)
    }
    p.waitUntilExit()
    try? out.close()
    try? err.close()
    return RunResult(status: p.terminationStatus,
                     stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                     stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
                     timedOut: timedOut, seconds: Date().timeIntervalSince(start))
}

/// The absolute path of `relative` (e.g. "scripts/plot_metrics.py") in this checkout, found from
/// this file's location (Tests/TestSupport/).
public func repositoryPath(_ relative: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(relative).path
}

/// The executable `name` (or path, when it contains a slash) would run: the first match on $PATH.
public func executableOnPath(_ name: String) -> String? {
    if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
