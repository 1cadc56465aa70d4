// DatasetTests: loading Fashion-MNIST-shaped data from disk, every bad-input case, directory lookup,
// and (when installed) the real data set.
//
// The synthetic set is 50 train and 20 test 4×4 images written under the real file names, so the
// same helper also serves DownloadTests.
@testable import CoreSupport
@testable import Datasets
@testable import Formats
import Foundation
import XCTest


final class DatasetTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try makeTempDirectory("dataset")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: - Loading good data

    func testLoadsGzippedFiles() throws {
        let set = SyntheticSet()
        try set.write(to: dir, gzipped: true)
        try assertLoads(set)
    }

    func testLoadsPlainFiles() throws {
        let set = SyntheticSet()
        try set.write(to: dir, gzipped: false)
        try assertLoads(set)
    }

    func testPrefersGzWhenBothExist() throws {
        let set = SyntheticSet()
        try set.write(to: dir, gzipped: true)
        // A broken plain copy next to a good .gz must be ignored.
        try writeBytes([1, 2, 3], to: dir + "/" + FashionMNIST.trainImages)
        try assertLoads(set)
    }

    func testMixedAndMislabelledFiles() throws {
        let set = SyntheticSet()
        try set.write(to: dir, gzipped: false)
        // One file .gz, one plain-named but actually gzipped: both must load.
        try FileManager.default.removeItem(atPath: dir + "/" + FashionMNIST.testImages)
        try writeBytes(gzip(set.files[FashionMNIST.testImages]!), to: dir + "/" + FashionMNIST.testImages + ".gz")
        try writeBytes(gzip(set.files[FashionMNIST.trainLabels]!), to: dir + "/" + FashionMNIST.trainLabels)
        try assertLoads(set)
    }

    // MARK: - Bad inputs

    func testMissingDirectory() {
        assertLoadError(dir + "/nope", contains: [dir + "/nope", "does not exist"])
    }

    func testDirectoryIsAFile() throws {
        try writeBytes([0], to: dir + "/file")
        assertLoadError(dir + "/file", contains: [dir + "/file", "is not a directory"])
    }

    func testMissingFile() throws {
        try SyntheticSet().write(to: dir, gzipped: true)
        try FileManager.default.removeItem(atPath: dir + "/t10k-labels-idx1-ubyte.gz")
        assertLoadError(dir, contains: [
            "t10k-labels-idx1-ubyte: not found", dir + "/t10k-labels-idx1-ubyte.gz", dir + "/t10k-labels-idx1-ubyte)",
        ])
    }

    func testNotGzip() throws {
        let set = SyntheticSet()
        try set.write(to: dir, gzipped: true)
        try writeBytes(set.files[FashionMNIST.trainImages]!, to: dir + "/train-images-idx3-ubyte.gz")
        assertLoadError(dir, contains: ["train-images-idx3-ubyte.gz: not a gzip file", "first bytes 00 00 08 03"])
    }

    func testTruncatedGzip() throws {
        let set = SyntheticSet()
        try set.write(to: dir, gzipped: true)
        let packed = gzip(set.files[FashionMNIST.testImages]!)
        try writeBytes(Array(packed.prefix(packed.count / 2)), to: dir + "/t10k-images-idx3-ubyte.gz")
        assertLoadError(dir, contains: ["t10k-images-idx3-ubyte.gz: truncated gzip stream"])
    }

    func testLabelsFileInPlaceOfImages() throws {
        var set = SyntheticSet()
        set.files[FashionMNIST.trainImages] = set.files[FashionMNIST.trainLabels]
        try set.write(to: dir, gzipped: true)
        assertLoadError(dir, contains: ["train-images-idx3-ubyte: IDX magic 0x00000801, expected 0x00000803 (images)"])
    }

    func testImagesFileInPlaceOfLabels() throws {
        var set = SyntheticSet()
        set.files[FashionMNIST.testLabels] = set.files[FashionMNIST.testImages]
        try set.write(to: dir, gzipped: false)
        assertLoadError(dir, contains: ["t10k-labels-idx1-ubyte: IDX magic 0x00000803, expected 0x00000801 (labels)"])
    }

    func testTruncatedIDXPayload() throws {
        var set = SyntheticSet()
        set.files[FashionMNIST.trainImages]!.removeLast(3)
        try set.write(to: dir, gzipped: true)
        assertLoadError(dir, contains: ["train-images-idx3-ubyte: truncated IDX payload", "50×4×4 = 800"])
    }

    func testImageAndLabelCountsDiffer() throws {
        var set = SyntheticSet()
        set.files[FashionMNIST.trainLabels] = encodeIDX(dims: [49], bytes: Array(set.trainLabels.prefix(49)))
        try set.write(to: dir, gzipped: true)
        assertLoadError(dir, contains: ["train: 50 images but 49 labels"])
    }

    func testZeroImages() throws {
        var set = SyntheticSet()
        set.files[FashionMNIST.testImages] = encodeIDX(dims: [0, 4, 4], bytes: [])
        set.files[FashionMNIST.testLabels] = encodeIDX(dims: [0], bytes: [])
        try set.write(to: dir, gzipped: true)
        assertLoadError(dir, contains: ["t10k-images-idx3-ubyte: 0 images, expected at least 1"])
    }

    func testZeroSizedImages() throws {
        var set = SyntheticSet()
        set.files[FashionMNIST.trainImages] = encodeIDX(dims: [50, 0, 4], bytes: [])
        try set.write(to: dir, gzipped: true)
        assertLoadError(dir, contains: ["train-images-idx3-ubyte: images are 0×4"])
    }

    func testLabelOutOfRange() throws {
        var set = SyntheticSet()
        var labels = set.testLabels
        labels[5] = 12
        labels[7] = 200  // only the first bad one is reported
        set.files[FashionMNIST.testLabels] = encodeIDX(dims: [20], bytes: labels)
        try set.write(to: dir, gzipped: true)
        assertLoadError(dir, contains: ["t10k-labels-idx1-ubyte: label 12 at index 5 is not a class of the training data (0 to 9)"])
    }

    func testTrainAndTestSizesDisagree() throws {
        var set = SyntheticSet()
        set.files[FashionMNIST.testImages] = encodeIDX(dims: [20, 5, 5], bytes: [UInt8](repeating: 9, count: 500))
        try set.write(to: dir, gzipped: true)
        assertLoadError(dir, contains: ["t10k-images-idx3-ubyte: images are 5×5", "train-images-idx3-ubyte images are 4×4"])
    }

    // MARK: - Finding the directory

    func testEnvironmentVariableWins() {
        let found = FashionMNIST.defaultDirectory(environment: ["FASHION_MNIST_DIR": "/my/data"], fileExists: { _ in true })
        XCTAssertEqual(found, "/my/data")
        // Even if nothing is there: load will then say so, instead of silently using another copy.
        let unprobed = FashionMNIST.defaultDirectory(environment: ["FASHION_MNIST_DIR": "/typo"], fileExists: { _ in false })
        XCTAssertEqual(unprobed, "/typo")
    }

    func testEmptyEnvironmentVariableIsIgnored() {
        let found = FashionMNIST.defaultDirectory(
            environment: ["FASHION_MNIST_DIR": ""], fileExists: { $0.hasPrefix("/usr/share/datasets/fashion-mnist/") })
        XCTAssertEqual(found, "/usr/share/datasets/fashion-mnist")
    }

    func testLocalDirectoryBeforeSystem() {
        var probed = [String]()
        let found = FashionMNIST.defaultDirectory(environment: [:]) { path in
            probed.append(path)
            return path == "data/fashion-mnist/t10k-labels-idx1-ubyte" || path.hasPrefix("/usr/share/")
        }
        XCTAssertEqual(found, "data/fashion-mnist")
        XCTAssertFalse(probed.contains { $0.hasPrefix("/usr/share/") }, "probed the system copy needlessly")
    }

    func testSystemDirectory() {
        let found = FashionMNIST.defaultDirectory(environment: ["HOME": "/root"]) {
            $0 == "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
        }
        XCTAssertEqual(found, "/usr/share/datasets/fashion-mnist")
    }

    func testNothingFound() {
        XCTAssertNil(FashionMNIST.defaultDirectory(environment: [:], fileExists: { _ in false }))
        XCTAssertThrowsError(try FashionMNIST.resolveDirectory(environment: [:], fileExists: { _ in false })) { error in
            let message = (error as? TrainerError)?.message ?? "\(error)"
            for part in [
                "no Fashion-MNIST data found", "$FASHION_MNIST_DIR", "data/fashion-mnist", "/usr/share/datasets/fashion-mnist",
                "apt-get install dataset-fashion-mnist", "dist-trainer download",
            ] {
                XCTAssertTrue(message.contains(part), "'\(message)' lacks '\(part)'")
            }
        }
        XCTAssertEqual(try FashionMNIST.resolveDirectory(environment: [:], fileExists: { $0.hasPrefix("data/") }), "data/fashion-mnist")
    }

    /// The real Fashion-MNIST (Debian's package, which CI installs) is recognised by its training
    /// labels' checksum and keeps its class names; data of the same shape with other labels does not.
    func testRealFashionMNISTKeepsItsClassNames() throws {
        let dir = FashionMNIST.systemDirectory
        guard FileManager.default.fileExists(atPath: dir + "/" + FashionMNIST.trainLabels + ".gz") else {
            if ProcessInfo.processInfo.environment["MULTIHOST_REQUIRED"] == "1" { XCTFail("\(dir) is missing in CI") }
            throw XCTSkip("Fashion-MNIST is not installed in \(dir)")
        }
        let (train, test) = try FashionMNIST.load(directory: dir)
        XCTAssertEqual(train.classNames, FashionMNIST.classNames)
        XCTAssertEqual(test.classNames, FashionMNIST.classNames)
        XCTAssertEqual(train.classCount, 10)
        var set = SyntheticSet()
        try set.write(to: self.dir, gzipped: true)
        XCTAssertEqual(try FashionMNIST.load(directory: self.dir).train.classNames, (0..<10).map(String.init))
        _ = set
    }

    func testConstants() {
        XCTAssertEqual(FashionMNIST.classCount, 10)
        XCTAssertEqual(FashionMNIST.classNames.count, FashionMNIST.classCount)
        XCTAssertEqual(FashionMNIST.classNames[0], "T-shirt/top")
        XCTAssertEqual(FashionMNIST.classNames[9], "Ankle boot")
        XCTAssertEqual(FashionMNIST.files.map(\.name), [
            "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        ])
        XCTAssertTrue(FashionMNIST.files.allSatisfy { $0.sha256.count == 64 })
    }

    // MARK: - The real data set

    func testRealDataSetIfInstalled() throws {
        let system = FashionMNIST.systemDirectory
        guard FileManager.default.fileExists(atPath: system) else {
            throw XCTSkip("\(system) not installed (apt-get install dataset-fashion-mnist)")
        }
        let started = Date()
        let (train, test) = try FashionMNIST.load(directory: system)
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual([train.rows, train.cols, test.rows, test.cols], [28, 28, 28, 28])
        XCTAssertEqual(Array(train.labels.prefix(10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        XCTAssertEqual(Array(test.labels.prefix(10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        // Balanced classes: 6000 and 1000 of each.
        var trainCounts = [Int](repeating: 0, count: 10), testCounts = [Int](repeating: 0, count: 10)
        for l in train.labels { trainCounts[Int(l)] += 1 }
        for l in test.labels { testCounts[Int(l)] += 1 }
        XCTAssertEqual(trainCounts, [Int](repeating: 6000, count: 10))
        XCTAssertEqual(testCounts, [Int](repeating: 1000, count: 10))
        // Generous even for a debug build; the point is to catch a per-byte slow path.
        XCTAssertLessThan(seconds, 10, "loading took \(seconds) s")
    }

    // MARK: - Helpers

    private func assertLoads(_ set: SyntheticSet, file: StaticString = #filePath, line: UInt = #line) throws {
        let (train, test) = try FashionMNIST.load(directory: dir)
        XCTAssertEqual(train.count, 50, file: file, line: line)
        XCTAssertEqual(test.count, 20, file: file, line: line)
        XCTAssertEqual([train.rows, train.cols, test.rows, test.cols], [4, 4, 4, 4], file: file, line: line)
        XCTAssertEqual(train.pixels, set.trainPixels, file: file, line: line)
        XCTAssertEqual(train.labels, set.trainLabels, file: file, line: line)
        XCTAssertEqual(test.pixels, set.testPixels, file: file, line: line)
        XCTAssertEqual(test.labels, set.testLabels, file: file, line: line)
    }

    private func assertLoadError(_ directory: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try FashionMNIST.load(directory: directory), file: file, line: line) { error in
            guard let error = error as? TrainerError else {
                return XCTFail("not a TrainerError: \(error)", file: file, line: line)
            }
            XCTAssertFalse(error.message.contains("\n"), "not one line: \(error.message)", file: file, line: line)
            for part in parts {
                XCTAssertTrue(error.message.contains(part), "'\(error.message)' lacks '\(part)'", file: file, line: line)
            }
        }
    }
}

// MARK: - Shared fixtures (also used by DownloadTests)

/// A small Fashion-MNIST-shaped data set: 50 train and 20 test 4×4 images, labels cycling 0...9.
/// `files` maps each real file name to its uncompressed IDX bytes; tests break one entry and write.
struct SyntheticSet {
    let trainPixels = (0..<(50 * 16)).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }
    let trainLabels = (0..<50).map { UInt8($0 % 10) }
    let testPixels = (0..<(20 * 16)).map { UInt8(truncatingIfNeeded: $0 * 17 + 3) }
    let testLabels = (0..<20).map { UInt8(($0 * 3) % 10) }
    var files: [String: [UInt8]] = [:]

    init() {
        files[FashionMNIST.trainImages] = encodeIDX(dims: [50, 4, 4], bytes: trainPixels)
        files[FashionMNIST.trainLabels] = encodeIDX(dims: [50], bytes: trainLabels)
        files[FashionMNIST.testImages] = encodeIDX(dims: [20, 4, 4], bytes: testPixels)
        files[FashionMNIST.testLabels] = encodeIDX(dims: [20], bytes: testLabels)
    }

    /// Writes the four files into `directory`, as `<name>.gz` or plain `<name>`.
    func write(to directory: String, gzipped: Bool) throws {
        for (name, bytes) in files {
            try writeBytes(gzipped ? gzip(bytes) : bytes, to: directory + "/" + name + (gzipped ? ".gz" : ""))
        }
    }

    /// The (name, sha256 of content) table for `downloadDataset`, in the official order.
    var table: [(name: String, sha256: String)] {
        FashionMNIST.files.map { ($0.name, sha256Hex(files[$0.name]!)) }
    }
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A fresh, empty directory under the system temp directory.
func makeTempDirectory(_ label: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("dist-trainer-\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
