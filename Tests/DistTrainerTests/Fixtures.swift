// Fixtures: what the end-to-end tests share — a small synthetic Fashion-MNIST-shaped data set
// written as real IDX files; running the dist-trainer binary (directly or under mpirun) with a
// time limit, so that a hang fails the test instead of stalling CI, or in the background for a test
// that signals it; and reading run directories. The process runner itself is TestSupport's.
import Datasets
import Formats
import Foundation
import Kernels
import TestSupport
import XCTest

// MARK: - Synthetic data

/// Writes a learnable synthetic data set in the four IDX files (.gz) into `directory`: each class
/// has a random template, each image is its class template plus noise.
func writeSyntheticDataset(to directory: String, train: Int = 700, test: Int = 200, rows: Int = 8, cols: Int = 8,
                           classes: Int = 10, seed: UInt64 = 1, gzipped: Bool = true) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let key = RandomKey(seed: seed, .split)
    let width = rows * cols
    func images(_ count: Int, offset: Int) -> (pixels: [UInt8], labels: [UInt8]) {
        var pixels = [UInt8](repeating: 0, count: count * width)
        var labels = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            let label = Int(key.bits(1_000_000 + offset + i) % UInt64(classes))
            labels[i] = UInt8(label)
            for j in 0..<width {
                let template = Int(key.bits(label * width + j) % 256)
                let noise = Int(key.bits(2_000_000 + (offset + i) * width + j) % 121) - 60
                pixels[i * width + j] = UInt8(max(0, min(255, template + noise)))
            }
        }
        return (pixels, labels)
    }
    let tr = images(train, offset: 0)
    let te = images(test, offset: train)
    func write(_ name: String, _ dims: [Int], _ bytes: [UInt8]) throws {
        let idx = encodeIDX(dims: dims, bytes: bytes)
        let path = directory + "/" + name + (gzipped ? ".gz" : "")
        try Data(gzipped ? gzip(idx) : idx).write(to: URL(fileURLWithPath: path))
    }
    try write(FashionMNIST.trainImages, [train, rows, cols], tr.pixels)
    try write(FashionMNIST.trainLabels, [train], tr.labels)
    try write(FashionMNIST.testImages, [test, rows, cols], te.pixels)
    try write(FashionMNIST.testLabels, [test], te.labels)
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase, _ name: String = "dist-trainer-test") throws -> String {
    let path = NSTemporaryDirectory() + "\(name)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

// MARK: - Running the binary

/// The dist-trainer executable under test: $DIST_TRAINER_BIN (scripts/test.sh points it at the
/// release build), else the one built next to this test bundle.
func trainerBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["DIST_TRAINER_BIN"], !path.isEmpty { return path }
    let bundleDir = URL(fileURLWithPath: CommandLine.arguments.first { $0.hasSuffix(".xctest") } ?? CommandLine.arguments[0])
        .deletingLastPathComponent()
    for candidate in [bundleDir.appendingPathComponent("dist-trainer").path,
                      Bundle.main.bundleURL.appendingPathComponent("dist-trainer").path] {
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw XCTSkip("dist-trainer binary not found; set DIST_TRAINER_BIN")
}

/// The environment the binary and mpirun run with: ours plus `extra`, with Open MPI allowed to run
/// as root (CI containers), the launcher liveness settings of scripts/mpi-env.sh, and one thread
/// per process, which keeps concurrent test processes from fighting over cores.
func trainerEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1",
     "OMPI_MCA_oob_tcp_keepalive_time": "1", "OMPI_MCA_oob_tcp_keepalive_intvl": "1", "OMPI_MCA_oob_tcp_keepalive_probes": "3",
     "OMPI_MCA_odls_base_sigkill_timeout": "3"]
        .merging(extra) { _, new in new }
}

