// DataFlags: the flags that name a data set (--data and its companions), shared by train, evaluate,
// summarize and predict, and the DataSource they make.
import ArgumentParser
import CoreSupport
import Foundation
import Model

struct DataFlags: ParsableArguments {
    @Option(name: [.customLong("data"), .customLong("data-dir")], help: ArgumentHelp(
        "The data: a directory of IDX files (Fashion-MNIST's four names, any image size and class count), a .npz (x_train, y_train, x_test, y_test), or a training .csv.",
        discussion: "Default for train: Fashion-MNIST from $FASHION_MNIST_DIR, else ./data/fashion-mnist, else /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist); for a resumed run or a checkpoint, the data it was trained on.",
        valueName: "dir|file"))
    var data: String?

    @Option(help: ArgumentHelp("The test set of a training .csv (the same columns).", valueName: "file.csv"))
    var testData: String?

    @Option(help: ArgumentHelp("A validation .csv (the same columns) instead of splitting one off the training data.", valueName: "file.csv"))
    var valData: String?

    @Option(help: ArgumentHelp("The CSV column that holds the label.", valueName: "name"))
    var labelColumn = "label"

    @Option(help: ArgumentHelp("A text file of class names, one per line in label order (default: the data's own: a CSV's label texts, Fashion-MNIST's names, else the label numbers).", valueName: "file"))
    var classNames: String?

    /// The data the flags name; nil when none is named (the default or the recorded data is used).
    func source() throws -> DataSource? {
        guard let data else {
            if let flag = [("--test-data", testData), ("--val-data", valData), ("--class-names", classNames)].first(where: { $0.1 != nil })?.0 {
                throw TrainerError("\(flag): give the training data with --data too", exitCode: ExitStatus.usage)
            }
            return nil
        }
        return DataSource(data: data, testData: testData, valData: valData, labelColumn: labelColumn, classNames: classNames)
    }
}

extension DataSource {
    /// The same source with every path absolute (as recorded in checkpoints, so that it is found from
    /// any working directory).
    func absolute() -> DataSource {
        func full(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }
        var s = self
        s.data = full(data)
        s.testData = testData.map(full)
        s.valData = valData.map(full)
        s.classNames = classNames.map(full)
        return s
    }
}
