// Dataset: Fashion-MNIST on disk — where it lives, what its files are, and loading them.
//
// Fashion-MNIST (Zalando Research) is 60000 train and 10000 test 28×28 grayscale images of clothing in
// 10 classes, shipped as four IDX files, usually gzipped. This file finds the directory, reads the four
// files (.gz or plain), checks that they fit together, and returns two LabeledData. The same four
// file names serve MNIST, KMNIST and EMNIST-style data of any image size and class count: the class
// count is the training labels' largest plus one, and Fashion-MNIST (recognised by its training
// labels' official checksum) keeps its class names. It does not download anything (Download.swift),
// split off a validation set, batch, or convert to Float.
import CoreSupport
import Formats
import Foundation
import Model

// MARK: - The data set

/// Facts about Fashion-MNIST and how to load it. A namespace; never instantiated.
public enum FashionMNIST {
    /// File base names; on disk each is `<name>.gz` or `<name>`.
    public static let trainImages = "train-images-idx3-ubyte"
    public static let trainLabels = "train-labels-idx1-ubyte"
    public static let testImages = "t10k-images-idx3-ubyte"
    public static let testLabels = "t10k-labels-idx1-ubyte"

    /// The four files with the official SHA-256 of each file's uncompressed content. Hashing the
    /// content rather than the .gz makes the check independent of how a mirror compressed it.
    public static let files: [(name: String, sha256: String)] = [
        (trainImages, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        (trainLabels, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        (testImages, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        (testLabels, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ]

    /// Number of classes; labels are `0..<classCount`.
    public static let classCount = 10

    /// Class names indexed by label.
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// The official mirror; the files are `<name>.gz` directly under it.
    public static let mirror = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

    // MARK: - Finding the directory

    /// Environment variable naming the data directory; when set it wins outright.
    public static let environmentVariable = "FASHION_MNIST_DIR"
    /// Where `dist-trainer download` puts the files, relative to the working directory.
    public static let localDirectory = "data/fashion-mnist"
    /// Where the Debian package `dataset-fashion-mnist` installs the files.
    public static let systemDirectory = "/usr/share/datasets/fashion-mnist"

    /// The data directory to use, or nil if none of the candidates has data.
    ///
    /// Order: `$FASHION_MNIST_DIR`, then `data/fashion-mnist`, then `/usr/share/datasets/fashion-mnist`.
    /// A non-empty `$FASHION_MNIST_DIR` is returned without probing: the user asked for it, so a typo
    /// should fail loudly in `load` rather than silently fall back to another copy. The other two count
    /// only if they hold at least one of the four files (.gz or plain), so a half-downloaded local copy
    /// is still picked (and `load` then names the missing file).
    ///
    /// - Parameters:
    ///   - environment: the process environment (injected for tests).
    ///   - fileExists: whether a path exists (injected for tests).
    public static func defaultDirectory(environment: [String: String], fileExists: (String) -> Bool) -> String? {
        if let dir = environment[environmentVariable], !dir.isEmpty { return dir }
        for dir in [localDirectory, systemDirectory] {
            let hasData = files.contains { file in
                fileExists(dir + "/" + file.name + ".gz") || fileExists(dir + "/" + file.name)
            }
            if hasData { return dir }
        }
        return nil
    }

    /// Like `defaultDirectory`, but throws a `TrainerError` saying where it looked and how to get the
    /// data when nothing is found. Defaults to the real environment and file system.
    public static func resolveDirectory(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        fileExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }
    ) throws -> String {
        if let dir = defaultDirectory(environment: environment, fileExists: fileExists) { return dir }
        throw TrainerError(
            "no Fashion-MNIST data found (looked in $\(environmentVariable) (unset), \(localDirectory), "
                + "\(systemDirectory)): install it with `apt-get install dataset-fashion-mnist` "
                + "or run `dist-trainer download`")
    }

    // MARK: - Loading

    /// Loads the train and test sets from `directory`.
    ///
    /// Each of the four files may be `<name>.gz` (preferred when both exist) or uncompressed `<name>`.
    /// Checks, each failing with a `TrainerError` naming the culprit: the directory exists; each file
    /// exists; gzip is intact; IDX headers are right for labels (rank 1) and images (rank 3); image and
    /// label counts agree; there is at least one image; every label is `< classCount`; train and test
    /// images have the same size.
    public static func load(directory: String) throws -> (train: LabeledData, test: LabeledData) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) else {
            throw TrainerError("Fashion-MNIST directory \(directory) does not exist")
        }
        guard isDir.boolValue else {
            throw TrainerError("Fashion-MNIST directory \(directory) is not a directory")
        }
        var train = try loadSplit(directory: directory, split: "train", images: trainImages, labels: trainLabels, classCount: nil)
        var test = try loadSplit(directory: directory, split: "test", images: testImages, labels: testLabels, classCount: train.classCount)
        if sha256Hex(encodeIDX(dims: [train.count], bytes: train.labels)) == files[1].sha256 { (train.classNames, test.classNames) = (classNames, classNames) }
        guard train.rows == test.rows, train.cols == test.cols else {
            throw TrainerError(
                "\(testImages): images are \(test.rows)×\(test.cols) but \(trainImages) images are "
                    + "\(train.rows)×\(train.cols); train and test must match")
        }
        return (train, test)
    }

    /// Loads one images/labels pair and checks it is consistent.
    /// `classCount`: the training set's (labels must be below it); nil for the training set itself,
    /// whose largest label sets it.
    static func loadSplit(directory: String, split: String, images: String, labels: String, classCount known: Int?) throws -> LabeledData {
        let imageIDX = try parseIDX(readDataFile(directory: directory, name: images), name: images, expectedRank: 3)
        let labelIDX = try parseIDX(readDataFile(directory: directory, name: labels), name: labels, expectedRank: 1)
        let count = imageIDX.dims[0], rows = imageIDX.dims[1], cols = imageIDX.dims[2]

        guard count == labelIDX.dims[0] else {
            throw TrainerError("\(split): \(count) images but \(labelIDX.dims[0]) labels (\(images) vs \(labels))")
        }
        guard count > 0 else {
            throw TrainerError("\(images): 0 images, expected at least 1")
        }
        guard rows > 0, cols > 0 else {
            throw TrainerError("\(images): images are \(rows)×\(cols), expected both sides > 0")
        }
        let classCount = known ?? Int(labelIDX.bytes.max() ?? 0) + 1
        guard classCount >= 2 else { throw TrainerError("\(labels): every label is 0; a classifier needs at least 2 classes") }
        if let bad = labelIDX.bytes.withUnsafeBufferPointer({ $0.firstIndex { Int($0) >= classCount } }) {
            throw TrainerError(
                "\(labels): label \(labelIDX.bytes[bad]) at index \(bad) is not a class of the training data (0 to \(classCount - 1))")
        }
        return LabeledData(pixels: imageIDX.bytes, labels: labelIDX.bytes, rows: rows, cols: cols, classCount: classCount)
    }

    /// Reads `<directory>/<name>.gz` or, failing that, `<directory>/<name>`, inflating if gzipped.
    /// A plain-named file that is actually gzipped is inflated too (some tools drop the suffix).
    static func readDataFile(directory: String, name: String) throws -> [UInt8] {
        let gzPath = directory + "/" + name + ".gz"
        let plainPath = directory + "/" + name
        // lstat, not fileExists: a dangling link or a loop of links is there, and reading it says why.
        func present(_ path: String) -> Bool { var info = stat(); return lstat(path, &info) == 0 }
        if present(gzPath) {
            return try gunzip(readFile(gzPath), name: name + ".gz")
        }
        if present(plainPath) {
            let bytes = try readFile(plainPath)
            return isGzip(bytes) ? try gunzip(bytes, name: name) : bytes
        }
        throw TrainerError("\(name): not found in \(directory) (tried \(gzPath) and \(plainPath))")
    }
}
