// InputTransform: what turns a data file's raw values into the network's inputs — x' = (x − shift)
// · scale for every column — so that a checkpoint can apply it to new data (evaluate, predict, the
// ONNX export) exactly as training did.
//
// Bytes (images) are scaled by 1/255 (shift 0); Float features are standardised with the training
// split's mean and standard deviation (`--normalize standard`, the default for them) or left as
// they are (`none`). The statistics are computed once, in Double, from the training split only
// (never from validation or test data), on every rank alike. Not here: reading files (Datasets).

/// How real-valued features are scaled before training (bytes are always scaled by 1/255).
public enum FeatureNormalization: String, Codable, CaseIterable, Sendable {
    /// Each column minus its training-split mean, over its standard deviation.
    case standard
    /// As they are in the file (`none` on the command line and in files).
    case unscaled = "none"
}

/// x' = (x − shift[j]) · scale[j] for every column j.
public struct InputTransform: Codable, Equatable, Sendable {
    public var shift: [Float]
    public var scale: [Float]

    public init(shift: [Float], scale: [Float]) {
        precondition(shift.count == scale.count)
        self.shift = shift
        self.scale = scale
    }

    /// The columns it transforms (the network's input width).
    public var width: Int { shift.count }

    /// Bytes to [0, 1]: the scaling `Network.gather` applies to byte samples (the same Float
    /// product, so applying this to bytes read as Floats gives the same inputs bit for bit).
    public static func bytes(width: Int) -> InputTransform {
        InputTransform(shift: [Float](repeating: 0, count: width), scale: [Float](repeating: 1.0 / 255.0, count: width))
    }

    /// No change.
    public static func identity(width: Int) -> InputTransform {
        InputTransform(shift: [Float](repeating: 0, count: width), scale: [Float](repeating: 1, count: width))
    }

    /// The standardisation of `data`'s Float columns: mean and 1 / standard deviation (population,
    /// in Double); a constant column keeps scale 1 (it becomes zeros).
    public static func standardizing(_ data: LabeledData) -> InputTransform {
        let (n, w) = (data.count, data.width)
        var sum = [Double](repeating: 0, count: w), squares = [Double](repeating: 0, count: w)
        data.features.withUnsafeBufferPointer { f in
            for i in 0..<n {
                for j in 0..<w {
                    let v = Double(f[i * w + j])
                    sum[j] += v
                    squares[j] += v * v
                }
            }
        }
        var shift = [Float](repeating: 0, count: w), scale = [Float](repeating: 1, count: w)
        for j in 0..<w where n > 0 {
            let mean = sum[j] / Double(n)
            let std = (max(squares[j] / Double(n) - mean * mean, 0)).squareRoot()
            shift[j] = Float(mean)
            scale[j] = std > 0 ? Float(1 / std) : 1
        }
        return InputTransform(shift: shift, scale: scale)
    }

    /// Applies the transform in place to `count × width` Floats.
    public func apply(to values: inout [Float]) {
        let w = width
        guard w > 0 else { return }
        values.withUnsafeMutableBufferPointer { v in
            for i in 0..<(v.count / w) {
                for j in 0..<w { v[i * w + j] = (v[i * w + j] - shift[j]) * scale[j] }
            }
        }
    }

    /// The transform a data set of this encoding trains with: bytes → 1/255; Floats → the training
    /// split's standardisation or none.
    public static func forTraining(_ train: LabeledData, normalization: FeatureNormalization) -> InputTransform {
        switch (train.encoding, normalization) {
        case (.bytes, _): return .bytes(width: train.width)
        case (.floats, .standard): return .standardizing(train)
        case (.floats, .unscaled): return .identity(width: train.width)
        }
    }
}
