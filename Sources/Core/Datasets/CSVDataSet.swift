// CSVDataSet: CSV files as a data set — `--data train.csv --test-data test.csv [--val-data val.csv]`,
// a label column (`--label-column`, default `label`) and numeric feature columns.
//
// The classes are the training file's distinct labels in sorted order (numerically when every
// label is an integer, else by text), and their names are the label texts; the other files must
// have the same columns and only labels the training file has. Not here: parsing (CSVTable).
import CoreSupport
import Model

extension DataSource {
    func loadCSV() throws -> LoadedData {
        guard let testData else {
            throw TrainerError("\(data): a CSV training file needs its test file: --test-data FILE.csv")
        }
        let train = try CSVTable(path: data, labelColumn: labelColumn)
        let names = sortedClasses(train.labelTexts)
        guard names.count >= 2, names.count <= 256 else {
            throw TrainerError("\(data): column '\(labelColumn)' has \(names.count) distinct labels; expected 2 to 256 classes")
        }
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        func labeled(_ table: CSVTable, _ path: String) throws -> LabeledData {
            guard table.featureNames == train.featureNames else {
                let first = Array(zip(table.featureNames, train.featureNames)).firstIndex { $0 != $1 } ?? min(table.featureNames.count, train.featureNames.count)
                throw TrainerError("\(path): its \(table.featureNames.count) feature columns differ from the \(train.featureNames.count) of \(data) (first at column \(first + 1))")
            }
            var labels = [UInt8](repeating: 0, count: table.rows)
            for (i, code) in table.labelCodes.enumerated() {
                let text = table.labelTexts[Int(code)]
                guard let k = index[text] else {
                    throw TrainerError("\(path):\(table.lines[i]): label '\(text)' is not a class of the training data \(data)")
                }
                labels[i] = UInt8(k)
            }
            return LabeledData(features: table.features, labels: labels, width: table.featureNames.count, classCount: names.count, classNames: names)
        }
        let test = try labeled(try CSVTable(path: testData, labelColumn: labelColumn), testData)
        let validation = try valData.map { try labeled(try CSVTable(path: $0, labelColumn: labelColumn), $0) }
        return LoadedData(train: try labeled(train, data), test: test, validation: validation, warnings: [])
    }
}

/// The classes in order: numerically when every label is an integer, else by text.
func sortedClasses(_ labels: [String]) -> [String] {
    if labels.allSatisfy({ Int($0) != nil }) { return labels.sorted { Int($0)! < Int($1)! } }
    return labels.sorted()
}
