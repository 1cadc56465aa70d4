// DataSourceLoading: reading a DataSource — a directory of IDX files (Fashion-MNIST, MNIST, KMNIST,
// any size and class count), a NumPy .npz in Keras's layout, or CSV files — into train, test and
// (optionally) validation sets with their class names.
//
// Every rank reads the same files (a shared file system, as for the binary); every problem is one
// line naming the file and the place. Not here: splitting off validation (DataSplit), scaling
// (InputTransform), the formats themselves (IDX, CSVTable, NumpyFile).
import CoreSupport
import Formats
import Foundation
import Model

extension DataSource {
    /// What kind of files `data` names.
    public enum Kind: String, Sendable { case idx, npz, csv }

    public func kind() throws -> Kind {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory), isDirectory.boolValue { return .idx }
        if data.lowercased().hasSuffix(".npz") { return .npz }
        if data.lowercased().hasSuffix(".csv") { return .csv }
        if !FileManager.default.fileExists(atPath: data) {
            throw TrainerError("data directory \(data) does not exist (--data: a directory of IDX files, a .npz or a .csv)")
        }
        throw TrainerError("\(data): expected a directory of IDX files, a .npz or a .csv (--data)")
    }
}

/// A data set as loaded: its sets, and warnings worth a line (a class with no training sample).
public struct LoadedData: Sendable {
    public var train: LabeledData
    public var test: LabeledData
    public var validation: LabeledData?
    public var warnings: [String]
}

extension DataSource {
    /// Loads every set, checks they fit together, and names the classes.
    public func load() throws -> LoadedData {
        var loaded: LoadedData
        switch try kind() {
        case .idx: loaded = try loadIDX()
        case .npz: loaded = try loadNpz()
        case .csv: loaded = try loadCSV()
        }
        if let classNames { try loaded.rename(fromFile: classNames) }
        loaded.warnings += loaded.emptyClasses()
        return loaded
    }

    func loadIDX() throws -> LoadedData {
        if testData != nil || valData != nil {
            throw TrainerError("\(data): an IDX directory holds its own test set; --test-data and --val-data are for CSV and .npz files")
        }
        let (train, test) = try FashionMNIST.load(directory: data)
        return LoadedData(train: train, test: test, validation: nil, warnings: [])
    }
}

extension LoadedData {
    /// Class names from a file, one per line (blank lines at the end ignored).
    mutating func rename(fromFile path: String) throws {
        let text = String(decoding: try readFile(path, limit: 1 << 24), as: UTF8.self)
        var names = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        while names.last == "" { names.removeLast() }
        guard names.count == train.classCount else {
            throw TrainerError("\(path): \(names.count) class names, the data has \(train.classCount) classes (--class-names)")
        }
        if let dup = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw TrainerError("\(path): class name '\(dup)' appears twice (--class-names)")
        }
        train.classNames = names
        test.classNames = names
        validation?.classNames = names
    }

    /// "class 3 (Dress) has no training sample" for every such class.
    func emptyClasses() -> [String] {
        var seen = [Bool](repeating: false, count: train.classCount)
        for l in train.labels { seen[Int(l)] = true }
        return seen.indices.filter { !seen[$0] }.map { "class \($0) (\(train.classNames[$0])) has no training sample: the model will never predict it" }
    }
}

/// Labels 0..<k for a set whose classes are those of the training set (`classCount`), or an error
/// naming `what` and the first label out of range.
func checkLabels(_ labels: [Int], classCount: Int, what: String) throws {
    if let i = labels.firstIndex(where: { $0 < 0 || $0 >= classCount }) {
        throw TrainerError("\(what): label \(labels[i]) at index \(i) is not a class of the training data (0 to \(classCount - 1))")
    }
}
