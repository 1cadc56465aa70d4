// CommunicationTiming: how long a Collective has spent in its operations, for the comm share the
// epoch line and metrics report. Implemented by the MPI collective; the single-process one has none.

extension Collective {
    /// Seconds spent inside collectives so far (0 when not measured).
    public var communicationSeconds: Double { (self as? CommunicationTiming)?.secondsInCollectives ?? 0 }
}

/// A collective that measures the time spent in its operations.
public protocol CommunicationTiming {
    var secondsInCollectives: Double { get }
}
