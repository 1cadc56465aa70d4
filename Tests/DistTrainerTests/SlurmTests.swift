// SlurmTests: the Slurm scripts (scripts/slurm) end to end on a throwaway one-node Slurm cluster.
//
// Runs scripts/slurm/test_cluster.sh, which starts a private munged, slurmctld and slurmd (installing
// slurm-wlm and munge with apt when missing), submits train.sbatch and a 2-point array sweep of 2-rank
// srun/PMIx jobs plus the combine job via submit_sweep.sh, checks the results, and stops its daemons
// by PID on exit. Exit 0 passes, 77 skips (not root, or Slurm cannot be installed), anything else
// fails with the script's output (which includes the relevant job and daemon logs).
import Foundation
import XCTest

final class SlurmTests: XCTestCase {
    /// scripts/slurm/test_cluster.sh of this checkout, found from this file's path.
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/slurm/test_cluster.sh").path

    func testSweepOnOneNodeSlurmCluster() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.script) else {
            return XCTFail("\(Self.script): missing or not executable")
        }
        let binary = try trainerBinary()
        let r = try runClusterTest(environment: ["DIST_TRAINER_BIN": binary], timeout: 600)
        print(r.output)

        // Whatever happened, none of the script's daemons (munged, slurmctld, slurmd: their command
        // lines name its temporary directory) may still be running.
        if let dir = r.output.range(of: #"/tmp/dist-trainer-slurm\.[A-Za-z0-9]+"#, options: .regularExpression) {
            let leftovers = processes(mentioning: String(r.output[dir]))
            XCTAssertTrue(leftovers.isEmpty, "daemons left running: \(leftovers)")
        }

        if r.status == 77 {
            let reason = r.output.split(separator: "\n").first { $0.contains("SKIP:") }
                .map { String($0.split(separator: ":", maxSplits: 1).last ?? $0).trimmingCharacters(in: .whitespaces) }
            throw XCTSkip(reason.map { "test_cluster.sh: \($0)" } ?? "test_cluster.sh skipped")
        }
        XCTAssertFalse(r.timedOut, "test_cluster.sh did not finish in 600 s")
        XCTAssertEqual(r.status, 0, "test_cluster.sh failed; its output:\n\(r.output)")
        XCTAssertTrue(r.output.contains("PASS"), r.output)
    }

    struct ScriptResult {
        var status: Int32
        var output: String
        var timedOut: Bool
    }

    /// Runs the script with stdout and stderr into one file. On timeout it gets SIGTERM and up to a
    /// minute to stop its daemons (its EXIT trap) before SIGKILL, unlike runProcess's 2 seconds.
    func runClusterTest(environment extra: [String: String], timeout: Double) throws -> ScriptResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.script]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let log = NSTemporaryDirectory() + "slurm-test-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: log) }
        let handle = FileHandle(forWritingAtPath: log)!
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        let start = Date()
        try p.run()
        var timedOut = false
        while p.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                p.terminate()
                let grace = Date()
                while p.isRunning && Date().timeIntervalSince(grace) < 60 { usleep(100_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                break
            }
            usleep(100_000)
        }
        p.waitUntilExit()
        try? handle.close()
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return ScriptResult(status: p.terminationStatus, output: output, timedOut: timedOut)
    }

    /// "pid: command line" of every live process whose command line contains `text`.
    func processes(mentioning text: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return pids.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
            let command = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return command.contains(text) ? "\(pid): \(command)" : nil
        }
    }
}
