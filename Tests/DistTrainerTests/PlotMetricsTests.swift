// Plots: scripts/plot_metrics.py turns a run directory or a sweep directory into PNG files — one per
// metric against epoch (one line per learning rate, or per run in a sweep) and confusion-matrix
// heatmaps from summary.json. The tests train tiny runs on synthetic 8×8 data, plot a run, a run
// still in progress (no summary.json) and a two-run sweep, and check every expected PNG is a real
// PNG (signature, IHDR of a plausible size) and that the metric plots differ from one another; and
// that a directory without metrics or with a malformed metrics.jsonl fails with one stderr line.
//
// Needs python3 with matplotlib (`python3 -m pip install matplotlib`); skipped (with the reason
// printed) when it is missing, unless MATPLOTLIB_REQUIRED=1, which turns the skip into a failure.
// DIST_TRAINER_PYTHON overrides the interpreter (default: python3 on PATH).
import Foundation
import TestSupport
import XCTest

final class PlotMetricsTests: XCTestCase {
    static let metricPlots = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]
    static let confusionPlots = ["confusion_test", "confusion_val"]

    /// A run with two learning rates: five metric plots plus the test and validation heatmaps, in
    /// DIR/plots by default; and the same metrics without summary.json (a run in progress) give the
    /// metric plots only, into --out.
    func testRunDirectoryPlots() throws {
        let python = try requirePython(matplotlib: true)
        let tmp = try temporaryDirectory(self, "plot-metrics")
        try writeSyntheticDataset(to: tmp + "/data")
        let run = tmp + "/run"
        try train(data: tmp + "/data", run: run, lr: "0.003,0.001")
        let metrics = try readMetrics(run)
        XCTAssertEqual(Set(metrics.compactMap { $0["lr"] as? Double }), [0.003, 0.001], "two learning rates recorded")

        let r = try runScript(python, [run])
        XCTAssertEqual(r.status, 0, r.stderr)
        try assertPlots(in: run + "/plots", expected: Self.metricPlots + Self.confusionPlots, stdout: r.stdout)

        // In progress: metrics.jsonl but no summary.json yet.
        let partial = tmp + "/partial", out = tmp + "/partial-plots"
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: run + "/metrics.jsonl", toPath: partial + "/metrics.jsonl")
        let p = try runScript(python, [partial, "--out", out])
        XCTAssertEqual(p.status, 0, p.stderr)
        try assertPlots(in: out, expected: Self.metricPlots, stdout: p.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial + "/plots"), "--out is where the plots go")
    }

    /// A two-run sweep directory (as scripts/sweep.sh lays out, plus a minimal sweep summary.json
    /// naming the best run): one line per run, the sweep's test matrix and the best run's
    /// validation matrix.
    func testSweepDirectoryPlots() throws {
        let python = try requirePython(matplotlib: true)
        let tmp = try temporaryDirectory(self, "plot-metrics")
        try writeSyntheticDataset(to: tmp + "/data")
        let sweep = tmp + "/sweep"
        try train(data: tmp + "/data", run: sweep + "/a-lr0.003", lr: "0.003")
        try train(data: tmp + "/data", run: sweep + "/b-lr0.001", lr: "0.001")
        try Data("log of a\n".utf8).write(to: URL(fileURLWithPath: sweep + "/a-lr0.003.log"))

        // Without a sweep summary (the sweep still running): metric plots only.
        let early = try runScript(python, [sweep, "--out", tmp + "/early"])
        XCTAssertEqual(early.status, 0, early.stderr)
        try assertPlots(in: tmp + "/early", expected: Self.metricPlots, stdout: early.stdout)

        // The sweep's summary.json, as `dist-trainer summarize` writes it (only the keys read here).
        let bestSummary = try readJSON(sweep + "/a-lr0.003/summary.json")
        let test = try XCTUnwrap(bestSummary["test"] as? [String: Any])
        let sweepSummary: [String: Any] = ["best_run": "a-lr0.003", "runs": 2, "complete_runs": 2, "test": test]
        try JSONSerialization.data(withJSONObject: sweepSummary).write(to: URL(fileURLWithPath: sweep + "/summary.json"))

        let r = try runScript(python, [sweep])
        XCTAssertEqual(r.status, 0, r.stderr)
        try assertPlots(in: sweep + "/plots", expected: Self.metricPlots + Self.confusionPlots, stdout: r.stdout)
    }

    /// A directory without metrics, a malformed metrics.jsonl line, and a missing directory: exit 1,
    /// nothing on stdout, one line on stderr naming the directory or the file and line.
    func testFailuresNameTheDirectoryOrLine() throws {
        let python = try requirePython(matplotlib: false)
        let tmp = try temporaryDirectory(self, "plot-metrics")
        let empty = tmp + "/empty"
        try FileManager.default.createDirectory(atPath: empty + "/not-a-run", withIntermediateDirectories: true)
        try assertFailsWithOneLine(python, [empty], mentioning: [empty, "metrics.jsonl"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: empty + "/plots"), "no output directory for a failure")

        let bad = tmp + "/bad"
        try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
        let good = #"{"epoch":1,"lr":0.003,"lr_index":0,"train_loss":1.2,"train_accuracy":0.5,"val_loss":1.1,"val_accuracy":0.55,"val_macro_f1":0.5}"#
        let second = good.replacingOccurrences(of: #""epoch":1"#, with: #""epoch":2"#)
        try Data((good + "\n" + second + "\n" + #"{"epoch":3,"lr":0.003,"train_loss":"#).utf8)
            .write(to: URL(fileURLWithPath: bad + "/metrics.jsonl"))
        try assertFailsWithOneLine(python, [bad], mentioning: [bad + "/metrics.jsonl", ":3"])

        // A malformed line inside one run of a sweep names that run's file.
        let sweep = tmp + "/sweep"
        try FileManager.default.createDirectory(atPath: sweep + "/r1", withIntermediateDirectories: true)
        try Data((good + "\n[1, 2]\n").utf8).write(to: URL(fileURLWithPath: sweep + "/r1/metrics.jsonl"))
        try assertFailsWithOneLine(python, [sweep], mentioning: [sweep + "/r1/metrics.jsonl", ":2"])

        try assertFailsWithOneLine(python, [tmp + "/missing"], mentioning: [tmp + "/missing"])
    }

    // MARK: - Helpers

    func train(data: String, run: String, lr: String) throws {
        let r = try runTrainer(["train", "--data-dir", data, "--run-dir", run, "--hidden", "16,8",
                                "--epochs", "2", "--lr", lr, "--threads", "1"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        guard r.status == 0, FileManager.default.fileExists(atPath: run + "/metrics.jsonl") else {
            XCTFail("training wrote no \(run)/metrics.jsonl")
            throw XCTSkip("failed above")
        }
    }

    /// Every `expected` PNG exists in `directory`, nothing else does, the script printed one line
    /// per file, each file is a PNG of plausible size, and no two plots are byte-identical.
    func assertPlots(in directory: String, expected: [String], stdout: String,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let written = stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(written.count, expected.count, "one line per file written: \(stdout)", file: file, line: line)
        let present = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        XCTAssertEqual(Set(present), Set(expected.map { $0 + ".png" }), "files in \(directory)", file: file, line: line)
        var contents: [String: Data] = [:]
        for name in expected {
            let path = directory + "/" + name + ".png"
            XCTAssertTrue(written.contains { $0.contains(path) }, "stdout names \(path): \(stdout)", file: file, line: line)
            guard let data = FileManager.default.contents(atPath: path) else {
                XCTFail("\(path) is missing", file: file, line: line)
                continue
            }
            contents[name] = data
            guard let (width, height) = Self.pngSize(data) else {
                XCTFail("\(path) is not a PNG (no signature or IHDR chunk)", file: file, line: line)
                continue
            }
            XCTAssertGreaterThan(width, 100, "\(path) width", file: file, line: line)
            XCTAssertGreaterThan(height, 100, "\(path) height", file: file, line: line)
            XCTAssertLessThan(width, 10_000, "\(path) width", file: file, line: line)
            XCTAssertLessThan(height, 10_000, "\(path) height", file: file, line: line)
        }
        let names = contents.keys.sorted()
        for (i, a) in names.enumerated() {
            for b in names[(i + 1)...] where contents[a] == contents[b] {
                XCTFail("\(a).png and \(b).png are byte-identical", file: file, line: line)
            }
        }
    }

    /// (width, height) from the IHDR chunk, if `data` starts with the PNG signature and IHDR.
    static func pngSize(_ data: Data) -> (Int, Int)? {
        let bytes = [UInt8](data.prefix(24))
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count == 24, Array(bytes[0..<8]) == signature else { return nil }
        func u32(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        guard u32(8) == 13, Array(bytes[12..<16]) == Array("IHDR".utf8) else { return nil }
        return (u32(16), u32(20))
    }

    /// The script with `arguments` exits 1, prints nothing on stdout and exactly one line on stderr
    /// containing each of `texts`.
    func assertFailsWithOneLine(_ python: String, _ arguments: [String], mentioning texts: [String],
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try runScript(python, arguments)
        XCTAssertEqual(r.status, 1, "exit status of plot_metrics.py \(arguments): \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stdout, "", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one stderr line: \(r.stderr)", file: file, line: line)
        for text in texts {
            XCTAssertTrue(r.stderr.contains(text), "stderr mentions \(text): \(r.stderr)", file: file, line: line)
        }
    }

    func runScript(_ python: String, _ arguments: [String]) throws -> RunResult {
        try runCommand(python, [Self.scriptPath] + arguments, environment: ["MPLBACKEND": "Agg"], timeout: 120)
    }

    // MARK: - Python

    static let scriptPath = repositoryPath("scripts/plot_metrics.py")

    /// The interpreter to run the script with; skips (or fails, with MATPLOTLIB_REQUIRED=1) when
    /// python — or, if `matplotlib`, matplotlib — is unavailable.
    func requirePython(matplotlib: Bool) throws -> String {
        try requirePython(matplotlib ? ["matplotlib", "matplotlib.pyplot"] : [], install: ["matplotlib"], script: Self.scriptPath,
                          requiredEnv: "MATPLOTLIB_REQUIRED", feature: "python with matplotlib")
    }
}
