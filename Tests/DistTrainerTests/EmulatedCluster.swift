// EmulatedCluster: N hosts made for one test by scripts/cluster/netns.sh (network namespaces on a
// bridge, each with its own address and host name), torn down when the test ends, pass or fail.
//
// mpirun reaches the hosts through scripts/cluster/rsh-agent.sh, or through real sshd's when the
// cluster is made with `ssh: true`. Every host shares this machine's file system, so the binary,
// the data and the run directories are at the same paths everywhere, as on a cluster with a shared
// file system. Needs root, iproute2 and mpirun; skipped otherwise (except in CI, see
// MULTIHOST_REQUIRED).
import Foundation
import TestSupport
import XCTest

final class EmulatedCluster {
    let prefix: String
    let hosts: [String]
    /// The hostfile naming every host (`slots` each).
    let hostfile: String
    /// mpirun options a site would use (TCP on the cluster's subnet, yield while idle, no binding).
    let siteArguments: [String]
    /// mpirun options for the rsh-agent path: the agent and the site options, no --hostfile.
    let launchArguments: [String]
    /// With `ssh: true`: a directory with an `ssh` that reaches the hosts with the cluster's key and
    /// config; first on PATH, it makes mpirun's default launcher (ssh) work as on a real cluster.
    let sshDirectory: String?
    private static let script = repositoryPath("scripts/cluster/netns.sh")
    private var script: String { Self.script }
    private var isUp = true

    /// Brings up `count` hosts for `test` (torn down in its teardown).
    init(_ test: XCTestCase, hosts count: Int, slots: Int = 1, ssh: Bool = false) throws {
        try EmulatedCluster.requireTools()
        let prefix = "dt\(String(UUID().uuidString.prefix(5)).lowercased())"
        self.prefix = prefix
        var arguments = ["up", String(count), "--prefix", prefix, "--slots", String(slots)]
        if ssh { arguments.append("--ssh") }
        let up = try runCommand(Self.script, arguments, timeout: 120)
        guard up.status == 0 else {
            _ = try? runCommand(Self.script, ["down", "--prefix", prefix], timeout: 60)
            throw XCTSkip("netns.sh up failed: \(up.stderr)")
        }
        hosts = (1...count).map { "\(prefix)\($0)" }
        let env = try runCommand(Self.script, ["env", "--prefix", prefix]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        func array(_ name: String) throws -> [String] {
            let r = try runCommand("/bin/bash", ["-c", "source \"$1\" && printf '%s\\n' \"${\(name)[@]}\"", "bash", env])
            return r.stdout.split(separator: "\n").map(String.init)
        }
        func value(_ name: String) throws -> String {
            try runCommand("/bin/bash", ["-c", "source \"$1\" && printf '%s' \"$\(name)\"", "bash", env]).stdout
        }
        hostfile = try value("DTCLUSTER_HOSTFILE")
        siteArguments = try array("DTCLUSTER_MPIRUN_COMMON_ARGS")
        launchArguments = ["--mca", "plm_rsh_agent", try value("DTCLUSTER_RSH_AGENT")] + siteArguments
        sshDirectory = ssh ? try value("DTCLUSTER_STATE") + "/ssh/bin" : nil
        test.addTeardownBlock { [self] in down() }
    }

    /// Root, `ip` and mpirun are needed; without them the test is skipped (CI sets
    /// MULTIHOST_REQUIRED=1 so that a missing piece fails instead).
    static func requireTools() throws {
        var missing: [String] = []
        if getuid() != 0 { missing.append("root") }
        for tool in ["ip", "mpirun", "unshare", "flock", "tc"] where executableOnPath(tool) == nil { missing.append(tool) }
        guard !missing.isEmpty else { return }
        let reason = "emulated cluster needs \(missing.joined(separator: ", "))"
        if ProcessInfo.processInfo.environment["MULTIHOST_REQUIRED"] == "1" { XCTFail(reason) }
        throw XCTSkip(reason)
    }

    /// Removes every namespace, interface, process and file of the cluster.
    func down() {
        guard isUp else { return }
        isUp = false
        _ = try? runCommand(script, ["down", "--prefix", prefix], timeout: 60)
    }

    /// A hostfile with just `hosts` (for jobs on part of the cluster), written into `directory`.
    func hostfile(_ names: [String], in directory: String) throws -> String {
        let path = directory + "/hosts-" + names.joined(separator: "-")
        try names.map { "\($0) slots=1\n" }.joined().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// mpirun's arguments for `np` ranks on `hostfile` (default: all hosts) through the rsh agent.
    func mpirun(np: Int, hostfile file: String? = nil) -> [String] {
        launchArguments + ["--hostfile", file ?? hostfile, "-np", String(np)]
    }

    /// Limits every link of the cluster to `rate` (tbf, e.g. "1gbit"), or lifts the limit (nil).
    func shape(_ rate: String?) throws {
        let r = try runCommand(script, (rate.map { ["shape", $0] } ?? ["unshape"]) + ["--prefix", prefix], timeout: 30)
        XCTAssertEqual(r.status, 0, "shape \(rate ?? "none"): \(r.stderr)")
    }

    /// Runs `netns.sh verb host` (link-down, link-up).
    func netns(_ verb: String, _ host: String) throws {
        let r = try runCommand(script, [verb, host], timeout: 30)
        XCTAssertEqual(r.status, 0, "\(verb) \(host): \(r.stderr)")
    }

    /// Starts `command` inside `host` in the background (killed by `down` at the latest).
    func startInside(_ host: String, _ command: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: script)
        p.arguments = ["exec", host] + command
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// The commands of the processes running inside `host` (sshd excluded).
    func processes(on host: String) -> [String] {
        guard let r = try? runCommand("/bin/sh", ["-c", "ip netns pids \"$1\" | xargs -r ps -o comm= -p", "sh", host]) else { return [] }
        return r.stdout.split(separator: "\n").map(String.init).filter { $0 != "sshd" }
    }

    /// The CPU seconds (user and system) used so far by the processes named `command` inside `host`
    /// (/proc/PID/stat's utime and stime, in the kernel's clock ticks).
    func cpuSeconds(of command: String, on host: String) -> Double {
        let script = """
            for p in $(ip netns pids "$1"); do
                [ "$(cat /proc/$p/comm 2>/dev/null)" = "$2" ] && awk '{ print $14 + $15 }' /proc/$p/stat 2>/dev/null
            done
            getconf CLK_TCK
            """
        guard let r = try? runCommand("/bin/sh", ["-c", script, "sh", host, command]) else { return 0 }
        let numbers = r.stdout.split(separator: "\n").compactMap { Double($0) }
        guard let ticksPerSecond = numbers.last, ticksPerSecond > 0 else { return 0 }
        return numbers.dropLast().reduce(0, +) / ticksPerSecond
    }

    /// Kills every process inside `host` (SIGKILL), as if the machine died.
    func killEverything(on host: String) throws {
        _ = try runCommand("/bin/sh", ["-c", "ip netns pids \"$1\" | xargs -r kill -9", "sh", host])
    }
}
