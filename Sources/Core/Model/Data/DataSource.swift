// DataSource: where a run's data is and how to read it (the flags --data, --test-data, --val-data,
// --label-column, --class-names), as a plain value: recorded in checkpoints so that evaluate, predict
// and a resume find the same data by default. Reading the files is Datasets' (DataSource+loading).

public struct DataSource: Codable, Equatable, Sendable {
    /// A directory of IDX files, a .npz, or the training .csv.
    public var data: String
    /// The test .csv (required with a training .csv; IDX and .npz hold their test set).
    public var testData: String?
    /// A separate validation set (a .csv, or a .npz with `x_val`/`y_val` or `x_test`…); nil: split off.
    public var valData: String?
    /// The CSV column that holds the label.
    public var labelColumn: String
    /// A text file of class names, one per line in label order (overrides the data's).
    public var classNames: String?

    public init(data: String, testData: String? = nil, valData: String? = nil, labelColumn: String = "label", classNames: String? = nil) {
        self.data = data
        self.testData = testData
        self.valData = valData
        self.labelColumn = labelColumn
        self.classNames = classNames
    }
}
