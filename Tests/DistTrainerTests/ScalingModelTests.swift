// ScalingModelTests: scripts/scaling_model.py against step times worked out by hand from a small
// bench_hosts.json written by the test (known compute per step, latency, bandwidth and small
// allreduce time), for the validation row and one extrapolated cell, and its plot as a real PNG.
import Foundation
import TestSupport
import XCTest

final class ScalingModelTests: XCTestCase {
    static let scriptPath = repositoryPath("scripts/scaling_model.py")
    /// Model 2's parameter count, as the script's P.
    let parameters = 477_898.0

    func testPredictionsMatchTheFormulaByHand() throws {
        let python = try requirePython(["matplotlib", "matplotlib.pyplot"], install: ["matplotlib"], script: Self.scriptPath,
                                       requiredEnv: "MATPLOTLIB_REQUIRED", feature: "python with matplotlib")
        let tmp = try temporaryDirectory(self)
        // One node: 3.2 ms of compute per step for 128 rows, 1.6 ms for 64 (C(r) = 25 µs × r).
        // Two hosts: 10 µs latency, 1 GB/s, a 20 µs small allreduce; measured 1.5 s per epoch.
        func run(_ epoch: Double, compute: Double) -> [String: Any] {
            ["epoch_seconds": epoch, "communication_seconds": 0, "compute_seconds": compute * 375, "steps": 375, "collectives": NSNull()]
        }
        let bench: [String: Any] = [
            "runs": ["node np=1": run(1.2, compute: 3.2e-3), "node np=2": run(0.6, compute: 1.6e-3), "2 hosts": run(1.5, compute: 1.6e-3)],
            "network": ["2-none": ["ranks": 2, "hosts": 2, "links": [["rank": 1, "host": "h2", "latency": 10e-6, "bandwidth": 1e9]],
                                   "small_allreduce": 20e-6]],
        ]
        let file = tmp + "/bench_hosts.json"
        try JSONSerialization.data(withJSONObject: bench).write(to: URL(fileURLWithPath: file))
        let r = try runCommand(python, [Self.scriptPath, file, "--plot", tmp + "/scaling.png", "--markdown"],
                               environment: ["MPLBACKEND": "Agg"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)

        // Validation: compute + reduce-scatter + allgather, each (N−1)(α + 4P/(Nβ)), + 7 small allreduces.
        let ring = 10e-6 + 4 * parameters / (2 * 1e9)
        let predicted = 375 * (1.6e-3 + 2 * ring + 7 * 20e-6)  // 1.3768 s
        let row = "| 2 hosts | 1.500 | \(String(format: "%.3f", predicted)) | \(String(format: "%+.0f", 100 * (predicted / 1.5 - 1))) % |"
        XCTAssertTrue(r.stdout.contains(row), "expected \(row) in:\n\(r.stdout)")
        XCTAssertTrue(r.stdout.contains("ms + 25.00 us x rows"), r.stdout)

        // Extrapolation, strong scaling on 2 nodes at 10 Gbit/s (α 20 µs, β 90 % of the line rate):
        // 64 rows each, 375 steps, one round of the small allreduce (α + 12 kB/β).
        let beta = 0.9 * 10e9 / 8
        let small = 20e-6 + 12_000 / beta
        let strong = 375 * (25e-6 * 64 + 2 * (20e-6 + 4 * parameters / (2 * beta)) + 7 * small)  // 1.3327 s
        let one = 375 * 25e-6 * 128
        XCTAssertTrue(r.stdout.contains("| 1 | \(String(format: "%.2f", one)) / "), r.stdout)
        XCTAssertTrue(r.stdout.contains("| 2 | \(String(format: "%.2f", strong)) / "), "expected 2 nodes at \(strong) s in:\n\(r.stdout)")

        let png = try Data(contentsOf: URL(fileURLWithPath: tmp + "/scaling.png"))
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    }
}
