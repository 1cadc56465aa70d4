// Fixtures: what the end-to-end tests share — a small synthetic Fashion-MNIST-shaped data set
// written as real IDX files, and running the dist-trainer binary (directly or under mpirun) with a
// time limit so that a hang fails the test instead of stalling CI.
import Core
import Foundation
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

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
    var seconds: Double
}

/// Runs `executable` with `arguments`; kills it (and fails) after `timeout` seconds.
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                timeout: Double = 300, workingDirectory: String? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    // One BLAS thread per process keeps concurrent test processes from fighting over cores.
    env["OPENBLAS_NUM_THREADS"] = "1"
    for (k, v) in extra { env[k] = v }
    p.environment = env
    if let workingDirectory { p.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
    // Output goes to files, not pipes: a chatty child can never block on a full pipe.
    let base = NSTemporaryDirectory() + "dist-trainer-run-\(UUID().uuidString.prefix(8))"
    FileManager.default.createFile(atPath: base + ".out", contents: nil)
    FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer { try? FileManager.default.removeItem(atPath: base + ".out"); try? FileManager.default.removeItem(atPath: base + ".err") }
    let out = FileHandle(forWritingAtPath: base + ".out")!, err = FileHandle(forWritingAtPath: base + ".err")!
    p.standardOutput = out
    p.standardError = err
    let start = Date()
    try p.run()
    var timedOut = false
    while p.isRunning {
        if Date().timeIntervalSince(start) > timeout {
            // SIGTERM first: mpirun forwards it to its ranks; then make sure.
            timedOut = true
            p.terminate()
            usleep(2_000_000)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            break
        }
        usleep(20_000)
    }
    p.waitUntilExit()
    try? out.close()
    try? err.close()
    let outText = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    let errText = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
    return RunResult(status: p.terminationStatus, stdout: outText, stderr: errText, timedOut: timedOut,
                     seconds: Date().timeIntervalSince(start))
}

/// Runs dist-trainer directly (single process).
@discardableResult
func runTrainer(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> RunResult {
    try runProcess(try trainerBinary(), arguments, environment: environment, timeout: timeout)
}

/// The mpirun on PATH, or skip.
func mpirunPath() throws -> String {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let candidate = "\(dir)/mpirun"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw XCTSkip("mpirun not found (install openmpi-bin)")
}

/// Runs dist-trainer under `mpirun -np N` (oversubscribing the machine's cores when needed).
@discardableResult
func runMPI(_ np: Int, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> RunResult {
    try runProcess(try mpirunPath(), ["--oversubscribe", "-np", String(np), try trainerBinary()] + arguments,
                   environment: environment, timeout: timeout)
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
