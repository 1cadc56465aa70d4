// SlurmTests: the Slurm scripts (scripts/slurm) end to end on a throwaway one-node Slurm cluster.
//
// Runs scripts/slurm/test_cluster.sh, which starts a private munged, slurmctld and slurmd (installing
// slurm-wlm and munge with apt when missing), submits train.sbatch and a 2-point array sweep of 2-rank
// srun/PMIx jobs plus the combine job via submit_sweep.sh, checks the results, and stops its daemons
// by PID on exit. Exit 0 passes, 77 skips (not root, or Slurm cannot be installed), anything else
// fails with the script's output (which includes the relevant job and daemon logs).
import Foundation
import TestSupport
import XCTest

final class SlurmTests: XCTestCase {
    /// scripts/slurm/test_cluster.sh of this checkout, found from this file's path.
    static let script = repositoryPath("scripts/slurm/test_cluster.sh")

    func testSweepOnOneNodeSlurmCluster() throws {
        try runClusterTest([])
    }

    /// One slurmd per emulated host (network namespaces): `srun --mpi=pmix -N 2` and a 2-node
    /// train.sbatch job run one rank on each host.
    func testTwoNodeSlurmCluster() throws {
        try runClusterTest(["--nodes", "2"])
    }

    /// A job preempted with `scontrol requeue`, and one warned with SIGUSR1 before its time limit,
    /// come back by themselves and end with the uninterrupted job's numbers.
    func testRequeuedJobsResumeExactly() throws {
        try runClusterTest(["--requeue"])
    }

    /// Elastic under Slurm: a 2-node train.sbatch job with MAX_RESTARTS=1 loses its second node
    /// mid-epoch (slurmd and its processes killed, link down); the batch script starts the step
    /// again on the first node (srun --exclude, --overlap) and the job ends with the uninterrupted
    /// single-process run's bits.
    func testLostNodeRestartsTheStepOnTheRest() throws {
        try runClusterTest(["--elastic"])
    }

    func runClusterTest(_ arguments: [String]) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.script) else {
            return XCTFail("\(Self.script): missing or not executable")
        }
        let binary = try trainerBinary()
        // SIGTERM on timeout, then up to a minute for the script to stop its daemons (its EXIT trap)
        // before SIGKILL. Not runProcess: the sbatch scripts must set up Open MPI's environment themselves.
        let r = try runCommand("/bin/bash", [Self.script] + arguments, environment: ["DIST_TRAINER_BIN": binary], timeout: 600,
                               graceSeconds: 60, standardInput: .nullDevice)
        let output = r.stdout + r.stderr
        print(output)

        // Whatever happened, none of the script's daemons (munged, slurmctld, slurmd: their command
        // lines name its temporary directory) may still be running.
        if let dir = output.range(of: #"/tmp/dist-trainer-slurm\.[A-Za-z0-9]+"#, options: .regularExpression) {
            let leftovers = processes(mentioning: String(output[dir]))
            XCTAssertTrue(leftovers.isEmpty, "daemons left running: \(leftovers)")
        }

        if r.status == 77 {
            let reason = output.split(separator: "\n").first { $0.contains("SKIP:") }
                .map { String($0.split(separator: ":", maxSplits: 1).last ?? $0).trimmingCharacters(in: .whitespaces) }
            throw XCTSkip(reason.map { "test_cluster.sh: \($0)" } ?? "test_cluster.sh skipped")
        }
        XCTAssertFalse(r.timedOut, "test_cluster.sh did not finish in 600 s")
        XCTAssertEqual(r.status, 0, "test_cluster.sh failed; its output:\n\(output)")
        XCTAssertTrue(output.contains("PASS"), output)
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
