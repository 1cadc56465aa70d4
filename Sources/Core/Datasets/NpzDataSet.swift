// NpzDataSet: a NumPy .npz in Keras's layout as a data set — `x_train`, `y_train`, `x_test`,
// `y_test` (and optionally `x_val`, `y_val`) — where x is uint8 images N×H×W or N×D, or float32 /
// float64 features N×D, and y holds integer labels 0..k−1 (N or N×1).
//
// Every array is checked before use: present, of an accepted type and shape, the same length as its
// labels, finite, labels in range; a problem is one line naming the file and the array. Not here:
// reading the zip and .npy formats (ZipArchive, NumpyFile).
import CoreSupport
import Formats
import Model

extension DataSource {
    func loadNpz() throws -> LoadedData {
        if testData != nil { throw TrainerError("\(data): a .npz holds its own test set (x_test, y_test); --test-data is for CSV files") }
        if valData != nil { throw TrainerError("\(data): a .npz holds its own validation set (x_val, y_val) if any; --val-data is for CSV files") }
        let arrays = try readNpz(try readFile(data, limit: 1 << 34), name: data)
        func array(_ key: String) throws -> NpyArray {
            guard let a = arrays[key] else {
                throw TrainerError("\(data): no array '\(key)' (a .npz for training holds x_train, y_train, x_test, y_test; found \(arrays.keys.sorted().joined(separator: ", ")))")
            }
            return a
        }
        let yTrain = try labels(try array("y_train"), "y_train")
        let classCount = (yTrain.max() ?? 0) + 1
        guard classCount >= 2, classCount <= 256 else {
            throw TrainerError("\(data): array y_train has labels 0 to \(classCount - 1); expected 2 to 256 classes")
        }
        try checkLabels(yTrain, classCount: classCount, what: "\(data): array y_train")
        let train = try samples(try array("x_train"), "x_train", labels: yTrain, classCount: classCount)
        func set(_ x: String, _ y: String) throws -> LabeledData {
            let ys = try labels(try array(y), y)
            try checkLabels(ys, classCount: classCount, what: "\(data): array \(y)")
            let s = try samples(try array(x), x, labels: ys, classCount: classCount)
            guard s.width == train.width, s.encoding == train.encoding else {
                throw TrainerError("\(data): array \(x) has \(s.width) \(s.encoding == .bytes ? "bytes" : "features") per sample, x_train \(train.width) \(train.encoding == .bytes ? "bytes" : "features")")
            }
            return s
        }
        let validation = arrays["x_val"] != nil ? try set("x_val", "y_val") : nil
        return LoadedData(train: train, test: try set("x_test", "y_test"), validation: validation, warnings: [])
    }

    /// Integer labels of shape N or N×1.
    private func labels(_ a: NpyArray, _ key: String) throws -> [Int] {
        guard a.type.isInteger, a.shape.count == 1 || (a.shape.count == 2 && a.shape[1] == 1) else {
            throw TrainerError("\(data): array \(key) is \(a.type.rawValue) \(a.shape), expected integer labels of shape (N,)")
        }
        return a.integers()
    }

    /// uint8 N×H×W (images) or N×D; float N×D.
    private func samples(_ a: NpyArray, _ key: String, labels: [Int], classCount: Int) throws -> LabeledData {
        guard a.shape.first == labels.count else {
            throw TrainerError("\(data): array \(key) has \(a.shape.first ?? 0) samples, its labels \(labels.count)")
        }
        guard labels.count > 0 else { throw TrainerError("\(data): array \(key) has no samples") }
        let y = labels.map { UInt8($0) }
        switch (a.type, a.shape.count) {
        case (.uint8, 3): return LabeledData(pixels: a.bytes, labels: y, rows: a.shape[1], cols: a.shape[2], classCount: classCount)
        case (.uint8, 2): return LabeledData(pixels: a.bytes, labels: y, rows: 1, cols: a.shape[1], classCount: classCount)
        case (.float32, 2), (.float64, 2):
            let f = a.floats()
            if let bad = f.firstIndex(where: { !$0.isFinite }) {
                throw TrainerError("\(data): array \(key) holds \(f[bad]) at sample \(bad / a.shape[1]), feature \(bad % a.shape[1]) (features must be finite)")
            }
            return LabeledData(features: f, labels: y, width: a.shape[1], classCount: classCount)
        default:
            throw TrainerError("\(data): array \(key) is \(a.type.rawValue) \(a.shape), expected uint8 images N×H×W or N×D, or float32/float64 features N×D")
        }
    }
}
