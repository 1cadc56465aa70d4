// BestModel: the best model of a sweep so far (by validation macro-F1) with the epoch that made it.
//
// A copy of the parameters and running statistics, so training can go on changing the live network;
// written to best.safetensors and inside last.safetensors.
import Model

/// The best model so far: where it was found and a copy of its state.
public struct BestModel: Sendable {
    public var record: EpochRecord
    public var state: ModelState

    public init(record: EpochRecord, state: ModelState) {
        self.record = record
        self.state = state
    }
}
