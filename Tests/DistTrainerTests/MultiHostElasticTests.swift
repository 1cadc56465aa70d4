// MultiHostElasticTests: elastic training across emulated hosts — scripts/train.sh with
// MAX_RESTARTS restarts a job that lost a host on the hosts that still answer, from its newest
// in-epoch checkpoint, and the job ends with exactly the bits of the uninterrupted single-process
// run; a host that answers again takes part again; bad input is not restarted; too few hosts end
// the job. Run with MultiHostTests, alone after the rest (scripts/test.sh): they time a failover.
import Foundation
import TestSupport
import XCTest

final class MultiHostElasticTests: XCTestCase {
    /// 1200 training samples in steps of 60: 20 steps per epoch; a checkpoint every 10 steps.
    let recipe = ["--hidden", "64,32", "--lr", "0.003", "--batch-size", "60", "--threads", "1"]
    let elastic = ["--checkpoint-every", "10", "--collective-timeout", "5"]
    let timeout = 5.0

    /// scripts/train.sh started in the background on `cluster` with the elastic settings `env`; its
    /// output (stdout and stderr) goes to `log`.
    func startTrainScript(_ cluster: EmulatedCluster?, _ args: [String], env: [String: String], log: String) throws -> Process {
        var environment = ["DIST_TRAINER_SKIP_BUILD": "1", "DIST_TRAINER_BIN": try trainerBinary()].merging(env) { _, new in new }
        if let cluster {
            environment["HOSTFILE"] = cluster.hostfile
            environment["MPIRUN_ARGS"] = (cluster.launchArguments + ["-x", "DIST_TRAINER_FAULT", "-x", "DIST_TRAINER_FAULT_READY"]).joined(separator: " ")
        }
        return try startProcess(repositoryPath("scripts/train.sh"), args, environment: environment, log: log)
    }

