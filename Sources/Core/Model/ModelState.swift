// ModelState: a model's parameters and BatchNorm running statistics as plain arrays, a copy that
// outlives the network it came from (the best model so far, a checkpoint's model).
//
// Storage only: how the arrays map to named tensors in files is Formats/ModelTensors.swift.

/// A model's state as flat buffers: parameters (ParameterLayout order) and BatchNorm running
/// statistics (RunningStatsLayout order).
public struct ModelState: Equatable, Sendable {
    public var parameters: [Float]
    public var runningStats: [Float]

    public init(parameters: [Float], runningStats: [Float]) {
        self.parameters = parameters
        self.runningStats = runningStats
    }
}
