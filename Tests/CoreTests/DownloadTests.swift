// DownloadTests: downloadDataset against a real HTTP server on the loopback interface.
//
// The server is Python's http.server, started per test on a port the kernel picks (it prints the port,
// so there is no race over a "free" port). It serves the synthetic set from DatasetTests with a table
// of that set's own hashes, since the official hashes only match the real files. Skipped if python3
// cannot be started.
@testable import CoreSupport
@testable import Datasets
@testable import Formats
import Foundation
import XCTest


final class DownloadTests: XCTestCase {
    var served = ""
    var outputRoot = ""
    var output = ""
    var server: LoopbackHTTPServer?

    override func setUpWithError() throws {
        served = try makeTempDirectory("served")
        outputRoot = try makeTempDirectory("output")
        output = outputRoot + "/data/fashion-mnist"  // not created yet: downloadDataset must create it
        server = try LoopbackHTTPServer(directory: served)
    }

    override func tearDown() {
        server?.stop()
        try? FileManager.default.removeItem(atPath: served)
        try? FileManager.default.removeItem(atPath: outputRoot)
    }

    // MARK: - Good downloads

    func testDownloadsVerifiesAndLoads() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        var lines = [String]()
        try downloadDataset(mirror: server!.url, into: output, files: set.table) { lines.append($0) }

        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines.allSatisfy { $0.contains("sha256 ok") }, "\(lines)")
        XCTAssertEqual(try listing(output), set.table.map { $0.name + ".gz" }.sorted(), "exactly the four files, no temp files")
        for (name, _) in set.table {
            XCTAssertEqual(try readFile(output + "/" + name + ".gz"), try readFile(served + "/" + name + ".gz"))
        }
        let (train, test) = try FashionMNIST.load(directory: output)
        XCTAssertEqual(train.labels, set.trainLabels)
        XCTAssertEqual(test.pixels, set.testPixels)
    }

    func testMirrorWithoutTrailingSlash() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        var base = server!.url.absoluteString
        XCTAssertTrue(base.hasSuffix("/"))
        base.removeLast()
        try downloadDataset(mirror: URL(string: base)!, into: output, files: set.table) { _ in }
        XCTAssertEqual(try listing(output).count, 4)
    }

    func testMirrorInASubdirectory() throws {
        let set = SyntheticSet()
        try FileManager.default.createDirectory(atPath: served + "/pub/fmnist", withIntermediateDirectories: true)
        try set.write(to: served + "/pub/fmnist", gzipped: true)
        for base in ["pub/fmnist", "pub/fmnist/"] {
            try? FileManager.default.removeItem(atPath: output)
            try downloadDataset(mirror: URL(string: base, relativeTo: server!.url)!.absoluteURL, into: output, files: set.table) { _ in }
            XCTAssertEqual(try listing(output).count, 4, base)
        }
    }

    func testSkipsFilesAlreadyPresent() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        try downloadDataset(mirror: server!.url, into: output, files: set.table) { _ in }
        // Stop serving: a second run must not need the network at all.
        server?.stop()
        var lines = [String]()
        try downloadDataset(mirror: server!.url, into: output, files: set.table) { lines.append($0) }
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines.allSatisfy { $0.contains("skipped") }, "\(lines)")
    }

    func testSkipsPlainCopyWithTheRightContent() throws {
        let set = SyntheticSet()
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        try set.write(to: output, gzipped: false)
        server?.stop()
        var lines = [String]()
        try downloadDataset(mirror: server!.url, into: output, files: set.table) { lines.append($0) }
        XCTAssertTrue(lines.allSatisfy { $0.contains("skipped") }, "\(lines)")
    }

    func testReplacesAWrongExistingFile() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        try writeBytes(gzip([1, 2, 3]), to: output + "/train-labels-idx1-ubyte.gz")
        try downloadDataset(mirror: server!.url, into: output, files: set.table) { _ in }
        XCTAssertEqual(try readFile(output + "/train-labels-idx1-ubyte.gz"), try readFile(served + "/train-labels-idx1-ubyte.gz"))
    }

    func testGoodPlainCopyDoesNotHideABadGz() throws {
        // The loader prefers .gz, so a bad .gz must be replaced even if a good plain copy sits next to it.
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        try set.write(to: output, gzipped: false)
        try writeBytes(gzip([1, 2, 3]), to: output + "/t10k-images-idx3-ubyte.gz")
        var lines = [String]()
        try downloadDataset(mirror: server!.url, into: output, files: set.table) { lines.append($0) }
        XCTAssertEqual(lines.filter { $0.contains("skipped") }.count, 3, "\(lines)")
        XCTAssertEqual(try readFile(output + "/t10k-images-idx3-ubyte.gz"), try readFile(served + "/t10k-images-idx3-ubyte.gz"))
        XCTAssertEqual(try FashionMNIST.load(directory: output).test.pixels, set.testPixels)
    }

    // MARK: - Failures

    func testCorruptedFileIsRejectedAndNotWritten() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        // The mirror serves different (validly gzipped) content for the test labels.
        var wrong = set.testLabels
        wrong[0] = (wrong[0] + 1) % 10
        let wrongContent = encodeIDX(dims: [20], bytes: wrong)
        try writeBytes(gzip(wrongContent), to: served + "/t10k-labels-idx1-ubyte.gz")

        let url = server!.url.absoluteString + "t10k-labels-idx1-ubyte.gz"
        let expected = set.table[3].sha256
        assertDownloadError(set.table, contains: [
            "t10k-labels-idx1-ubyte.gz from \(url): sha256 of content \(sha256Hex(wrongContent)), expected \(expected)",
        ])
        // The three good files before it landed; the bad one did not, and no temp file is left.
        XCTAssertEqual(try listing(output), ["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"])
    }

    func testTruncatedDownloadIsRejected() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        let packed = try readFile(served + "/train-images-idx3-ubyte.gz")
        try writeBytes(Array(packed.prefix(packed.count - 20)), to: served + "/train-images-idx3-ubyte.gz")
        assertDownloadError(set.table, contains: ["train-images-idx3-ubyte.gz from http://127.0.0.1:", "truncated gzip stream"])
        XCTAssertEqual(try listing(output), [])
    }

    func testServedFileNotGzip() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        try writeBytes(set.files[FashionMNIST.trainImages]!, to: served + "/train-images-idx3-ubyte.gz")
        assertDownloadError(set.table, contains: ["train-images-idx3-ubyte.gz from http://127.0.0.1:", "not a gzip file"])
    }

    func testNotFound() throws {
        let set = SyntheticSet()
        try set.write(to: served, gzipped: true)
        try FileManager.default.removeItem(atPath: served + "/train-labels-idx1-ubyte.gz")
        let url = server!.url.absoluteString + "train-labels-idx1-ubyte.gz"
        assertDownloadError(set.table, contains: ["GET \(url): HTTP 404"])
        XCTAssertEqual(try listing(output), ["train-images-idx3-ubyte.gz"])
    }

    func testConnectionRefused() throws {
        server?.stop()  // nothing listens on its port any more
        let url = server!.url.absoluteString + "train-images-idx3-ubyte.gz"
        assertDownloadError(SyntheticSet().table, contains: ["GET \(url): cannot connect"])
    }

    func testOutputDirectoryCannotBeCreated() throws {
        try writeBytes([0], to: outputRoot + "/data")  // a file where a parent directory should be
        assertDownloadError(SyntheticSet().table, contains: [output, "cannot create directory", "Not a directory"])
    }

    /// The response parser of the built-in HTTP client on hand-written responses: Content-Length,
    /// chunked bodies (with extensions and a trailer), a short body, and garbage.
    func testHTTPResponseParsing() throws {
        func parse(_ text: String) throws -> HTTPExchange { try HTTPExchange.parse(Array(text.utf8), context: "GET x") }
        let plain = try parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA")
        XCTAssertEqual(plain.status, 200)
        XCTAssertEqual(plain.headers["x-a"], "b")
        XCTAssertEqual(String(decoding: plain.body, as: UTF8.self), "hello")
        let chunked = try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n")
        XCTAssertEqual(String(decoding: chunked.body, as: UTF8.self), "Wikipedia in\r\n\r\nchunks.")
        let toEnd = try parse("HTTP/1.0 404 Not Found\r\n\r\nno such file")
        XCTAssertEqual(toEnd.status, 404)
        XCTAssertEqual(toEnd.reason, "Not Found")
        XCTAssertEqual(String(decoding: toEnd.body, as: UTF8.self), "no such file")
        for (bad, needle) in [("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "5 of 10 bytes"),
                              ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", "truncated chunked body"),
                              ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
                              ("SSH-2.0-OpenSSH\r\n\r\n", "status line"), ("HTTP/1.1 200 OK\r\n", "no complete header")] {
            XCTAssertThrowsError(try parse(bad), bad) { XCTAssertTrue("\($0)".contains(needle), "\($0)") }
        }
        XCTAssertThrowsError(try httpGet(URL(string: "https://example.org/x")!)) { XCTAssertTrue("\($0)".contains("only http://"), "\($0)") }
    }

    func testMirrorURLJoining() {
        let file = "t10k-labels-idx1-ubyte.gz"
        for (mirror, expected) in [
            ("http://example.org/", "http://example.org/t10k-labels-idx1-ubyte.gz"),
            ("http://example.org", "http://example.org/t10k-labels-idx1-ubyte.gz"),
            ("https://example.org/a/b", "https://example.org/a/b/t10k-labels-idx1-ubyte.gz"),
            ("https://example.org/a/b/", "https://example.org/a/b/t10k-labels-idx1-ubyte.gz"),
            (FashionMNIST.mirror, "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz"),
        ] {
            XCTAssertEqual(mirrorFileURL(mirror: URL(string: mirror)!, file: file).absoluteString, expected)
        }
    }

    // MARK: - Helpers

    private func assertDownloadError(
        _ table: [(name: String, sha256: String)], contains parts: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try downloadDataset(mirror: server!.url, into: output, files: table) { _ in }, file: file, line: line) { error in
            guard let error = error as? TrainerError else {
                return XCTFail("not a TrainerError: \(error)", file: file, line: line)
            }
            XCTAssertFalse(error.message.contains("\n"), "not one line: \(error.message)", file: file, line: line)
            for part in parts {
                XCTAssertTrue(error.message.contains(part), "'\(error.message)' lacks '\(part)'", file: file, line: line)
            }
        }
    }

    /// Sorted names in `directory`, hidden (temp) files included.
    private func listing(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }
}