    /// Waits (at most `seconds`) while `p` runs until `log` contains `needle` `count` times; when.
    func waitFor(_ needle: String, count: Int = 1, in log: String, while p: Process, seconds: Double = 180) -> Date? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.components(separatedBy: needle).count > count { return Date() }
            if !p.isRunning { return nil }
            usleep(50_000)
        }
        return nil
    }

    func finish(_ p: Process, log: String, seconds: Double = 240) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(100_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    }

    /// The uninterrupted single-process run of `epochs` epochs on `data`.
    func reference(_ tmp: String, epochs: Int) throws -> String {
        let dir = tmp + "/reference"
        let r = try runTrainer(["train", "--data-dir", tmp + "/data", "--run-dir", dir, "--epochs", String(epochs)] + recipe)
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir
    }

    // MARK: - One host lost

    /// Host 3's link goes down in epoch 2 (rank 2 paused before its 30th step): the job restarts on
    /// hosts 1 and 2 within the collective timeout + 20 s of the fault, loses at most 10 steps, and
    /// ends with exit 0 and the uninterrupted single-process run's bits.
    func testLostLinkRestartsOnTheSurvivorsWithTheSameBits() throws {
        try loseHost("link") { cluster in try cluster.netns("link-down", cluster.hosts[2]) }
    }

    /// Every process of host 3 is killed (the host itself still answers, so it takes part again).
    func testKilledProcessesRestartWithTheSameBits() throws {
        try loseHost("kill") { cluster in try cluster.killEverything(on: cluster.hosts[2]) }
    }

    func loseHost(_ name: String, fault: (EmulatedCluster) throws -> Void) throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let cluster = try EmulatedCluster(self, hosts: 3)
        let full = try reference(tmp, epochs: 3)
        let (run, log, ready) = (tmp + "/run", tmp + "/run.log", tmp + "/paused")
        let p = try startTrainScript(cluster, ["--data-dir", tmp + "/data", "--run-dir", run, "--epochs", "3"] + recipe + elastic,
                                     env: ["MAX_RESTARTS": "2", "DIST_TRAINER_FAULT": "pause:2:30", "DIST_TRAINER_FAULT_READY": ready], log: log)
        XCTAssertTrue(waitForFile(ready, while: p), "\(name): rank 2 never paused")
        let struck = Date()
        try fault(cluster)
        let resumed = waitFor("resuming from", in: log, while: p)
        let output = finish(p, log: log)
        XCTAssertEqual(p.terminationStatus, 0, "\(name): \(output)")
        let seconds = (resumed ?? .distantFuture).timeIntervalSince(struck)
        XCTAssertLessThanOrEqual(seconds, timeout + 20, "\(name): training again \(seconds) s after the fault: \(output)")
        print("\(name): training again \(String(format: "%.1f", seconds)) s after the fault")
        let lines = output.split(separator: "\n").filter { $0.hasPrefix("train.sh: restart ") }
        XCTAssertEqual(lines.count, 1, output)
        let expectedRanks = name == "link" ? 2 : 3
        XCTAssertTrue(lines.first?.contains("restart 1 of 2: lost \(name == "link" ? cluster.hosts[2] : "a rank")") ?? false, output)
        XCTAssertTrue(lines.first?.contains("\(expectedRanks) ranks on") ?? false, output)
        XCTAssertEqual(try readJSON(run + "/config.json")["ranks"] as? Int, expectedRanks)
        let restarts = try readJSON(run + "/summary.json")["restarts"] as? [[String: Any]] ?? []
        XCTAssertEqual(restarts.count, 1)
        let lost = restarts.first?["steps_lost"] as? Int ?? -1
        XCTAssertTrue((0...10).contains(lost), "\(name): \(lost) steps lost, expected at most --checkpoint-every 10")
        if let difference = try runDifference(full, run) { XCTFail("\(name): \(difference)") }
    }

    // MARK: - A host comes back, another goes

    /// Host 3 is lost (restart 1 on hosts 1-2), then answers again; then host 2 is lost: restart 2
    /// runs on hosts 1 and 3. The result is still the uninterrupted run's bits.
    func testAHostThatAnswersAgainTakesPartAgain() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let cluster = try EmulatedCluster(self, hosts: 3)
        let full = try reference(tmp, epochs: 4)
        let (run, log) = (tmp + "/run", tmp + "/run.log")
        // Attempt 1: rank 2 (host 3) pauses before its 30th step. Attempt 2 resumes from run step 20;
        // its rank 1 (host 2) pauses before its 30th step, run step 49 (attempt 1 never gets there).
        let faults = "pause:2:30:\(tmp)/first,pause:1:30:\(tmp)/second"
        let p = try startTrainScript(cluster, ["--data-dir", tmp + "/data", "--run-dir", run, "--epochs", "4"] + recipe + elastic,
                                     env: ["MAX_RESTARTS": "3", "DIST_TRAINER_FAULT": faults], log: log)
        XCTAssertTrue(waitForFile(tmp + "/first", while: p))
        try cluster.netns("link-down", cluster.hosts[2])
        XCTAssertNotNil(waitFor("resuming from", in: log, while: p))
        try cluster.netns("link-up", cluster.hosts[2])
        XCTAssertTrue(waitForFile(tmp + "/second", while: p))
        try cluster.netns("link-down", cluster.hosts[1])
        let output = finish(p, log: log)
        XCTAssertEqual(p.terminationStatus, 0, output)
        let lines = output.split(separator: "\n").filter { $0.hasPrefix("train.sh: restart ") }
        XCTAssertEqual(lines.count, 2, output)
        XCTAssertTrue(lines.first?.contains("lost \(cluster.hosts[2])") ?? false, output)
        XCTAssertTrue(lines.last.map { $0.contains("lost \(cluster.hosts[1])") && $0.contains("2 ranks on \(cluster.hosts[0]) \(cluster.hosts[2])") } ?? false, output)
        if let difference = try runDifference(full, run) { XCTFail(difference) }
    }

    // MARK: - What is not restarted

    /// Too few hosts left: MIN_HOSTS=3 and host 3 lost end the job with one line and exit 69.
    func testFewerHostsThanMinHostsEndsTheJob() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let cluster = try EmulatedCluster(self, hosts: 3)
        let (log, ready) = (tmp + "/run.log", tmp + "/paused")
        let p = try startTrainScript(cluster, ["--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--epochs", "3"] + recipe + elastic,
                                     env: ["MAX_RESTARTS": "2", "MIN_HOSTS": "3", "DIST_TRAINER_FAULT": "pause:2:30", "DIST_TRAINER_FAULT_READY": ready],
                                     log: log)
        XCTAssertTrue(waitForFile(ready, while: p))
        try cluster.netns("link-down", cluster.hosts[2])
        let output = finish(p, log: log)
        XCTAssertEqual(p.terminationStatus, 69, output)
        let ours = output.split(separator: "\n").filter { $0.hasPrefix("train.sh:") && !$0.hasPrefix("train.sh: wrote") }
        XCTAssertEqual(ours.count, 1, output)
        XCTAssertTrue(ours.first?.contains("only 2 host(s) answer, fewer than MIN_HOSTS=3; giving up") ?? false, output)
        XCTAssertFalse(output.contains("resuming from"), output)
    }

    /// Bad input (65), a refused flag (64) and a diverged run (3) end an elastic job at once, with
    /// the binary's line and the script's reason: a restart would fail the same way.
    func testFailuresARestartCannotFixAreNotRestarted() throws {
        _ = try mpirunPath()
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 600, test: 100)
        let cases: [(String, [String], Int32, String)] = [
            ("missing data", ["--data-dir", tmp + "/missing"], 65, "bad input"),
            ("batch larger than the data", ["--data-dir", tmp + "/data", "--batch-size", "100000"], 64, "a bad or refused flag"),
            ("diverged", ["--data-dir", tmp + "/data", "--lr", "1e38", "--epochs", "1"], 3, "every learning rate diverged"),
        ]
        for (name, args, status, reason) in cases {
            let log = tmp + "/\(status).log"
            let p = try startTrainScript(nil, args + ["--run-dir", tmp + "/run\(status)", "--hidden", "16,8", "--threads", "1"],
                                         env: ["MAX_RESTARTS": "3", "NP": "2"], log: log)
            let output = finish(p, log: log, seconds: 120)
            XCTAssertEqual(p.terminationStatus, status, "\(name): \(output)")
            let line = output.split(separator: "\n").first { $0.hasPrefix("train.sh: not restarting: ") } ?? ""
            XCTAssertTrue(line.contains(reason) && line.hasSuffix("(exit \(status))"), "\(name): \(output)")
            XCTAssertFalse(output.contains("train.sh: restart "), "\(name): \(output)")
        }
    }
}
