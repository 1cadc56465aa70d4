// MultiHostTests: dist-trainer across emulated hosts (network namespaces, TCP only, mpirun through
// an ssh stand-in or real ssh): the same numbers as on one node, the scripts users run, and faults
// that end the job within seconds with nothing left behind and a checkpoint that resumes exactly.
//
// scripts/test.sh runs this class on its own, after the parallel suite, so that its timing
// assertions (a lost host must end the job within the timeout + 10 s) do not compete with other
// tests for the machine's two cores.
import Formats
import Foundation
import TestSupport
import Training
import XCTest

final class MultiHostTests: XCTestCase {
    /// A small model on the synthetic data: epochs of 60 steps, a few seconds per run.
    let recipe = ["--hidden", "64,32", "--lr", "0.003", "--batch-size", "60", "--threads", "1"]
    /// The fields that must be bitwise equal between runs (everything but timings).
    let exactFields = ["lr", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]

    func assertSameMetrics(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (x, y) = (try readMetrics(a), try readMetrics(b))
        XCTAssertEqual(x.count, y.count, "\(a) vs \(b)", file: file, line: line)
        for (r, s) in zip(x, y) {
            for key in exactFields {
                XCTAssertEqual(r[key] as? Double, s[key] as? Double, "\(key) epoch \(r["epoch"] ?? "?"): \(a) vs \(b)", file: file, line: line)
            }
        }
        let (t, u) = (try readJSON(a + "/summary.json")["test"] as! [String: Any], try readJSON(b + "/summary.json")["test"] as! [String: Any])
        XCTAssertEqual(t["loss"] as? Double, u["loss"] as? Double, "test loss", file: file, line: line)
        XCTAssertEqual(t["accuracy"] as? Double, u["accuracy"] as? Double, "test accuracy", file: file, line: line)
    }

    /// mpirun with `arguments` (cluster options, -np, ...) then the binary and its arguments.
    func mpirun(_ arguments: [String], _ trainer: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> RunResult {
        try runProcess(try mpirunPath(), arguments + [try trainerBinary()] + trainer, environment: environment, timeout: timeout)
    }

    // MARK: - The cluster itself

    /// netns.sh and rsh-agent.sh end to end: two hosts in two namespaces with their own names over
    /// both launch paths, a lost host noticed by mpirun, and a tear-down that leaves nothing.
    func testClusterScriptsSelfTest() throws {
        try EmulatedCluster.requireTools()
        let r = try runCommand(repositoryPath("scripts/cluster/selftest.sh"), [], environment: ["DIST_TRAINER_BIN": try trainerBinary()], timeout: 300)
        if r.status == 77 { throw XCTSkip(r.stdout) }
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains(" 0 failed"), r.stdout)
    }

    // MARK: - Same numbers as one node

