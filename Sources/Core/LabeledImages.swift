// LabeledImages: a set of images with class labels, kept as bytes.
//
// Images stay UInt8 in memory (47 MB for Fashion-MNIST's train set instead of 188 MB as Float);
// a minibatch is converted to Float (scaled by 1/255) only when it is gathered. This type is storage
// only: loading lives in Dataset.swift, batching in Batching.swift.

/// Images as row-major bytes (`count × width`) with one label per image.
public struct LabeledImages: Sendable {
    /// `count × width` pixel bytes, image after image.
    public var pixels: [UInt8]
    /// One class index per image.
    public var labels: [UInt8]
    /// Image height and width in pixels (`width == rows * cols`).
    public var rows: Int
    public var cols: Int

    public init(pixels: [UInt8], labels: [UInt8], rows: Int, cols: Int) {
        precondition(pixels.count == labels.count * rows * cols, "pixel count must be labels × rows × cols")
        self.pixels = pixels
        self.labels = labels
        self.rows = rows
        self.cols = cols
    }

    /// Number of images.
    public var count: Int { labels.count }
    /// Pixels per image: the network's input width.
    public var width: Int { rows * cols }

    /// The images at `indices`, in that order (used for the train/validation split).
    public func subset(_ indices: some Collection<Int>) -> LabeledImages {
        var px = [UInt8]()
        px.reserveCapacity(indices.count * width)
        var lb = [UInt8]()
        lb.reserveCapacity(indices.count)
        pixels.withUnsafeBufferPointer { src in
            for i in indices {
                px.append(contentsOf: src[(i * width)..<((i + 1) * width)])
                lb.append(labels[i])
            }
        }
        return LabeledImages(pixels: px, labels: lb, rows: rows, cols: cols)
    }
}
