// PredictionInput: the samples `dist-trainer predict` classifies, read from a file as raw values
// (before any scaling) — a .npz (`x_test`, or its only array), a CSV (its label column, if there is
// one, ignored), or one IDX images file (.gz or plain). Not here: scaling (the checkpoint's
// InputTransform), the model.
import CoreSupport
import Formats
import Model

public struct PredictionInput: Sendable {
    /// `rows × width` raw values (bytes as 0…255).
    public var values: [Float]
    public var rows: Int
    public var width: Int

    /// Reads `path` (`labelColumn`: the CSV column to ignore if present).
    public init(path: String, labelColumn: String) throws {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") {
            let table = try CSVTable(path: path, labelColumn: labelColumn, labelOptional: true)
            (values, rows, width) = (table.features, table.rows, table.featureNames.count)
        } else if lower.hasSuffix(".npz") {
            let arrays = try readNpz(try readFile(path, limit: 1 << 34), name: path)
            guard let (key, a) = arrays["x_test"].map({ ("x_test", $0) }) ?? (arrays.count == 1 ? arrays.first.map { ($0.key, $0.value) } : nil) else {
                throw TrainerError("\(path): no array 'x_test' and not a single array (found \(arrays.keys.sorted().joined(separator: ", ")))")
            }
            guard a.shape.count >= 2, !(a.type == .bool), a.shape[0] > 0 else {
                throw TrainerError("\(path): array \(key) is \(a.type.rawValue) \(a.shape), expected samples N×D or images N×H×W")
            }
            (values, rows, width) = (a.floats(), a.shape[0], a.shape.dropFirst().reduce(1, *))
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw TrainerError("\(path): array \(key) holds \(values[bad]) at sample \(bad / width) (values must be finite)")
            }
        } else {
            let raw = try readFile(path)
            let idx = try parseIDX(isGzip(raw) ? try gunzip(raw, name: path) : raw, name: path, expectedRank: 3)
            guard idx.dims[0] > 0 else { throw TrainerError("\(path): 0 images") }
            (values, rows, width) = (idx.bytes.map(Float.init), idx.dims[0], idx.dims[1] * idx.dims[2])
        }
    }

    /// The samples, scaled by `transform` as the model saw its data, as a data set with no labels.
    public func scaled(by transform: InputTransform, classCount: Int) -> LabeledData {
        var v = values
        transform.apply(to: &v)
        return LabeledData(features: v, labels: [UInt8](repeating: 0, count: rows), width: width, classCount: classCount)
    }
}
