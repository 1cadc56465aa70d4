// CollectiveOperation: the MPI operations the collective performs, by name — for the watchdog's
// message, for timing, and for the message tag of the hand-written ring.

/// One kind of collective operation (stored as its raw value in the watchdog's atomics).
enum CollectiveOperation: Int, CaseIterable, Sendable {
    case none = 0
    case allreduceFloat, allreduceDouble, allreduceMinMax, broadcastBuffer, broadcastBytes, barrier
    case reduceScatterRing, allgather, compressedAllreduceRing, allreduceSumAndMax
    /// The reduce-scatter of the weight gradients and the allgather of the parameters in memory the
    /// ranks of one node share, the allocation of that memory, and a fence of it (the allgather
    /// of parameters the ranks keep in one copy is only that).
    case reduceScatterShared, allgatherShared, sharedWindow, sharedFence
    /// The fence between the ranks' writing of the weight-gradient operands they share and the
    /// products that read every rank's rows (in place of the reduce-scatter).
    case operandFence
    /// The sum-and-max reduction in memory the ranks of one node share.
    case sumAndMaxShared
    /// MPI_Init_thread and the collectives of MPICollective.init.
    case startup

    /// How the operation is named in messages.
    var name: String {
        switch self {
        case .none: return "no operation"
        case .allreduceFloat: return "MPI_Allreduce (Float)"
        case .allreduceDouble: return "MPI_Allreduce (Double)"
        case .allreduceMinMax: return "MPI_Allreduce (min/max)"
        case .broadcastBuffer: return "MPI_Bcast (buffer)"
        case .broadcastBytes: return "MPI_Bcast (bytes)"
        case .barrier: return "MPI_Barrier"
        case .reduceScatterRing: return "reduce-scatter (MPI_Sendrecv ring)"
        case .allgather: return "MPI_Allgatherv"
        case .compressedAllreduceRing: return "16-bit allreduce (MPI_Sendrecv ring)"
        case .allreduceSumAndMax: return "MPI_Allreduce (sums and maxima)"
        case .reduceScatterShared: return "reduce-scatter (shared memory)"
        case .allgatherShared: return "allgather (shared memory)"
        case .sharedWindow: return "MPI_Win_allocate_shared"
        case .sharedFence: return "shared-memory fence (MPI_Win_sync, MPI_Barrier)"
        case .operandFence: return "weight-gradient operands fence (shared memory)"
        case .sumAndMaxShared: return "sums and maxima (shared memory)"
        case .startup: return "MPI start-up"
        }
    }

    /// The tag of the ring's point-to-point messages (distinct per operation, so a stray message of
    /// one kind can never be matched by another).
    var tag: Int32 { Int32(rawValue) }
}
