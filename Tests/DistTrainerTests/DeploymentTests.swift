// DeploymentTests: the release binary can be copied to nodes that have no Swift toolchain and no
// network library, and on a node whose CPU lacks the vector level it was built for it refuses in one
// line instead of dying on an illegal instruction.
//
// Both look at the binary scripts/test.sh builds (DIST_TRAINER_BIN, a static-stdlib release build);
// the CPU check runs it under qemu-user emulating an older CPU (Nehalem: no AVX at all).
import Foundation
import TestSupport
import XCTest

final class DeploymentTests: XCTestCase {
    /// The release binary under test, or skip when the tests run against a debug build.
    func releaseBinary() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["DIST_TRAINER_BIN"], path.contains("/release/") else {
            throw XCTSkip("set DIST_TRAINER_BIN to the release build (scripts/test.sh does)")
        }
        return path
    }

    func testNeedsNoSwiftToolchainAndNoNetworkLibrary() throws {
        let binary = try releaseBinary()
        let r = try runCommand("/usr/bin/ldd", [binary])
        XCTAssertEqual(r.status, 0, r.stderr)
        let libraries = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertFalse(libraries.isEmpty)
        for line in libraries {
            XCTAssertFalse(line.contains("libswift") || line.contains("libFoundation") || line.contains("/swift/"), "Swift runtime linked dynamically: \(line)")
            XCTAssertFalse(line.contains("libcurl") || line.contains("libssl") || line.contains("FoundationNetworking"), "network library linked: \(line)")
            XCTAssertFalse(line.contains("not found"), line)
        }
        XCTAssertTrue(libraries.contains { $0.contains("libmpi") }, r.stdout)
    }

    /// On a CPU without the level the build targets (this machine's, unless DIST_TRAINER_TARGET_CPU
    /// said otherwise), one line naming the CPU the binary needs, what is missing and how to rebuild.
    func testRefusesACPUWithoutItsVectorLevel() throws {
        let binary = try releaseBinary()
        guard let qemu = executableOnPath("qemu-x86_64") else {
            if ProcessInfo.processInfo.environment["MULTIHOST_REQUIRED"] == "1" { XCTFail("qemu-x86_64 not installed (qemu-user)") }
            throw XCTSkip("qemu-x86_64 not installed (qemu-user)")
        }
        #if arch(x86_64)
        let target = ProcessInfo.processInfo.environment["DIST_TRAINER_TARGET_CPU"]
        let r = try runCommand(qemu, ["-cpu", "Nehalem", binary, "--help"], timeout: 120)
        let ours = r.stderr.split(separator: "\n").filter { $0.hasPrefix("dist-trainer: error:") }
        if target == "" || target == "x86-64" {
            XCTAssertEqual(r.status, 0, "a baseline build must run anywhere: \(r.stderr)")
        } else {
            XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
            XCTAssertEqual(ours.count, 1, r.stderr)
            XCTAssertTrue(ours.first.map { $0.contains("lacks avx2") && $0.contains("DIST_TRAINER_TARGET_CPU") } ?? false, r.stderr)
        }
        #endif
    }
}
