// ScriptTests: the shell scripts as a new user runs them. Started from a directory outside the
// repository, train.sh and sweep.sh take relative paths (--run-dir, --data-dir, --config,
// --sweep-dir) to mean that directory; train.sh lets the binary say where the run goes (train
// --print-run-dir) and hands help and bad flags to it unchanged; every option that lacks its value
// is named in one line; netaddr.py plans the emulated cluster's subnet; and netns.sh's env file
// reads back intact when the state directory's path has spaces and a quote.
import Foundation
import TestSupport
import XCTest

final class ScriptTests: XCTestCase {
    /// Flags of a tiny run: one epoch of a small network on the synthetic data (a few seconds).
    let tiny = ["--epochs", "1", "--hidden", "16", "--batch-size", "50", "--lr", "0.005", "--threads", "1"]

    /// The scripts run the binary under test without building it, on one rank.
    func scriptEnvironment() throws -> [String: String] {
        ["DIST_TRAINER_SKIP_BUILD": "1", "DIST_TRAINER_BIN": try trainerBinary(), "NP": "1"]
    }

    /// A user's working directory outside the repository, holding the synthetic data set in `d`.
    func userDirectory() throws -> String {
        let dir = try temporaryDirectory(self, "dist-trainer-user")
        try writeSyntheticDataset(to: dir + "/d")
        return dir
    }

    func script(_ name: String, _ arguments: [String], in directory: String, timeout: Double = 300) throws -> RunResult {
        try runProcess(repositoryPath("scripts/" + name), arguments, environment: try scriptEnvironment(),
                       timeout: timeout, workingDirectory: directory)
    }

    /// Names under `directory` (none when it does not exist).
    func entries(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    /// train.sh's lines about the plots (plotted files, or why they were skipped).
    func plotLines(_ r: RunResult) -> [String] {
        r.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("train.sh: ") }
    }

    // MARK: - Relative paths mean the caller's directory

