// LabeledImages: a set of images with class labels, kept as bytes.
//
// Images stay UInt8 in memory (47 MB for Fashion-MNIST's train set instead of 188 MB as Float);
// a minibatch is converted to Float (scaled by 1/255) only when it is gathered. This type is storage
// only: loading lives in Datasets (FashionMNIST.swift), the train/validation split in DataSplit.swift, gathering a
// batch in Network.gather.

/// Images as row-major bytes (`count × width`) with one label per image.
public struct LabeledImages: Sendable {
    /// `count × width` pixel bytes, image after image.
    public var pixels: [UInt8]
    /// One class index per image.
    public var labels: [UInt8]
    /// Image height and width in pixels (`width == rows * cols`).
    public var rows: Int
    public var cols: Int
    /// Number of classes of the data set (labels are `0..<classCount`); the network's head has one
    /// output per class. A property of the data set, not of this sample of it (a split may lack a class).
    public var classCount: Int

    public init(pixels: [UInt8], labels: [UInt8], rows: Int, cols: Int, classCount: Int) {
        precondition(pixels.count == labels.count * rows * cols, "pixel count must be labels × rows × cols")
        self.pixels = pixels
        self.labels = labels
        self.rows = rows
        self.cols = cols
        self.classCount = classCount
    }

    /// Number of images.
    public var count: Int { labels.count }
    /// Pixels per image: the network's input width.
    public var width: Int { rows * cols }
}