// MARK: - Loopback server

/// `python3 -m http.server` bound to 127.0.0.1 on a kernel-chosen port, serving `directory`.
final class LoopbackHTTPServer {
    let process = Process()
    /// Base URL with a trailing slash, e.g. http://127.0.0.1:40123/
    private(set) var url = URL(string: "http://127.0.0.1/")!

    init(directory: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // -u: unbuffered, so the "Serving HTTP on ... port N" line reaches us immediately.
        process.arguments = ["python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice  // per-request access log
        do { try process.run() } catch { throw XCTSkip("cannot start python3: \(error)") }

        // Read until the banner names the port (or the process dies, which ends the pipe).
        var banner = ""
        let reader = out.fileHandleForReading
        while !banner.contains(")") {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            banner += String(decoding: chunk, as: UTF8.self)
        }
        guard let range = banner.range(of: #"port (\d+)"#, options: .regularExpression),
              let port = Int(banner[range].dropFirst(5))
        else {
            stop()
            throw XCTSkip("python3 http.server did not report a port: \(banner)")
        }
        url = URL(string: "http://127.0.0.1:\(port)/")!
        try waitUntilAccepting(port: port)
    }

    /// The banner is printed after listen(), but check anyway: connect until it succeeds (up to 5 s).
    private func waitUntilAccepting(port: Int) throws {
        for _ in 0..<100 {
            #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
            #endif
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
            if rc == 0 { return }
            usleep(50_000)
        }
        stop()
        throw XCTSkip("python3 http.server on port \(port) never accepted a connection")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}