    /// train.sh started elsewhere with relative --run-dir, --data-dir and --config: the run lands in
    /// the caller's directory, with the caller's data and config, and nothing in the repository.
    /// (setup.sh used to cd into the repository, where `d` and `my.json` do not exist.)
    func testTrainScriptTakesRelativePathsFromTheCallersDirectory() throws {
        _ = try mpirunPath()
        let user = try userDirectory()
        let run = "myrun-\(UUID().uuidString.prefix(8))"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: repositoryPath(run)) }
        try FileManager.default.copyItem(atPath: repositoryPath("recipes/seed.json"), toPath: user + "/my.json")
        let r = try script("train.sh", ["--config", "my.json", "--data-dir", "d", "--run-dir", run] + tiny, in: user)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertNotNil(try? readJSON(user + "/" + run + "/summary.json")["test"], "no run in \(user)/\(run): \(r.stdout + r.stderr)")
        XCTAssertEqual(try readMetrics(user + "/" + run).count, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: repositoryPath(run)), "the run went into the repository")
        XCTAssertTrue(plotLines(r).contains { $0.contains(run) }, r.stdout)
    }

    /// sweep.sh started elsewhere with a relative --sweep-dir (with a space in it) and --data-dir.
    func testSweepScriptTakesRelativePathsFromTheCallersDirectory() throws {
        _ = try mpirunPath()
        let user = try userDirectory()
        let sweep = "my sweep-\(UUID().uuidString.prefix(8))"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: repositoryPath(sweep)) }
        let r = try script("sweep.sh", ["--sweep-dir", sweep, "--lr", "0.005", "--batch-size", "50", "--np", "1", "--",
                                        "--data-dir", "d", "--epochs", "1", "--hidden", "16", "--threads", "1"], in: user)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertNotNil(try? readJSON(user + "/" + sweep + "/model2-batch50-lr0.005/summary.json")["test"], r.stdout + r.stderr)
        XCTAssertEqual(try? readJSON(user + "/" + sweep + "/summary.json")["complete_runs"] as? Int, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: repositoryPath(sweep)), "the sweep went into the repository")
    }

    // MARK: - train.sh asks the binary where the run goes

    /// `--run-dir=DIR` (given), `--resume DIR` (given), no directory (new runs/<timestamp> in the
    /// caller's directory): the run and its plots go there. Help and bad flags reach the binary
    /// unchanged: help exits 0, a bad flag fails with the binary's error; neither trains nor plots,
    /// not even with a finished run's --run-dir or --resume beside -h/--help.
    func testTrainScriptAsksTheBinaryWhereTheRunGoes() throws {
        _ = try mpirunPath()
        let user = try userDirectory()
        let flags = ["--data-dir", "d"] + tiny

        let given = try script("train.sh", ["--run-dir=eq"] + flags, in: user)
        XCTAssertEqual(given.status, 0, given.stdout + given.stderr)
        XCTAssertEqual(try readMetrics(user + "/eq").count, 1)
        XCTAssertTrue(plotLines(given).contains { $0.contains("eq") }, given.stdout)

        let resumed = try script("train.sh", ["--resume", "eq", "--epochs", "2"], in: user)
        XCTAssertEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
        XCTAssertEqual(try readMetrics(user + "/eq").count, 2)
        XCTAssertTrue(plotLines(resumed).contains { $0.contains("eq") }, resumed.stdout)
        XCTAssertEqual(entries(user + "/runs"), [], "a given directory must not get a new one as well")

        let fresh = try script("train.sh", flags, in: user)
        XCTAssertEqual(fresh.status, 0, fresh.stdout + fresh.stderr)
        let runs = entries(user + "/runs")
        XCTAssertEqual(runs.count, 1, "\(runs)")
        let made = "runs/" + (runs.first ?? "?")
        XCTAssertNotNil(try? readJSON(user + "/" + made + "/summary.json")["test"], fresh.stdout)
        XCTAssertTrue(made.range(of: #"^runs/[0-9]{8}-[0-9]{6}"#, options: .regularExpression) != nil, made)
        XCTAssertTrue(plotLines(fresh).contains { $0.contains(made) }, fresh.stdout)

        // Help, also next to a finished run's directory (which the old bash parser then plotted).
        for help in [["-h"], ["--help"], ["--run-dir", "eq", "-h"], ["--resume", "eq", "--help"]] {
            let r = try script("train.sh", help, in: user, timeout: 60)
            XCTAssertEqual(r.status, 0, "\(help): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("USAGE:") && r.stdout.contains("--print-run-dir"), r.stdout)
            XCTAssertEqual(plotLines(r), [], "\(help)")
        }
        let bad = try script("train.sh", ["--epochs", "abc"] + ["--data-dir", "d"], in: user, timeout: 60)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("The value 'abc' is invalid for '--epochs"), bad.stderr)
        XCTAssertEqual(plotLines(bad), [])
        let missing = try script("train.sh", ["--run-dir"], in: user, timeout: 60)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("Missing value for '--run-dir"), missing.stderr)
        XCTAssertEqual(entries(user + "/runs").count, 1, "help or a bad flag made a run directory")
    }

    // MARK: - Bad arguments: one line naming the culprit

    /// Every option that takes a value, given without one (or followed by another option), and every
    /// argument a script does not take: a non-zero exit within seconds and exactly one line on
    /// stderr that names it (not bash's "unbound variable").
    func testScriptsNameTheBadArgumentInOneLine() throws {
        let cases: [(script: String, arguments: [String], needle: String)] = [
            ("sweep.sh", ["--sweep-dir"], "--sweep-dir needs a value"),
            ("sweep.sh", ["--lr"], "--lr needs a value"),
            ("sweep.sh", ["--model"], "--model needs a value"),
            ("sweep.sh", ["--batch-size"], "--batch-size needs a value"),
            ("sweep.sh", ["--np"], "--np needs a value"),
            ("sweep.sh", ["--parallel"], "--parallel needs a value"),
            ("sweep.sh", ["--hostfile"], "--hostfile needs a value"),
            ("sweep.sh", ["--args"], "--args needs a value"),
            ("sweep.sh", ["--lr", "--model", "1"], "--lr needs a value (found option '--model')"),
            ("sweep.sh", ["--np", "two"], "--np expects a positive integer, found 'two'"),
            ("slurm/submit_sweep.sh", ["--sweep-dir"], "--sweep-dir needs a value"),
            ("slurm/submit_sweep.sh", ["--lr"], "--lr needs a value"),
            ("slurm/submit_sweep.sh", ["--model"], "--model needs a value"),
            ("slurm/submit_sweep.sh", ["--batch-size"], "--batch-size needs a value"),
            ("slurm/submit_sweep.sh", ["--ntasks"], "--ntasks needs a value"),
            ("slurm/submit_sweep.sh", ["--sbatch-arg"], "--sbatch-arg needs a value"),
            ("slurm/test_cluster.sh", ["--nodes"], "--nodes needs a value"),
            ("cluster/netns.sh", ["up", "2", "--prefix"], "--prefix needs a value"),
            ("cluster/netns.sh", ["up", "2", "--subnet"], "--subnet needs a value"),
            ("cluster/netns.sh", ["up", "2", "--slots"], "--slots needs a value"),
            ("cluster/netns.sh", ["up", "two"], "found 'two'"),
            ("cluster/netns.sh", ["down", "--prefix"], "--prefix needs a value"),
            ("cluster/netns.sh", ["status", "--prefix"], "--prefix needs a value"),
            ("cluster/netns.sh", ["status", "--bogus"], "status: unknown argument '--bogus'"),
            ("cluster/netns.sh", ["env", "--prefix"], "--prefix needs a value"),
            ("cluster/netns.sh", ["ssh-up", "--prefix"], "--prefix needs a value"),
            ("cluster/netns.sh", ["shape", "1gbit", "--prefix"], "--prefix needs a value"),
            ("cluster/netns.sh", ["link-down", "h1", "h2"], "unknown argument 'h2'"),
            ("cluster/netns.sh", ["frob"], "unknown command 'frob'"),
            ("cluster/netns.sh", [], "a command is needed"),
            ("cluster/selftest.sh", ["--bogus"], "unknown argument '--bogus'"),
            ("bench.sh", ["--bogus"], "unknown argument '--bogus'"),
            ("bench_hosts.sh", ["--bogus"], "unknown argument '--bogus'"),
            ("fuzz.sh", ["nope", "5"], "unknown target 'nope'"),
            ("fuzz.sh", ["idx"], "SECONDS missing"),
            ("fuzz.sh", ["idx", "soon"], "found 'soon'"),
            ("lint.sh", ["nope"], "unknown check 'nope'"),
        ]
        // A script that ignored its arguments would build and run: this makes it fail fast instead.
        let inert = ["DIST_TRAINER_SKIP_BUILD": "1", "DIST_TRAINER_BIN": "/nonexistent/dist-trainer"]
        for c in cases {
            let r = try runProcess(repositoryPath("scripts/" + c.script), c.arguments, environment: inert, timeout: 30)
            let what = "\(c.script) \(c.arguments.joined(separator: " "))"
            XCTAssertFalse(r.timedOut, "\(what): hung")
            XCTAssertNotEqual(r.status, 0, what)
            XCTAssertLessThan(r.seconds, 15, what)
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(what): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(c.needle), "\(what): '\(c.needle)' not in: \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("unbound variable"), "\(what): \(r.stderr)")
        }
    }

    // MARK: - The emulated cluster's helpers

    /// netaddr.py: the first free 10.77.X.0/24, host bits dropped from --subnet, and one line for an
    /// overlap, a subnet too small, a malformed CIDR.
    /// The function-length check of scripts/lint.sh: a 61-line function is found (braces in
    /// strings and comments do not count, a protocol requirement has no body), a 60-line one is not.
    func testFunctionLengthCheckFindsALongFunction() throws {
        let tmp = try temporaryDirectory(self)
        let body = { (n: Int) in (0..<n).map { "    x += \($0) // { not a brace" }.joined(separator: "\n") }
        let swift = """
            protocol P {
                func requirement() throws
            }
            func fits() {
            \(body(58))
            }
            public static func tooLong(a: Int) -> String {
                let s = "{ {"
            \(body(58))
            }
            """
        try swift.write(toFile: tmp + "/A.swift", atomically: true, encoding: .utf8)
        let python = try requirePython([], install: [], requiredEnv: "NUMPY_REFERENCE_REQUIRED", feature: "the lint scripts")
        let r = try runCommand(python, [repositoryPath("scripts/function_lengths.py"), "--limit", "60", tmp])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertEqual(r.stdout, "\(tmp)/A.swift:64: 61 lines (limit 60): public static func tooLong(a: Int) -> String {\n")
        XCTAssertEqual(r.stderr, "")
        let relaxed = try runCommand(python, [repositoryPath("scripts/function_lengths.py"), "--limit", "61", tmp])
        XCTAssertEqual(relaxed.status, 0, relaxed.stdout)
        let sources = try runCommand(python, [repositoryPath("scripts/function_lengths.py"), repositoryPath("Sources")])
        XCTAssertEqual(sources.status, 0, "functions over 60 lines in Sources: \(sources.stdout)")
    }

    func testNetaddrPlansTheClusterSubnet() throws {
        let tmp = try temporaryDirectory(self)
        func plan(_ arguments: [String], used: String) throws -> RunResult {
            let input = tmp + "/used"
            try used.write(toFile: input, atomically: true, encoding: .utf8)
            return try runCommand(repositoryPath("scripts/cluster/netaddr.py"), ["plan"] + arguments, timeout: 30,
                                  standardInput: FileHandle(forReadingAtPath: input))
        }
        let auto = try plan(["2"], used: "10.77.0.5/24\n127.0.0.1\ndefault\n10.77.1.0/24\n")
        XCTAssertEqual(auto.status, 0, auto.stderr)
        XCTAssertEqual(auto.stdout, "10.77.2.0/24 10.77.2.1 24\n10.77.2.2\n10.77.2.3\n")
        let given = try plan(["1", "10.9.9.9/30"], used: "10.77.0.0/16\n")
        XCTAssertEqual(given.stdout, "10.9.9.8/30 10.9.9.9 30\n10.9.9.10\n", given.stderr)
        for (arguments, used, needle) in [(["2", "10.1.2.0/24"], "10.0.0.0/8\n", "subnet 10.1.2.0/24 overlaps 10.0.0.0/8"),
                                          (["2", "10.1.2.0/30"], "", "has room for 1 hosts, not 2"),
                                          (["1", "10.1.2.0/33"], "", "--subnet '10.1.2.0/33': not an IPv4 CIDR"),
                                          (["1"], "10.77.0.0/16\n", "no free 10.77.X.0/24")] {
            let r = try plan(arguments, used: used)
            XCTAssertEqual(r.status, 1, "\(arguments)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(needle), "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stdout, "")
        }
    }

    /// netns.sh with a state directory whose path has spaces and a quote: the env file reads back
    /// every path intact (strings and arrays), mpirun reaches both hosts through it, and ssh-up,
    /// which cannot carry such a path to Open MPI, refuses in one line.
    func testClusterEnvFileKeepsAStateDirectoryWithSpaces() throws {
        try EmulatedCluster.requireTools()
        let root = try temporaryDirectory(self) + "/state dir 'quoted'"
        let env = ["DTCLUSTER_STATE_ROOT": root]
        let netns = repositoryPath("scripts/cluster/netns.sh")
        let prefix = "ds\(String(UUID().uuidString.prefix(5)).lowercased())"
        // Its own subnet: a cluster under another state root does not share this one's lock.
        var up = try runCommand(netns, ["up", "2", "--prefix", prefix, "--subnet", "10.78.\(Int.random(in: 0...255)).0/24"], environment: env, timeout: 120)
        for _ in 0..<5 where up.status != 0 && up.stderr.contains("overlaps") {
            up = try runCommand(netns, ["up", "2", "--prefix", prefix, "--subnet", "10.78.\(Int.random(in: 0...255)).0/24"], environment: env, timeout: 120)
        }
        addTeardownBlock { _ = try? runCommand(netns, ["down", "--prefix", prefix], environment: env, timeout: 60) }
        XCTAssertEqual(up.status, 0, up.stderr)
        guard up.status == 0 else { return }

        let file = try runCommand(netns, ["env", "--prefix", prefix], environment: env).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(file, root + "/" + prefix + "/cluster.env")
        let read = try runCommand("/bin/bash", ["-c", """
            set -eu; source "$1"
            printf '%s\\n' "$DTCLUSTER_STATE" "$DTCLUSTER_HOSTFILE" "$DTCLUSTER_HOSTS" "${#DTCLUSTER_MPIRUN_ARGS[@]}" "${DTCLUSTER_MPIRUN_ARGS[1]}"
            """, "bash", file])
        XCTAssertEqual(read.status, 0, read.stderr)
        let state = root + "/" + prefix
        XCTAssertEqual(read.stdout.split(separator: "\n").map(String.init),
                       [state, state + "/hostfile", "\(prefix)1 \(prefix)2", "19", state + "/hostfile"], read.stderr)
        XCTAssertEqual(try String(contentsOfFile: state + "/hostfile", encoding: .utf8), "\(prefix)1 slots=1\n\(prefix)2 slots=1\n")

        let ranks = try runProcess("/bin/bash", ["-c", "source \"$1\" && exec mpirun \"${DTCLUSTER_MPIRUN_ARGS[@]}\" -np 2 hostname", "bash", file],
                                   environment: env, timeout: 120)
        XCTAssertEqual(ranks.status, 0, ranks.stderr)
        XCTAssertEqual(ranks.stdout.split(separator: "\n").map(String.init).sorted(), ["\(prefix)1", "\(prefix)2"], ranks.stderr)

        let ssh = try runCommand(netns, ["ssh-up", "--prefix", prefix], environment: env, timeout: 60)
        XCTAssertNotEqual(ssh.status, 0)
        XCTAssertEqual(ssh.stderr.split(separator: "\n").count, 1, ssh.stderr)
        XCTAssertTrue(ssh.stderr.contains("contains whitespace"), ssh.stderr)
    }
}
