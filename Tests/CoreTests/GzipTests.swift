// GzipTests: gzip/gunzip round trips, interoperability with the gzip tool, and bad inputs.
@testable import CoreSupport
@testable import Datasets
@testable import Formats
import Foundation
import XCTest


final class GzipTests: XCTestCase {
    // MARK: - Round trips

    func testRoundTrip() throws {
        for data in [[], [42], Array("hello, hello, hello, hello".utf8), pseudoRandomBytes(300_000, seed: 1)] {
            let packed = gzip(data)
            XCTAssertTrue(isGzip(packed))
            XCTAssertEqual(try gunzip(packed, name: "x.gz"), data)
        }
    }

    func testCompressesRepetitiveData() throws {
        let data = [UInt8](repeating: 7, count: 1 << 20)
        let packed = gzip(data)
        XCTAssertLessThan(packed.count, 4096)  // 1 MiB of one byte; also exercises the ~1000:1 ratio path
        XCTAssertEqual(try gunzip(packed, name: "x.gz"), data)
    }

    func testMultiMemberStream() throws {
        // `cat a.gz b.gz > ab.gz` is a valid gzip file meaning a + b.
        let a = Array("first member\n".utf8), b = pseudoRandomBytes(5000, seed: 2), c = [UInt8]()
        XCTAssertEqual(try gunzip(gzip(a) + gzip(b) + gzip(c), name: "ab.gz"), a + b + c)
    }

    func testZeroPaddingAfterStreamIsIgnored() throws {
        let a = Array("padded".utf8)
        XCTAssertEqual(try gunzip(gzip(a) + [0, 0, 0, 0], name: "p.gz"), a)
    }

    func testTrailingGarbageThrows() {
        assertGzipError(gzip([1, 2, 3]) + Array("junk".utf8), name: "g.gz", contains: ["4 bytes of trailing data"])
    }

    func testInteroperatesWithGzipTool() throws {
        guard let tool = ["/usr/bin/gzip", "/bin/gzip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw XCTSkip("no gzip executable") }
        let data = pseudoRandomBytes(100_000, seed: 3) + [UInt8](repeating: 1, count: 50_000)
        // Ours -> gzip -dc.
        XCTAssertEqual(try run(tool, ["-dc"], input: gzip(data)), data)
        // gzip -c -> ours.
        XCTAssertEqual(try gunzip(run(tool, ["-c"], input: data), name: "tool.gz"), data)
    }

    // MARK: - Bad inputs

    func testNotGzip() {
        assertGzipError(encodeIDX(dims: [2], bytes: [1, 2]), name: "train-labels-idx1-ubyte.gz",
                        contains: ["not a gzip file", "first bytes 00 00 08 01 00 00 00 02 …", "expected 1f 8b"])
        assertGzipError([], name: "empty.gz", contains: ["not a gzip file", "(empty)"])
        assertGzipError([0x1f], name: "one.gz", contains: ["not a gzip file", "1f"])
    }

    func testTruncatedAtEveryLength() {
        // Every proper prefix that still has the magic must be reported as truncated, including cuts
        // inside the 10-byte header and inside the 8-byte CRC/length trailer.
        let packed = gzip(pseudoRandomBytes(2000, seed: 4))
        for n in 2..<packed.count {
            assertGzipError(Array(packed.prefix(n)), name: "train-images-idx3-ubyte.gz",
                            contains: ["truncated gzip stream"])
        }
    }

    func testCorruptTrailerIsCaught() {
        var packed = gzip(Array("checksummed content".utf8))
        packed[packed.count - 8] ^= 0xff  // first byte of the CRC-32
        assertGzipError(packed, name: "crc.gz", contains: ["corrupt gzip data", "incorrect data check"])
        packed = gzip(Array("checksummed content".utf8))
        packed[packed.count - 1] ^= 0x01  // last byte of ISIZE
        assertGzipError(packed, name: "len.gz", contains: ["corrupt gzip data", "incorrect length check"])
    }

    func testCorruptBodyIsCaught() {
        // Flipping a byte inside the deflate data must fail somehow (bad block, bad CRC, or running past
        // the end), never return wrong bytes silently.
        let data = pseudoRandomBytes(4000, seed: 5)
        let packed = gzip(data)
        for i in stride(from: 12, to: packed.count - 8, by: 97) {
            var bad = packed
            bad[i] ^= 0x55
            XCTAssertThrowsError(try gunzip(bad, name: "flip.gz")) { error in
                XCTAssertTrue((error as? TrainerError)?.message.hasPrefix("flip.gz: ") == true, "\(error)")
            }
        }
    }

    func testBadHeaderFlagsAreCaught() {
        var packed = gzip([1, 2, 3])
        packed[2] = 7  // compression method must be 8 (deflate)
        assertGzipError(packed, name: "cm.gz", contains: ["corrupt gzip data", "unknown compression method"])
    }

    func testIsGzip() {
        XCTAssertTrue(isGzip([0x1f, 0x8b]))
        XCTAssertFalse(isGzip([0x1f]))
        XCTAssertFalse(isGzip([0x8b, 0x1f, 0x08]))
        XCTAssertFalse(isGzip([]))
    }

    // MARK: - Helpers

    private func assertGzipError(
        _ data: [UInt8], name: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try gunzip(data, name: name), file: file, line: line) { error in
            guard let error = error as? TrainerError else {
                return XCTFail("not a TrainerError: \(error)", file: file, line: line)
            }
            XCTAssertTrue(error.message.hasPrefix(name + ": "), "does not name the file: \(error.message)", file: file, line: line)
            for part in parts {
                XCTAssertTrue(error.message.contains(part), "'\(error.message)' lacks '\(part)'", file: file, line: line)
            }
        }
    }

    /// Runs `tool` with `input` on stdin and returns its stdout. Input goes through a temp file so a
    /// large input cannot deadlock against an unread stdout pipe.
    private func run(_ tool: String, _ args: [String], input: [UInt8]) throws -> [UInt8] {
        let inPath = FileManager.default.temporaryDirectory.appendingPathComponent("gzip-in-\(UUID().uuidString)")
        try Data(input).write(to: inPath)
        defer { try? FileManager.default.removeItem(at: inPath) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = args
        process.standardInput = try FileHandle(forReadingFrom: inPath)
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return [UInt8](data)
    }
}

/// Deterministic incompressible-ish bytes (xorshift64*), shared by the Core tests.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return UInt8(truncatingIfNeeded: (state &* 0x2545_F491_4F6C_DD1D) >> 56)
    }
}
