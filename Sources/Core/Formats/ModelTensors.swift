// ModelTensors: the one table of a model's named tensors in checkpoints, and the conversion between
// the flat parameter and running-statistics buffers and that table.
//
// Names are stable and readable: layers.{i}.dense.weight [fan_in × fan_out] (the seed's layout,
// y = x·W + b), layers.{i}.dense.bias, layers.{i}.bn.{weight,bias,running_mean,running_var},
// head.weight, head.bias. Writing and reading both walk this table, so they cannot disagree.
import CoreSupport
import Model

/// Where one named tensor of a model lives in the flat buffers.
public struct ModelTensorEntry: Equatable, Sendable {
    /// Which flat buffer holds the tensor.
    public enum Source: Equatable, Sendable { case parameters, runningStats }
    public var name: String
    public var shape: [Int]
    public var source: Source
    /// Offset of the first element in its buffer.
    public var offset: Int

    public var count: Int { shape.reduce(1, *) }
}

/// Every tensor of a model with architecture `arch`, in checkpoint order.
public func modelTensorTable(_ arch: Architecture) -> [ModelTensorEntry] {
    let layout = ParameterLayout(arch), stats = RunningStatsLayout(arch)
    var table: [ModelTensorEntry] = []
    func add(_ name: String, _ shape: [Int], _ source: ModelTensorEntry.Source, _ offset: Int) {
        table.append(ModelTensorEntry(name: name, shape: shape, source: source, offset: offset))
    }
    for l in 0..<arch.blockCount {
        let d = layout.dense[l], n = layout.norm[l]
        add("layers.\(l).dense.weight", [d.fanIn, d.fanOut], .parameters, d.weight)
        add("layers.\(l).dense.bias", [d.fanOut], .parameters, d.bias)
        add("layers.\(l).bn.weight", [n.width], .parameters, n.scale)
        add("layers.\(l).bn.bias", [n.width], .parameters, n.shift)
        add("layers.\(l).bn.running_mean", [n.width], .runningStats, stats.mean[l])
        add("layers.\(l).bn.running_var", [n.width], .runningStats, stats.variance[l])
    }
    let h = layout.head
    add("head.weight", [h.fanIn, h.fanOut], .parameters, h.weight)
    add("head.bias", [h.fanOut], .parameters, h.bias)
    return table
}

extension ModelState {
    /// The named tensors of this state for `arch`, each name prefixed with `prefix`.
    public func tensors(_ arch: Architecture, prefix: String = "") -> [Tensor] {
        tensorSlices(arch, prefix: prefix).map { Tensor(name: $0.name, shape: $0.shape, values: Array($0.values)) }
    }

    /// The same tensors as slices of this state's buffers (nothing copied).
    public func tensorSlices(_ arch: Architecture, prefix: String = "") -> [TensorSlice] {
        modelTensorTable(arch).map { e in
            let source = e.source == .parameters ? parameters : runningStats
            return TensorSlice(name: prefix + e.name, shape: e.shape, values: source[e.offset..<(e.offset + e.count)])
        }
    }

    /// Reads the tensors named `prefix + name` of `file` (called `path` in errors) for `arch`, each
    /// checked for its shape, and checks the running statistics are usable (finite mean, variance ≥ 0).
    public init(_ file: SafetensorsFile, arch: Architecture, path: String, prefix: String = "") throws {
        var parameters = [Float](repeating: 0, count: ParameterLayout(arch).count)
        var running = [Float](repeating: 0, count: RunningStatsLayout(arch).count)
        for e in modelTensorTable(arch) {
            let t = try file.tensor(prefix + e.name, shape: e.shape, file: path)
            switch e.source {
            case .parameters: parameters.replaceSubrange(e.offset..<(e.offset + e.count), with: t.values)
            case .runningStats: running.replaceSubrange(e.offset..<(e.offset + e.count), with: t.values)
            }
        }
        let stats = RunningStatsLayout(arch)
        for (l, w) in arch.hidden.enumerated() {
            for j in 0..<w where !(running[stats.variance[l] + j] >= 0) || !running[stats.mean[l] + j].isFinite {
                throw TrainerError("\(path): \(prefix)layers.\(l).bn running statistics at unit \(j) are invalid (variance must be finite and ≥ 0)")
            }
        }
        self.init(parameters: parameters, runningStats: running)
    }
}
