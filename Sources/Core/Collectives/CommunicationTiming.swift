// CommunicationTiming: how long a Collective has spent in its operations, for the comm share the
// epoch line and metrics report. Implemented by the MPI collective; the single-process one has none.

extension Collective {
    /// Seconds spent inside collectives so far (0 when not measured).
    public var communicationSeconds: Double { (self as? CommunicationTiming)?.secondsInCollectives ?? 0 }
    /// Calls and seconds per kind of operation so far (empty when not measured).
    public var operationTotals: [String: OperationTotal] { (self as? CommunicationTiming)?.operationTotals ?? [:] }
}

/// A collective that measures the time spent in its operations.
public protocol CommunicationTiming {
    var secondsInCollectives: Double { get }
    /// Calls and seconds so far per kind of operation (e.g. "MPI_Allreduce (Double)").
    var operationTotals: [String: OperationTotal] { get }
}

/// How often one kind of collective ran and how long it took in all (this rank's view: transfers
/// and waiting for the other ranks).
public struct OperationTotal: Codable, Equatable, Sendable {
    public var calls: Int
    public var seconds: Double
    public init(calls: Int = 0, seconds: Double = 0) {
        self.calls = calls
        self.seconds = seconds
    }
}
