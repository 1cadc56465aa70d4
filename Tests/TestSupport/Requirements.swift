// Requirements: a test that needs a tool (mpirun, say) skips with the reason printed when it is
// missing, or fails instead when the environment says the tool must be there (CI sets *_REQUIRED=1),
// so a missing tool can never make a test pass silently. Python.swift does the same for the Python
// oracles.
import Foundation
#if canImport(XCTest)  // `swift build` compiles this target too, also where XCTest is missing
import XCTest

extension XCTestCase {
    /// The path of the executable `name` on PATH. When it is missing, skips the test, printing why,
    /// or, when any of the environment variables `requiredEnv` is "1", fails it:
    /// "`feature` unavailable although `VAR`=1: name not found on PATH (install `package`)".
    @discardableResult
    public func requireExecutable(_ name: String, package: String, requiredEnv: [String], feature: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let path = executableOnPath(name) { return path }
        let reason = "\(name) not found on PATH (install \(package))"
        if let required = requiredEnv.first(where: { ProcessInfo.processInfo.environment[$0] == "1" }) {
            XCTFail("\(feature) unavailable although \(required)=1: \(reason)", file: file, line: line)
            throw XCTSkip("failed above")
        }
        print("\(String(describing: type(of: self))): skipping: \(reason)")
        throw XCTSkip("\(feature) unavailable: \(reason)")
    }
}
#endif