/// Waits until `path` exists while `process` runs (at most two minutes); whether it appeared.
func waitForFile(_ path: String, while process: Process) -> Bool {
    let deadline = Date().addingTimeInterval(120)
    while !FileManager.default.fileExists(atPath: path) && process.isRunning && Date() < deadline { usleep(5_000) }
    return FileManager.default.fileExists(atPath: path)
}

/// Runs `executable` with `arguments` in `trainerEnvironment(extra)`; after `timeout` seconds it gets
/// SIGTERM, then `graceSeconds` before SIGKILL, and the result says `timedOut` (see runCommand).
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                timeout: Double = 300, graceSeconds: Double = 2, workingDirectory: String? = nil) throws -> RunResult {
    try runCommand(executable, arguments, environment: trainerEnvironment(extra), timeout: timeout,
                   graceSeconds: graceSeconds, workingDirectory: workingDirectory)
}

/// Starts `executable` in the background in `trainerEnvironment(extra)`, stdout and stderr both
/// into the file `log` (created; nil: discarded), for a test that signals or kills it while it runs.
func startProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                  log: String?) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(trainerEnvironment(extra)) { _, new in new }
    var output = FileHandle.nullDevice
    if let log {
        guard FileManager.default.createFile(atPath: log, contents: nil), let handle = FileHandle(forWritingAtPath: log) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: log])
        }
        output = handle
    }
    p.standardOutput = output
    p.standardError = output
    try p.run()
    return p
}

/// Runs dist-trainer directly (single process).
@discardableResult
func runTrainer(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> RunResult {
    try runProcess(try trainerBinary(), arguments, environment: environment, timeout: timeout)
}

/// The mpirun on PATH, or skip.
func mpirunPath() throws -> String {
    guard let path = executableOnPath("mpirun") else { throw XCTSkip("mpirun not found (install openmpi-bin)") }
    return path
}

/// Runs dist-trainer under `mpirun -np N` (oversubscribing the machine's cores when needed).
@discardableResult
func runMPI(_ np: Int, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> RunResult {
    // A TMPDIR of its own, as sweep.sh gives each job: Open MPI 4.1's mpiruns starting together (the
    // suite runs two test workers) can race for a shared session directory, and one then fails.
    let session = NSTemporaryDirectory() + "dts-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: session, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: session) }
    return try runProcess(try mpirunPath(), ["--oversubscribe", "-np", String(np), try trainerBinary()] + arguments,
                          environment: ["TMPDIR": session].merging(environment) { $1 }, timeout: timeout)
}

// MARK: - Reading run directories

/// The rows of metrics.jsonl as dictionaries.
func readMetrics(_ runDir: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)
    return try text.split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
}

func readJSON(_ path: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
}

/// Runs `arguments` (single process, or under mpirun with `np` > 1) and checks the bad-input
/// contract: exit ≠ 0 within 15 s, no crash dump, exactly one line of ours on stderr, containing
/// every needle.
func expectOneLine(np: Int = 1, _ arguments: [String], environment: [String: String] = [:], _ needles: [String],
                   file: StaticString = #filePath, line: UInt = #line) throws {
    let r = np == 1 ? try runTrainer(arguments, environment: environment, timeout: 30)
        : try runMPI(np, arguments, environment: environment, timeout: 30)
    XCTAssertFalse(r.timedOut, "\(arguments): hung", file: file, line: line)
    XCTAssertNotEqual(r.status, 0, "\(arguments)", file: file, line: line)
    XCTAssertLessThan(r.seconds, 15, "\(arguments): \(r.seconds) s", file: file, line: line)
    let ours = r.stderr.split(separator: "\n").filter { $0.hasPrefix("dist-trainer: error:") || $0.hasPrefix("Error:") }
    XCTAssertEqual(ours.count, 1, "\(arguments): \(r.stderr)", file: file, line: line)
    for needle in needles {
        XCTAssertTrue(ours.first?.contains(needle) ?? false, "'\(needle)' not in: \(r.stderr)", file: file, line: line)
    }
    XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Stack dump"), "crash: \(r.stderr)", file: file, line: line)
}
