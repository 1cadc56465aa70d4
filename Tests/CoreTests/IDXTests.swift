// IDXTests: round trips through encodeIDX/parseIDX and every malformed-header case.
//
// Each failure must be a TrainerError whose message names the file and says what was expected; the
// tests check the name and the key words, not the whole sentence, so wording can be polished freely.
@testable import CoreSupport
@testable import Datasets
import XCTest


final class IDXTests: XCTestCase {
    // MARK: - Round trips

    func testLabelsRoundTrip() throws {
        let labels: [UInt8] = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
        let file = encodeIDX(dims: [10], bytes: labels)
        XCTAssertEqual(Array(file.prefix(8)), [0, 0, 0x08, 0x01, 0, 0, 0, 10])
        XCTAssertEqual(file.count, 8 + 10)
        let parsed = try parseIDX(file, name: "labels", expectedRank: 1)
        XCTAssertEqual(parsed, IDXArray(dims: [10], bytes: labels))
    }

    func testImagesRoundTrip() throws {
        // 3 images of 2×4, dims chosen to exercise multi-byte big-endian sizes in a second case below.
        let pixels = (0..<24).map { UInt8($0 * 10) }
        let file = encodeIDX(dims: [3, 2, 4], bytes: pixels)
        XCTAssertEqual(Array(file.prefix(16)), [0, 0, 0x08, 0x03, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4])
        let parsed = try parseIDX(file, name: "images", expectedRank: 3)
        XCTAssertEqual(parsed.dims, [3, 2, 4])
        XCTAssertEqual(parsed.bytes, pixels)
    }

    func testLargeDimensionIsBigEndian() throws {
        // 0x0001_0203 = 66051 labels: the bytes must come out most significant first.
        let count = 0x0001_0203
        let file = encodeIDX(dims: [count], bytes: [UInt8](repeating: 1, count: count))
        XCTAssertEqual(Array(file[4..<8]), [0x00, 0x01, 0x02, 0x03])
        XCTAssertEqual(try parseIDX(file, name: "big", expectedRank: 1).dims, [count])
    }

    func testEmptyArrayRoundTrip() throws {
        // Zero images is a valid IDX file; Dataset rejects it, not the parser.
        let file = encodeIDX(dims: [0, 28, 28], bytes: [])
        XCTAssertEqual(try parseIDX(file, name: "empty", expectedRank: 3), IDXArray(dims: [0, 28, 28], bytes: []))
    }

    // MARK: - Malformed headers

    func testTooShort() {
        for n in 0..<4 {
            assertIDXError([0, 0, 8, 1].prefix(n).map { $0 }, rank: 1, contains: ["too short", "\(n) bytes"])
        }
    }

    func testNonzeroLeadingBytes() {
        var file = encodeIDX(dims: [2], bytes: [1, 2])
        file[0] = 0x1f
        assertIDXError(file, rank: 1, contains: ["IDX magic 0x1f000801", "expected 0x00000801", "not an IDX file"])
        file = encodeIDX(dims: [2], bytes: [1, 2])
        file[1] = 0x8b
        assertIDXError(file, rank: 1, contains: ["IDX magic 0x008b0801", "expected 0x00000801"])
    }

    func testWrongDataType() {
        var file = encodeIDX(dims: [1, 1, 1], bytes: [0])
        file[2] = 0x0d  // float
        assertIDXError(file, rank: 3, contains: ["IDX magic 0x00000d03", "expected 0x00000803 (images)", "0x0d", "0x08"])
    }

    func testLabelsWhereImagesExpected() {
        let file = encodeIDX(dims: [2], bytes: [1, 2])
        assertIDXError(file, name: "t10k-images-idx3-ubyte", rank: 3,
                       contains: ["IDX magic 0x00000801, expected 0x00000803 (images)"])
    }

    func testImagesWhereLabelsExpected() {
        let file = encodeIDX(dims: [1, 1, 1], bytes: [7])
        assertIDXError(file, name: "t10k-labels-idx1-ubyte", rank: 1,
                       contains: ["t10k-labels-idx1-ubyte: IDX magic 0x00000803, expected 0x00000801 (labels)"])
    }

    func testTruncatedHeader() {
        // Rank 3 needs 16 header bytes; give it 4 + two dimensions.
        let file = Array(encodeIDX(dims: [1, 1, 1], bytes: [7]).prefix(12))
        assertIDXError(file, rank: 3, contains: ["truncated IDX header", "12 bytes", "expected 16"])
    }

    func testTruncatedPayload() {
        let file = Array(encodeIDX(dims: [3, 2, 2], bytes: [UInt8](repeating: 5, count: 12)).dropLast(1))
        assertIDXError(file, rank: 3, contains: ["truncated IDX payload", "11 bytes", "3×2×2 = 12"])
    }

    func testTrailingBytes() {
        let file = encodeIDX(dims: [4], bytes: [1, 2, 3, 4]) + [0, 0]
        assertIDXError(file, rank: 1, contains: ["2 trailing bytes", "6 bytes", "4 = 4"])
    }

    func testDimsProductMismatch() {
        // A header claiming 10 images of 4×4 over a payload of 10 images of 3×3.
        let header = Array(encodeIDX(dims: [10, 4, 4], bytes: [UInt8](repeating: 0, count: 160)).prefix(16))
        let file = header + [UInt8](repeating: 0, count: 90)
        assertIDXError(file, rank: 3, contains: ["truncated IDX payload", "90 bytes", "10×4×4 = 160"])
        // And a header with a zero dimension over a non-empty payload: all of it is trailing.
        let zeroHeader = Array(encodeIDX(dims: [0, 4, 4], bytes: []).prefix(16))
        assertIDXError(zeroHeader + [1, 2, 3], rank: 3, contains: ["3 trailing bytes", "0×4×4 = 0"])
    }

    func testHugeDimensionsDoNotOverflow() {
        // 0xFFFFFFFF^3 overflows Int; must be an error, not a crash or a wrapped-around size.
        let file: [UInt8] = [0, 0, 8, 3] + [UInt8](repeating: 0xff, count: 12) + [1, 2, 3]
        assertIDXError(file, rank: 3, contains: ["too large"])
    }

    // MARK: - Helpers

    private func assertIDXError(
        _ data: [UInt8], name: String = "some-file-ubyte", rank: Int, contains parts: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try parseIDX(data, name: name, expectedRank: rank), file: file, line: line) { error in
            guard let error = error as? TrainerError else {
                return XCTFail("not a TrainerError: \(error)", file: file, line: line)
            }
            XCTAssertTrue(error.message.hasPrefix(name + ": "), "does not name the file: \(error.message)", file: file, line: line)
            XCTAssertFalse(error.message.contains("\n"), "not one line: \(error.message)", file: file, line: line)
            for part in parts {
                XCTAssertTrue(error.message.contains(part), "'\(error.message)' lacks '\(part)'", file: file, line: line)
            }
        }
    }
}
