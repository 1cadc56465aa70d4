// SafetensorsTests: the safetensors reader and writer — round trips, the exact byte layout of a tiny
// file built by hand from the format description, one test per kind of malformed file, and interop
// with the reference Python implementation in both directions.
//
// The interop tests need python3 with numpy and safetensors (`python3 -m pip install safetensors`);
// they skip (with the reason printed) when either is missing, unless SAFETENSORS_REQUIRED=1 is set,
// which turns the skip into a failure. DIST_TRAINER_PYTHON overrides the interpreter (default:
// python3 on PATH).
@testable import CoreSupport
@testable import Formats
import Foundation
import TestSupport
import XCTest


final class SafetensorsTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("dist-trainer-safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    // MARK: - Fixtures

    /// Scalars, 1-D, 2-D, 3-D and empty tensors, given deliberately out of name order.
    static let sample = SafetensorsFile(
        tensors: [
            Tensor(name: "layer.1/weight", shape: [2, 3], values: [1, 2, 3, -4, 5.5, 1e-30]),
            Tensor(name: "scalar", shape: [], values: [3.25]),
            Tensor(name: "empty", shape: [0], values: []),
            Tensor(name: "bias", shape: [4], values: [0.1, -0.2, .greatestFiniteMagnitude, -.infinity]),
            Tensor(name: "wide-empty", shape: [2, 0, 3], values: []),
            Tensor(name: "cube", shape: [2, 2, 2], values: (0..<8).map { Float($0) / 3 }),
            Tensor(name: "Ünïcødé", shape: [1], values: [.leastNonzeroMagnitude]),
        ],
        metadata: ["format": "dist-trainer", "epoch": "3", "note": "quotes \" and \\ and ∑ and /"])

    /// The 8-byte little-endian length, then `header` as UTF-8, then `data`.
    static func file(_ header: String, data: [UInt8] = []) -> [UInt8] {
        let json = Array(header.utf8)
        return le64(UInt64(json.count)) + json + data
    }

    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// The header length recorded in `bytes`.
    static func headerLength(_ bytes: [UInt8]) -> Int {
        (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
    }

    // MARK: - Round trips

    /// The streaming writer (tensors as slices of larger buffers, written where they are) gives the
    /// bytes of the in-memory encoder, and keeps the file it replaces when asked to.
    func testStreamedFileEqualsEncodedBytesAndKeepsThePrevious() throws {
        let dir = NSTemporaryDirectory() + "safetensors-stream-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let buffer: [Float] = (0..<40).map { Float($0) * 0.5 - 3 }
        let slices = Self.sample.tensors.enumerated().map { i, t in
            TensorSlice(name: t.name, shape: t.shape, values: buffer[i..<(i + t.values.count)])
        }
        let copied = SafetensorsFile(tensors: slices.map { Tensor(name: $0.name, shape: $0.shape, values: Array($0.values)) },
                                     metadata: Self.sample.metadata)
        let (path, previous) = (dir + "/f.safetensors", dir + "/f.prev.safetensors")
        try writeSafetensors(slices, metadata: Self.sample.metadata, path: path, keepingPrevious: previous)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data(encodeSafetensors(copied)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: previous), "nothing to keep the first time")
        try writeSafetensors(Array(slices.prefix(1)), metadata: [:], path: path, keepingPrevious: previous)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: previous)), Data(encodeSafetensors(copied)))
        XCTAssertEqual(try readSafetensors(path: path).tensors.map(\.name), [slices[0].name])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["f.prev.safetensors", "f.safetensors"], "no temporary left")
    }

    /// The writer that passes a file through a small aligned buffer (O_DIRECT on a disk, the page
    /// cache on tmpfs, which refuses O_DIRECT) gives the in-memory encoder's bytes for files ending
    /// below, at and past a block and a buffer boundary, with tensors split across buffer fills, and
    /// keeps the file it replaces.
    func testStagedWriterEqualsEncodedBytesOnDiskAndTmpfs() throws {
        // The package's build directory is on a disk; where that is ext4 or XFS, O_DIRECT must be used.
        let build = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build").path
        var places = [build + "/safetensors-staged-\(getpid())"]
        if FileManager.default.fileExists(atPath: "/dev/shm") { places.append("/dev/shm/safetensors-staged-\(getpid())") }
        func directExpected(_ dir: String) -> Bool? {
            // The file system of the longest mount point that holds `dir` (/proc/mounts: device, mount point, type).
            guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return nil }
            var (longest, type) = (-1, "")
            for line in mounts.split(separator: "\n") {
                let fields: [String] = line.split(separator: " ").map(String.init)
                guard fields.count > 2 else { continue }
                let point = fields[1]
                let holds = dir == point || dir.hasPrefix(point.hasSuffix("/") ? point : point + "/")
                if holds && point.count > longest { (longest, type) = (point.count, fields[2]) }
            }
            return ["ext4", "ext3", "xfs"].contains(type) ? true : nil
        }
        let staging = AlignedBytes(capacity: 2 * AlignedBytes.alignment)
        var cases = 0
        for dir in places {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (path, previous) = (dir + "/f.safetensors", dir + "/f.prev.safetensors")
            let label = { (floats: Int) in String(repeating: "0", count: 8 - String(floats).count) + String(floats) }
            // The header lists the shapes, so its size depends on the counts: a fixed point.
            func prologueBytes(_ floats: Int) -> Int {
                safetensorsPrologue([("a", [floats / 3]), ("b", [floats - floats / 3])], metadata: ["n": label(floats)]).count
            }
            func floatCount(endingAt size: Int) -> Int {
                var n = size / 4
                for _ in 0..<4 { n = (size - prologueBytes(n)) / 4 }
                return n
            }
            // Data sizes that end the file 4 bytes short of, at, and 4 bytes past 1, 2 and 3 blocks.
            for blocks in 1...3 {
                for delta in [-4, 0, 4] {
                    let floats = floatCount(endingAt: blocks * AlignedBytes.alignment + delta)
                    let buffer: [Float] = (0..<floats).map { Float($0) * 0.25 - 7 }
                    let split = floats / 3
                    let slices = [TensorSlice(name: "a", shape: [split], values: buffer[0..<split]),
                                  TensorSlice(name: "b", shape: [floats - split], values: buffer[split...])]
                    let file = SafetensorsFile(tensors: slices.map { Tensor(name: $0.name, shape: $0.shape, values: Array($0.values)) },
                                               metadata: ["n": label(floats)])
                    let direct = try writeSafetensors(slices, metadata: file.metadata, path: path, keepingPrevious: previous, through: staging)
                    if let expected = directExpected(dir) { XCTAssertEqual(direct, expected, "\(dir): O_DIRECT on ext4 and XFS") }
                    let written = try Data(contentsOf: URL(fileURLWithPath: path))
                    XCTAssertEqual(written.count, blocks * AlignedBytes.alignment + delta, "\(dir): the sizes meant")
                    XCTAssertEqual(written, Data(encodeSafetensors(file)), "\(dir), \(blocks) blocks \(delta)")
                    cases += 1
                }
            }
            // The file before the last one written (3 blocks exactly) was kept.
            XCTAssertEqual(try readSafetensors(path: previous).metadata["n"], label(floatCount(endingAt: 3 * AlignedBytes.alignment)))
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["f.prev.safetensors", "f.safetensors"], "no temporary left")
        }
        XCTAssertEqual(cases, 9 * places.count)
    }

    func testRoundTripInMemory() throws {
        let bytes = encodeSafetensors(Self.sample)
        let decoded = try decodeSafetensors(bytes, name: "sample.safetensors")
        XCTAssertEqual(decoded.metadata, Self.sample.metadata)
        // File order is data-offset order, i.e. the order given (the two empty tensors sit at
        // different offsets here, so there are no ties).
        XCTAssertEqual(decoded.tensors, Self.sample.tensors)
        XCTAssertEqual(decoded["scalar"]?.values, [3.25])
        XCTAssertNil(decoded["missing"])
    }

    func testRoundTripThroughAFile() throws {
        let p = path("model.safetensors")
        try writeSafetensors(Self.sample, path: p)
        let decoded = try readSafetensors(path: p)
        XCTAssertEqual(decoded.tensors, Self.sample.tensors)
        XCTAssertEqual(decoded.metadata, Self.sample.metadata)
        // Overwriting replaces the file.
        let small = SafetensorsFile(tensors: [Tensor(name: "x", shape: [1], values: [7])], metadata: [:])
        try writeSafetensors(small, path: p)
        XCTAssertEqual(try readSafetensors(path: p).tensors, small.tensors)
    }

    func testSpecialValuesKeepTheirBits() throws {
        let bits: [UInt32] = [0x7FC0_0000, 0xFFC0_0001, 0x7F80_0001, 0x8000_0000, 0x0000_0001, 0x7F7F_FFFF]
        let t = Tensor(name: "odd", shape: [bits.count], values: bits.map(Float.init(bitPattern:)))
        let decoded = try decodeSafetensors(encodeSafetensors(SafetensorsFile(tensors: [t], metadata: [:])), name: "odd")
        XCTAssertEqual(decoded.tensors[0].values.map(\.bitPattern), bits)
    }

    func testEmptyFileAndNoMetadata() throws {
        let bytes = encodeSafetensors(SafetensorsFile(tensors: [], metadata: [:]))
        // "{}" padded to 8 bytes; nothing after it.
        XCTAssertEqual(bytes, Self.le64(8) + Array("{}      ".utf8))
        let decoded = try decodeSafetensors(bytes, name: "empty")
        XCTAssertEqual(decoded.tensors, [])
        XCTAssertEqual(decoded.metadata, [:])
        // Metadata alone, and "__metadata__": null, decode too.
        XCTAssertEqual(try decodeSafetensors(Self.file(#"{"__metadata__":{"a":"b"}}"#), name: "m").metadata, ["a": "b"])
        XCTAssertEqual(try decodeSafetensors(Self.file(#"{"__metadata__":null}"#), name: "m").metadata, [:])
    }

    func testHeaderIsPaddedTo8ByteAlignment() throws {
        // Names of length 1...8 give every header length modulo 8.
        var seen = Set<Int>()
        for n in 1...8 {
            let f = SafetensorsFile(
                tensors: [Tensor(name: String(repeating: "n", count: n), shape: [1], values: [1])], metadata: [:])
            let bytes = encodeSafetensors(f)
            let length = Self.headerLength(bytes)
            XCTAssertEqual((8 + length) % 8, 0, "name length \(n)")
            XCTAssertEqual(bytes.count, 8 + length + 4)
            // The JSON ends at its closing brace; only spaces follow.
            let header = bytes[8..<(8 + length)]
            let brace = header.lastIndex(of: UInt8(ascii: "}"))!
            XCTAssertTrue(header[(brace + 1)...].allSatisfy { $0 == UInt8(ascii: " ") })
            seen.insert((brace - 8 + 1) % 8)
            XCTAssertEqual(try decodeSafetensors(bytes, name: "n").tensors, f.tensors)
        }
        XCTAssertEqual(seen.count, 8, "unpadded JSON lengths should cover every residue modulo 8")
        XCTAssertEqual(Self.headerLength(encodeSafetensors(Self.sample)) % 8, 0)
    }

    /// A tiny file compared byte by byte with one built by hand from the format description.
    func testByteLayoutOfATinyFile() {
        let file = SafetensorsFile(
            tensors: [
                Tensor(name: "b", shape: [2], values: [1.0, -2.0]),
                Tensor(name: "a", shape: [], values: [0.5]),
            ],
            metadata: ["k": "v"])
        // Keys sorted; tensors laid out in the order given: "b" at [0, 8), "a" at [8, 12).
        let json = #"{"__metadata__":{"k":"v"},"a":{"data_offsets":[8,12],"dtype":"F32","shape":[]},"#
            + #""b":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}}"#
        XCTAssertEqual(json.utf8.count, 132)
        var expected: [UInt8] = [0x88, 0, 0, 0, 0, 0, 0, 0]  // 136 = 132 + 4 spaces of padding
        expected += Array(json.utf8) + Array("    ".utf8)
        expected += [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0]  // 1.0, -2.0 little-endian
        expected += [0x00, 0x00, 0x00, 0x3F]  // 0.5
        XCTAssertEqual(encodeSafetensors(file), expected)
    }

    /// Two empty tensors share an offset; the file order breaks the tie by name.
    func testEmptyTensorsAtTheSameOffsetAreOrderedByName() throws {
        let f = SafetensorsFile(
            tensors: [
                Tensor(name: "z", shape: [0, 4], values: []),
                Tensor(name: "y", shape: [0], values: []),
                Tensor(name: "x", shape: [1], values: [2]),
            ],
            metadata: [:])
        let decoded = try decodeSafetensors(encodeSafetensors(f), name: "ties")
        XCTAssertEqual(decoded.tensors.map(\.name), ["y", "z", "x"])
    }

    func testDecodingEightMegabytesIsFast() throws {
        let count = 2 * 1024 * 1024
        let values = [Float](unsafeUninitializedCapacity: count) { buf, n in
            for i in stride(from: 0, to: count, by: 4096) { buf[i] = Float(i) }
            for i in 0..<count where i % 4096 != 0 { buf[i] = 0.25 }
            n = count
        }
        let f = SafetensorsFile(tensors: [Tensor(name: "big", shape: [1024, 2048], values: values)], metadata: [:])
        let start = Date()
        let bytes = encodeSafetensors(f)
        let decoded = try decodeSafetensors(bytes, name: "big")
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(bytes.count, 8 + Self.headerLength(bytes) + 8 * 1024 * 1024)
        XCTAssertTrue(decoded.tensors[0].values == values)
        XCTAssertLessThan(elapsed, 1.0, "encoding and decoding 8 MB took \(elapsed) s")
    }

    // MARK: - Lookups

    func testTensorAndMetadataLookups() throws {
        let f = Self.sample
        XCTAssertEqual(try f.tensor("bias", shape: [4], file: "m.safetensors").values.count, 4)
        XCTAssertEqual(try f.metadata("epoch", file: "m.safetensors"), "3")
        assertError(try f.tensor("bias", shape: [5], file: "m.safetensors"), "m.safetensors",
                    ["tensor 'bias'", "shape [4]", "expected [5]"])
        assertError(try f.tensor("nope", shape: [2, 3], file: "m.safetensors"), "m.safetensors",
                    ["missing tensor 'nope'", "[2, 3]"])
        assertError(try f.metadata("lr", file: "m.safetensors"), "m.safetensors", ["missing metadata 'lr'"])
    }

    func testMissingFileGivesOneLine() {
        let p = path("does-not-exist.safetensors")
        assertError(try readSafetensors(path: p), p, ["No such file"])
        assertError(try readSafetensors(path: directory.path), directory.path, [])
    }

    // MARK: - Malformed files

    /// `body` throws a one-line TrainerError that starts with "`name`: " and contains every keyword.
    func assertError<T>(_ body: @autoclosure () throws -> T, _ name: String, _ keywords: [String],
                        file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("no error, expected one mentioning \(keywords)", file: file, line: line)
        } catch let error as TrainerError {
            let m = error.message
            XCTAssertTrue(m.hasPrefix(name + ": "), "'\(m)' does not start with the file name", file: file, line: line)
            XCTAssertFalse(m.contains("\n"), "'\(m)' is not one line", file: file, line: line)
            for k in keywords {
                XCTAssertTrue(m.contains(k), "'\(m)' does not mention '\(k)'", file: file, line: line)
            }
        } catch {
            XCTFail("not a TrainerError: \(error)", file: file, line: line)
        }
    }

    func assertRejects(_ bytes: [UInt8], _ keywords: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertError(try decodeSafetensors(bytes, name: "bad.safetensors"), "bad.safetensors", keywords,
                    file: file, line: line)
    }

    func testTruncatedFile() {
        assertRejects([], ["truncated: 0 bytes", "at least 8"])
        assertRejects([4, 0, 0], ["truncated: 3 bytes", "at least 8"])
    }

    func testHeaderLengthBeyondTheFile() {
        assertRejects(Self.le64(100) + Array("{}".utf8) + [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                      ["header length 100 exceeds the file size 20"])
        assertRejects(Self.le64(UInt64.max), ["header length \(UInt64.max) exceeds the file size 8"])
        assertRejects(Self.le64(1), ["header length 1 exceeds the file size 8"])
    }

    func testHeaderNotJSON() {
        assertRejects(Self.le64(3) + [0x7B, 0xFF, 0x7D], ["header", "not valid UTF-8", "not valid JSON"])
        assertRejects(Self.file(#"{"a": "#), ["header is not valid JSON"])
        assertRejects(Self.file(""), ["header is not valid JSON"])
        assertRejects(Self.file("{} trailing"), ["header is not valid JSON"])
        assertRejects(Self.le64(4) + [0x7B, 0x00, 0x7D, 0x00], ["header is not valid JSON"])
        assertRejects(Self.file("[1, 2]"), ["header is not a JSON object", "array"])
        assertRejects(Self.file(#""text""#), ["header is not valid JSON"])  // a bare string is not a document
    }

    func testTensorEntryMissingOrMistypedFields() {
        let data = [UInt8](repeating: 0, count: 4)
        assertRejects(Self.file(#"{"x":{"shape":[1],"data_offsets":[0,4]}}"#, data: data), ["tensor 'x'", "missing \"dtype\""])
        assertRejects(Self.file(#"{"x":{"dtype":"F32","data_offsets":[0,4]}}"#, data: data), ["tensor 'x'", "missing \"shape\""])
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[1]}}"#, data: data), ["tensor 'x'", "missing \"data_offsets\""])
        assertRejects(Self.file(#"{"x":[1]}"#, data: data), ["tensor 'x'", "an array", "expected an object"])
        assertRejects(Self.file(#"{"x":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#, data: data),
                      ["tensor 'x'", "dtype", "a number", "expected a string"])
        for shape in [#""1""#, "[1.5]", "[true]", #"["1"]"#, "[null]", "{}", "[1e0]"] {
            assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":"# + shape + #","data_offsets":[0,4]}}"#, data: data),
                          ["tensor 'x'", "has shape", "expected an array of integers"])
        }
        for offsets in ["[0]", "[0,4,8]", "[0.0,4]", #"["0","4"]"#, "4", "[false,4]"] {
            assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":"# + offsets + "}}", data: data),
                          ["tensor 'x'", "data_offsets", "expected [begin, end] integers"])
        }
    }

    func testOtherDtypesAreRejected() {
        for dtype in ["F16", "BF16", "F64", "I32", "U8", "BOOL", "f32"] {
            assertRejects(Self.file(#"{"x":{"dtype":""# + dtype + #"","shape":[2],"data_offsets":[0,4]}}"#,
                                    data: [0, 0, 0, 0]),
                          ["tensor 'x' has dtype \(dtype); only F32 is supported"])
        }
    }

    func testNegativeDimension() {
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]}}"#),
                      ["tensor 'x'", "negative dimension -1", "[2, -1]"])
    }

    func testOffsetsOutOfRangeOrReversed() {
        let data = [UInt8](repeating: 0, count: 8)
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: data),
                      ["tensor 'x'", "data_offsets [8, 4]", "begin <= end"])
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: data),
                      ["tensor 'x'", "data_offsets [-4, 0]"])
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: data),
                      ["tensor 'x'", "data_offsets [0, 16]", "beyond the data region of 8 bytes"])
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: data),
                      ["tensor 'x'", "beyond the data region"])
    }

    func testOffsetsDisagreeWithShape() {
        let data = [UInt8](repeating: 0, count: 24)
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, data: data),
                      ["tensor 'x': shape [2, 3] needs 24 bytes, data_offsets give 20"])
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[],"data_offsets":[0,0]}}"#),
                      ["tensor 'x': shape [] needs 4 bytes, data_offsets give 0"])
        // 2^62 · 4 elements overflow; the file must not crash the reader.
        assertRejects(Self.file(#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#),
                      ["tensor 'x'", "too large"])
    }

    func testOverlappingTensors() {
        let data = [UInt8](repeating: 0, count: 12)
        assertRejects(Self.file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                                + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: data),
                      ["'a'", "'b'", "overlap"])
        // The same bytes twice.
        assertRejects(Self.file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"#
                                + #""b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#, data: data),
                      ["'a'", "'b'", "overlap"])
    }

    func testUncoveredBytesAreRejected() {
        // Trailing bytes after the last tensor.
        assertRejects(Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 8)),
                      ["data region has 4 bytes not covered by any tensor"])
        // A hole between two tensors, and one before the first.
        assertRejects(Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
                                + #""b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: [UInt8](repeating: 0, count: 12)),
                      ["data region has 4 bytes not covered by any tensor"])
        assertRejects(Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                      ["data region has 4 bytes not covered by any tensor"])
        // Data but no tensors at all.
        assertRejects(Self.file("{}", data: [1, 2, 3]), ["data region has 3 bytes not covered by any tensor"])
    }

    func testMetadataMustBeStrings() {
        assertRejects(Self.file(#"{"__metadata__":{"ok":"yes","epoch":3}}"#), ["metadata 'epoch'", "a number", "expected a string"])
        assertRejects(Self.file(#"{"__metadata__":{"flag":true}}"#), ["metadata 'flag'", "a boolean"])
        assertRejects(Self.file(#"{"__metadata__":["a"]}"#), ["__metadata__", "an array", "expected an object of strings"])
    }

    // MARK: - Interop with the reference Python implementation

    /// (a) Swift writes, safetensors.numpy reads.
    func testPythonReadsWhatSwiftWrites() throws {
        try requireReference()
        let p = path("from-swift.safetensors")
        try writeSafetensors(Self.sample, path: p)
        let script = """
            import json, sys
            from safetensors import safe_open
            from safetensors.numpy import load_file
            tensors = load_file(sys.argv[1])
            with safe_open(sys.argv[1], framework="np") as f:
                metadata = f.metadata()
            print(json.dumps({
                "metadata": metadata,
                "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "hex": v.astype("<f4").tobytes().hex()}
                            for k, v in tensors.items()},
            }))
            """
        let run = try Python.run(["-c", script, p])
        XCTAssertEqual(run.status, 0, "python failed: \(run.stderr)")
        guard run.status == 0 else { return }
        let output = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "python printed: \(run.stdout)")
        XCTAssertEqual(output["metadata"] as? [String: String], Self.sample.metadata)
        let tensors = try XCTUnwrap(output["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(Set(tensors.keys), Set(Self.sample.tensors.map(\.name)))
        for t in Self.sample.tensors {
            let seen = try XCTUnwrap(tensors[t.name], t.name)
            XCTAssertEqual(seen["dtype"] as? String, "float32", t.name)
            XCTAssertEqual(seen["shape"] as? [Int], t.shape, t.name)
            XCTAssertEqual(seen["hex"] as? String, Self.hex(t.values), t.name)
        }
    }

    /// (b) safetensors.numpy writes, Swift reads; a float16 file is rejected by name.
    func testSwiftReadsWhatPythonWrites() throws {
        try requireReference()
        let (p, p16) = (path("from-python.safetensors"), path("float16.safetensors"))
        let script = """
            import json, sys
            import numpy as np
            from safetensors.numpy import save_file
            tensors = {
                "weight": (np.arange(12, dtype=np.float32).reshape(3, 4) / np.float32(7)),
                "bias": np.array([-0.0, np.inf, -np.inf, 1e-45, np.nan], dtype=np.float32),
                "scalar": np.array(3.25, dtype=np.float32),
                "empty": np.zeros((0, 5), dtype=np.float32),
                "cube": np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4),
            }
            save_file(tensors, sys.argv[1], metadata={"format": "np", "épocas": "3", "empty": ""})
            save_file({"h": np.ones(2, dtype=np.float16)}, sys.argv[2])
            print(json.dumps({k: {"shape": list(v.shape), "hex": v.astype("<f4").tobytes().hex()}
                              for k, v in tensors.items()}))
            """
        let run = try Python.run(["-c", script, p, p16])
        XCTAssertEqual(run.status, 0, "python failed: \(run.stderr)")
        guard run.status == 0 else { return }
        let expected = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: [String: Any]], "python printed: \(run.stdout)")

        let decoded = try readSafetensors(path: p)
        XCTAssertEqual(decoded.metadata, ["format": "np", "épocas": "3", "empty": ""])
        XCTAssertEqual(Set(decoded.tensors.map(\.name)), Set(expected.keys))
        for (name, e) in expected {
            let t = try XCTUnwrap(decoded[name], name)
            XCTAssertEqual(t.shape, e["shape"] as? [Int], name)
            XCTAssertEqual(Self.hex(t.values), e["hex"] as? String, name)
        }
        XCTAssertEqual(try decoded.tensor("weight", shape: [3, 4], file: p).values[8], Float(8) / Float(7))
        // The reference aligns the data region to 8 bytes too.
        XCTAssertEqual(Self.headerLength(Array(try Data(contentsOf: URL(fileURLWithPath: p)))) % 8, 0)

        assertError(try readSafetensors(path: p16), p16, ["tensor 'h' has dtype F16; only F32 is supported"])
    }

    /// The little-endian bytes of `values` in lower-case hex, as numpy's `.tobytes().hex()` prints them.
    static func hex(_ values: [Float]) -> String {
        var s = ""
        for v in values {
            for b in 0..<4 {
                let byte = UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32(b)))
                s += String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
            }
        }
        return s
    }

    // MARK: - Python

    func requireReference() throws {
        try requirePython(["numpy", "safetensors.numpy"], install: ["numpy", "safetensors"],
                          requiredEnv: "SAFETENSORS_REQUIRED", feature: "reference safetensors")
    }
}