    /// `check`, `train` and `evaluate` on 2 and 3 hosts (one rank each, TCP): every check passes, and
    /// the run is bitwise the single process's (every metric, the summary's results, every tensor
    /// of both checkpoints), as is each evaluation.
    func testTwoAndThreeHostsMatchOneProcess() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let common = ["--data-dir", tmp + "/data", "--epochs", "2"] + recipe
        let single = tmp + "/single"
        let one = try runTrainer(["train", "--run-dir", single] + common)
        XCTAssertEqual(one.status, 0, one.stderr)
        for n in [2, 3] {
            let cluster = try EmulatedCluster(self, hosts: n)
            let check = try mpirun(cluster.mpirun(np: n), ["check"])
            XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
            XCTAssertTrue(check.stdout.contains("\(n) rank(s) on \(n) host(s)") && check.stdout.contains("all checks passed"), check.stdout)

            let hosts = tmp + "/hosts\(n)"
            let a = try mpirun(cluster.mpirun(np: n), ["train", "--run-dir", hosts] + common)
            XCTAssertEqual(a.status, 0, a.stderr)
            XCTAssertTrue(a.stdout.contains("\(n) ranks on \(n) hosts"), a.stdout)
            if let difference = try runDifference(single, hosts) { XCTFail("\(n) hosts against one process: \(difference)") }
            XCTAssertEqual(try readJSON(hosts + "/config.json")["hosts"] as? Int, n)

            for split in ["test", "val"] {
                let args = ["evaluate", "--checkpoint", hosts + "/best.safetensors", "--split", split, "--json"]
                let (e, f) = (try mpirun(cluster.mpirun(np: n), args), try runTrainer(args))
                XCTAssertEqual(e.status, 0, e.stderr)
                let (x, y) = (try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any],
                              try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as? [String: Any])
                XCTAssertEqual(x?["loss"] as? Double, y?["loss"] as? Double, split)
                XCTAssertEqual(x?["confusion_matrix"] as? [[Int]], y?["confusion_matrix"] as? [[Int]], split)
            }
            cluster.down()
        }
    }

    /// `check --network` reads a link's sustained rate: on links shaped to 1 Gbit/s (125 MB/s on
    /// the wire) it reports 90–150 MB/s (the first probe, a single ping-pong, read 170 MB/s because
    /// the token bucket refilled while each direction was idle), and far more unshaped.
    func testNetworkProbeReadsAShapedLink() throws {
        let cluster = try EmulatedCluster(self, hosts: 2)
        func probe() throws -> (latency: Double, bandwidth: Double, allreduce: Double, step: [String: Any]) {
            let r = try mpirun(cluster.mpirun(np: 2), ["check", "--network", "--json"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
            let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let link = (json?["links"] as? [[String: Any]])?.first
            XCTAssertEqual(json?["hosts"] as? Int, 2, line)
            // The overlap probe: a 4 MiB allreduce takes measurable time, and the hidden share is one.
            XCTAssertGreaterThan(json?["large_allreduce"] as? Double ?? 0, 0, line)
            XCTAssertTrue((0...1).contains(json?["overlap_hidden"] as? Double ?? -1), line)
            return (link?["latency"] as? Double ?? -1, link?["bandwidth"] as? Double ?? -1, json?["small_allreduce"] as? Double ?? -1,
                    json?["step_collectives"] as? [String: Any] ?? [:])
        }
        try cluster.shape("1gbit")
        let shaped = try probe()
        XCTAssertTrue((90e6...150e6).contains(shaped.bandwidth), "1 Gbit/s link read as \(shaped.bandwidth / 1e6) MB/s")
        XCTAssertTrue(shaped.latency > 0 && shaped.latency < 1e-3, "latency \(shaped.latency)")
        XCTAssertTrue(shaped.allreduce > 0 && shaped.allreduce < 1e-2, "small allreduce \(shaped.allreduce)")
        XCTAssertEqual(shaped.step["parameters"] as? Int, 477_898, "\(shaped.step)")
        // A step's collectives at Model 2's size move half of 477 898 Floats (0.96 MB) each way
        // twice: 1.9 MB. At 1 Gbit/s each 0.96 MB fits the shaping's burst (netns.sh: 1.25 MB), and
        // on a fast machine they measured 0.6–1 ms there, as unshaped; at 100 Mbit/s (12.5 MB/s,
        // a burst of 125 kB) they take 154 ms at the link's rate (measured 160 ms).
        try cluster.shape("100mbit")
        let slow = try probe()
        let slowStep = (slow.step["reduce_scatter"] as? Double ?? -1) + (slow.step["allgather"] as? Double ?? -1)
        XCTAssertTrue((0.1...1).contains(slowStep), "a step's collectives on 100 Mbit/s: \(slow.step)")
        try cluster.shape(nil)
        let free = try probe()
        XCTAssertGreaterThan(free.bandwidth, 3 * shaped.bandwidth, "unshaped \(free.bandwidth / 1e6) MB/s vs shaped \(shaped.bandwidth / 1e6)")
        let freeStep = (free.step["reduce_scatter"] as? Double ?? 1) + (free.step["allgather"] as? Double ?? 1)
        XCTAssertLessThan(freeStep, slowStep / 10, "unshaped \(free.step) against 100 Mbit/s \(slow.step)")
    }

    /// The path the README gives cluster users: password-less ssh to every host (mpirun's default
    /// launcher, found on PATH), `dist-trainer check`, then `HOSTFILE=... scripts/train.sh`.
    func testSSHLaunchAndTrainScript() throws {
        guard executableOnPath("sshd") != nil || FileManager.default.fileExists(atPath: "/usr/sbin/sshd") else {
            if ProcessInfo.processInfo.environment["MULTIHOST_REQUIRED"] == "1" { XCTFail("sshd not installed") }
            throw XCTSkip("sshd not installed (openssh-server)")
        }
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let cluster = try EmulatedCluster(self, hosts: 2, ssh: true)
        let path = cluster.sshDirectory! + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let check = try mpirun(cluster.siteArguments + ["--hostfile", cluster.hostfile, "-np", "2"], ["check"], environment: ["PATH": path])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("2 rank(s) on 2 host(s)") && check.stdout.contains("all checks passed"), check.stdout)

        // train.sh as a user runs it: the hostfile, and the site's NIC options in MPIRUN_ARGS.
        let r = try runProcess(repositoryPath("scripts/train.sh"), ["--data-dir", tmp + "/data", "--run-dir", tmp + "/run", "--epochs", "1"] + recipe,
                               environment: ["HOSTFILE": cluster.hostfile, "MPIRUN_ARGS": cluster.siteArguments.joined(separator: " "), "PATH": path,
                                             "DIST_TRAINER_SKIP_BUILD": "1", "DIST_TRAINER_BIN": try trainerBinary()])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("2 ranks on 2 hosts"), r.stdout)
        XCTAssertNotNil(try readJSON(tmp + "/run/summary.json")["test"])
    }

    /// scripts/sweep.sh --parallel 2 over 4 hosts: two jobs at once, each on its own two hosts, each
    /// with the numbers of the same learning rate trained on one node.
    func testSweepOverFourHostsInTwoGroups() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let cluster = try EmulatedCluster(self, hosts: 4)
        let flags = ["--data-dir", tmp + "/data", "--hidden", "64,32", "--threads", "1", "--epochs", "2"]
        let r = try runProcess(repositoryPath("scripts/sweep.sh"),
                               ["--sweep-dir", tmp + "/sweep", "--hostfile", cluster.hostfile, "--parallel", "2", "--lr", "0.003,0.001",
                                "--batch-size", "60", "--"] + flags,
                               environment: ["MPIRUN_ARGS": cluster.launchArguments.joined(separator: " "),
                                             "DIST_TRAINER_SKIP_BUILD": "1", "DIST_TRAINER_BIN": try trainerBinary()])
        // A failed job's own log says why (the directory is gone after the test).
        let logs = ((try? FileManager.default.contentsOfDirectory(atPath: tmp + "/sweep")) ?? []).filter { $0.hasSuffix(".log") }.sorted()
            .map { name in "--- \(name):\n" + ((try? String(contentsOfFile: tmp + "/sweep/" + name, encoding: .utf8)) ?? "").suffix(3000) }
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr + (r.status == 0 ? "" : logs.joined(separator: "\n")))
        guard r.status == 0 else { return }
        for lr in ["0.003", "0.001"] {
            let dir = tmp + "/sweep/model2-batch60-lr" + lr
            let config = try readJSON(dir + "/config.json")
            XCTAssertEqual(config["hosts"] as? Int, 2, dir)
            XCTAssertEqual(config["ranks"] as? Int, 2, dir)
            let node = tmp + "/node-lr" + lr
            XCTAssertEqual(try runMPI(2, ["train", "--run-dir", node, "--lr", lr, "--model", "2", "--batch-size", "60"] + flags).status, 0)
            try assertSameMetrics(dir, node)
        }
        XCTAssertEqual(try readJSON(tmp + "/sweep/summary.json")["complete_runs"] as? Int, 2)
    }

    /// A run on hosts 1 and 2 stopped by SIGTERM mid-epoch resumes on hosts 2, 3 and 4 (three ranks)
    /// and ends with the bits of the uninterrupted single-process run.
    func testResumeOnAnotherHostSet() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let cluster = try EmulatedCluster(self, hosts: 4)
        let common = ["--data-dir", tmp + "/data", "--epochs", "3"] + recipe
        XCTAssertEqual(try runTrainer(["train", "--run-dir", tmp + "/full"] + common).status, 0)

        // Rank 0 pauses before its 50th step (epoch 3 of 20-step epochs) until the signal arrives.
        let ready = tmp + "/paused"
        let first = try cluster.hostfile(Array(cluster.hosts[0..<2]), in: tmp)
        let p = try startProcess(try mpirunPath(), cluster.mpirun(np: 2, hostfile: first)
                                    + ["-x", "DIST_TRAINER_FAULT", "-x", "DIST_TRAINER_FAULT_READY", try trainerBinary(), "train", "--run-dir", tmp + "/cut"] + common,
                                 environment: ["DIST_TRAINER_FAULT": "pause:0:50", "DIST_TRAINER_FAULT_READY": ready], log: tmp + "/cut.log")
        XCTAssertTrue(waitForFile(ready, while: p), "rank 0 never reached its pause: \((try? String(contentsOfFile: tmp + "/cut.log", encoding: .utf8)) ?? "")")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let log = try String(contentsOfFile: tmp + "/cut.log", encoding: .utf8)
        XCTAssertTrue(log.contains("interrupted by SIGTERM"), log)
        XCTAssertEqual(try readMetrics(tmp + "/cut").count, 2)

        let second = try cluster.hostfile(Array(cluster.hosts[1..<4]), in: tmp)
        let resumed = try mpirun(cluster.mpirun(np: 3, hostfile: second), ["train", "--resume", tmp + "/cut"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming from") && resumed.stdout.contains("on 3 hosts"), resumed.stdout)
        if let difference = try runDifference(tmp + "/full", tmp + "/cut") { XCTFail("resumed on 3 hosts: \(difference)") }
    }

    // MARK: - Faults across hosts

    /// Host 2's link goes down mid-epoch: the job ends within --collective-timeout + 10 s with a
    /// line naming the collective and where training was, nothing is left on either host, and the
    /// checkpoint resumes on the surviving host alone (one process) to the uninterrupted run's bits.
    func testLostLinkEndsTheJobAndResumeIsExact() throws {
        try faultThenResume("link") { cluster in try cluster.netns("link-down", cluster.hosts[1]) }
    }

    /// Every process of host 2 is killed (the machine died): the same guarantees.
    func testKilledHostEndsTheJobAndResumeIsExact() throws {
        try faultThenResume("kill") { cluster in try cluster.killEverything(on: cluster.hosts[1]) }
    }

    func faultThenResume(_ name: String, fault: (EmulatedCluster) throws -> Void) throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 1500, test: 300)
        let cluster = try EmulatedCluster(self, hosts: 2)
        let common = ["--data-dir", tmp + "/data", "--epochs", "4"] + recipe
        XCTAssertEqual(try runMPI(2, ["train", "--run-dir", tmp + "/full"] + common).status, 0)

        // Rank 1 (host 2) pauses before its 50th step, in epoch 3; then the fault strikes.
        let ready = tmp + "/paused", timeout = 5.0
        let p = try startProcess(try mpirunPath(), cluster.mpirun(np: 2) + ["-x", "DIST_TRAINER_FAULT", "-x", "DIST_TRAINER_FAULT_READY",
                                                                             try trainerBinary(), "train", "--run-dir", tmp + "/cut",
                                                                             "--collective-timeout", String(Int(timeout))] + common,
                                 environment: ["DIST_TRAINER_FAULT": "pause:1:50", "DIST_TRAINER_FAULT_READY": ready], log: tmp + "/cut.log")
        XCTAssertTrue(waitForFile(ready, while: p), "rank 1 never reached its pause")
        let struck = Date()
        try fault(cluster)
        let deadline = struck.addingTimeInterval(timeout + 10)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        let seconds = Date().timeIntervalSince(struck)
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let log = try String(contentsOfFile: tmp + "/cut.log", encoding: .utf8)
        XCTAssertLessThanOrEqual(seconds, timeout + 10, "\(name): the job ran on \(seconds) s after the fault: \(log)")
        XCTAssertNotEqual(p.terminationStatus, 0)
        let ours = log.split(separator: "\n").filter { $0.hasPrefix("dist-trainer: error:") }
        XCTAssertEqual(ours.count, 1, log)
        XCTAssertTrue(ours.first.map { $0.contains("MPI_") && $0.contains("epoch 3 step") } ?? false, log)
        usleep(1_000_000)
        for host in cluster.hosts { XCTAssertEqual(cluster.processes(on: host), [], "\(name): left on \(host)") }
        try cluster.netns("link-up", cluster.hosts[1])

        let file = try readSafetensors(path: tmp + "/cut/last.safetensors")
        XCTAssertEqual(try CheckpointHeader(file, path: "last").kind, .last)
        XCTAssertTrue(file.metadata["position"]?.contains("\"epochs_done\":2") ?? false, file.metadata["position"] ?? "")
        let resumed = try runTrainer(["train", "--resume", tmp + "/cut"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        if let difference = try runDifference(tmp + "/full", tmp + "/cut") { XCTFail("\(name): resumed on one process: \(difference)") }
    }

    /// A host slowed by a CPU hog (sharing its rank's core): training goes on, and every epoch's
    /// line and metrics name that rank as the one the others waited for, and for how long. The hog's
    /// scheduling group gets a higher weight (autogroup nice -5), as a busy host's other work would;
    /// large batches and layers keep each step's compute (~50 ms) far longer than a scheduler slice,
    /// so the slowness lands in the compute that is measured and not only in message progress. (With
    /// ~8 ms of compute per step, a release build on a fast machine ran each step's compute within
    /// the credit the scheduler gives a task that slept while waiting for messages: no slowdown.)
    func testSlowHostIsNamed() throws {
        let tmp = try temporaryDirectory(self)
        try writeSyntheticDataset(to: tmp + "/data", train: 12000, test: 300, rows: 28, cols: 28)
        let cluster = try EmulatedCluster(self, hosts: 2)
        // Rank r runs on core r; the hog shares host 2's core.
        let pin = tmp + "/pin.sh"
        try "#!/bin/sh\nexec taskset -c \"$OMPI_COMM_WORLD_RANK\" \"$@\"\n".write(toFile: pin, atomically: true, encoding: .utf8)
        chmod(pin, 0o755)
        let hog = try cluster.startInside(cluster.hosts[1], ["taskset", "-c", "1", "sh", "-c", "echo -5 > /proc/$$/autogroup; while :; do :; done"])
        defer { hog.terminate() }
        // Wait until the hog is spinning (it has used CPU time), not only started: a run that began
        // before it once saw no slow rank at all.
        let started = Date().addingTimeInterval(10)
        while cluster.cpuSeconds(of: "sh", on: cluster.hosts[1]) < 0.05 && Date() < started { usleep(20_000) }
        XCTAssertGreaterThanOrEqual(cluster.cpuSeconds(of: "sh", on: cluster.hosts[1]), 0.05, "the CPU hog on \(cluster.hosts[1]) is not running")
        let r = try runProcess(try mpirunPath(), cluster.mpirun(np: 2) + [pin, try trainerBinary(), "train", "--data-dir", tmp + "/data",
                                                                            "--run-dir", tmp + "/run", "--epochs", "3", "--hidden", "1024,512",
                                                                            "--lr", "0.003", "--batch-size", "3000", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for row in try readMetrics(tmp + "/run") {
            XCTAssertEqual(row["slowest_rank"] as? Int, 1, "\(row)")
            let (low, high) = (row["compute_seconds_min"] as! Double, row["compute_seconds_max"] as! Double)
            XCTAssertGreaterThan(high, 1.5 * low, "\(row)")
        }
        XCTAssertTrue(r.stdout.contains("slowest rank 1 (\(cluster.hosts[1]))"), r.stdout)
    }

}
