// LabeledData: a data set's samples with class labels — images kept as bytes, or real-valued
// features kept as Floats — with the names of its classes.
//
// Bytes stay UInt8 in memory (47 MB for Fashion-MNIST's train set instead of 188 MB as Float) and
// are converted to Float, scaled by 1/255, only when a minibatch is gathered; Float features are
// standardised in place once (InputTransform) and gathered as they are. This type is storage only:
// loading lives in Datasets, the train/validation split in DataSplit.swift, gathering a batch in
// Network.gather.

/// How a data set's values are stored.
public enum SampleEncoding: String, Codable, Sendable {
    /// One byte per value (images; 0–255), scaled by 1/255 when gathered.
    case bytes
    /// One Float per value (tabular features), used as stored (standardised when loaded).
    case floats
}

/// Samples as row-major values (`count × width`) with one label per sample.
public struct LabeledData: Sendable {
    public var encoding: SampleEncoding
    /// `count × width` bytes (encoding `bytes`), sample after sample; empty otherwise.
    public var pixels: [UInt8]
    /// `count × width` Floats (encoding `floats`), sample after sample; empty otherwise.
    public var features: [Float]
    /// One class index per sample.
    public var labels: [UInt8]
    /// Image height and width in pixels (`width == rows * cols`); a row of features is 1 × width.
    public var rows: Int
    public var cols: Int
    /// Number of classes of the data set (labels are `0..<classCount`); the network's head has one
    /// output per class. A property of the data set, not of this sample of it (a split may lack a class).
    public var classCount: Int
    /// Each class's name, by label (the data's own: a CSV's label strings, a class-names file;
    /// "0", "1", … when the data has only numbers).
    public var classNames: [String]

    /// Images (or any byte-valued samples) of `rows × cols`.
    public init(pixels: [UInt8], labels: [UInt8], rows: Int, cols: Int, classCount: Int, classNames: [String]? = nil) {
        precondition(pixels.count == labels.count * rows * cols, "pixel count must be labels × rows × cols")
        encoding = .bytes
        self.pixels = pixels
        features = []
        self.labels = labels
        self.rows = rows
        self.cols = cols
        self.classCount = classCount
        self.classNames = classNames ?? (0..<classCount).map(String.init)
    }

    /// Real-valued samples of `width` features each.
    public init(features: [Float], labels: [UInt8], width: Int, classCount: Int, classNames: [String]? = nil) {
        precondition(features.count == labels.count * width, "feature count must be labels × width")
        encoding = .floats
        pixels = []
        self.features = features
        self.labels = labels
        rows = 1
        cols = width
        self.classCount = classCount
        self.classNames = classNames ?? (0..<classCount).map(String.init)
    }

    /// Number of samples.
    public var count: Int { labels.count }
    /// Values per sample: the network's input width.
    public var width: Int { rows * cols }
    /// Whether the samples are images a shift or flip can augment (byte-valued, more than one row).
    public var isImage: Bool { encoding == .bytes && rows > 1 }

    /// The same kind of data set (encoding, shape, classes) with no samples: what a split leaves in
    /// the place of the data it took over.
    public func emptied() -> LabeledData {
        var e = self
        (e.pixels, e.features, e.labels) = ([], [], [])
        return e
    }

    /// Rows `range` of this data set (copied).
    public func slice(_ range: Range<Int>) -> LabeledData {
        var s = self
        s.labels = Array(labels[range])
        switch encoding {
        case .bytes: s.pixels = Array(pixels[(range.lowerBound * width)..<(range.upperBound * width)])
        case .floats: s.features = Array(features[(range.lowerBound * width)..<(range.upperBound * width)])
        }
        return s
    }
}
