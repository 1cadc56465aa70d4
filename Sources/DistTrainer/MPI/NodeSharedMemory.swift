// NodeSharedMemory: memory the ranks of one node read from each other directly (MPI-3 shared
// windows), when the whole job is on one node: the weight gradients' reduce-scatter, one copy of the
// parameters for all ranks, and the per-feature sums and maxima of a step.
//
// Through MPI, each rank's 0.96 MB part of Model 2's gradients crosses between the two processes
// as a copy (a single-copy CMA transfer on Open MPI's shared-memory transport) into a receive
// buffer, which is then read again to be added: 96–120 µs with no rank waiting, measured here.
// With the gradients themselves in a shared window, a rank adds the other ranks' values of its
// part where they lie: 22 µs in the same C measurement, 0.04–0.08 against 0.12–0.21 ms per step in
// training. The parameters go further: the ranks keep one copy of them (and in bf16 precision of
// their bf16 copy), which rank 0 allocates and every rank uses; each rank's Adam writes its part
// there, and the allgather is only a fence (the copying allgather from each rank's own copy that
// it replaced took 15–18 µs of a 0.65 ms step). The values are the same floats either way, so the
// bits do not change (tested on every rank count on one node, and in process).
//
// Order, not locks: a rank reads another rank's gradients only inside the reduce-scatter, after a
// fence; the owner writes them only between collectives (the products of the next step come after
// at least one more collective, which no rank completes before every rank has entered it, so after
// every other rank finished reading). The shared parameters are written by Adam, each rank its own
// part, after the reduce-scatter's fence (which no rank passes while another still runs the step's
// products) and before the allgather's fence (which no rank passes before every part is written);
// every other write of them (a learning rate's fresh weights, a resume, the best model) is rank 0's
// alone between two fences (Trainer.rewriteParameters). `fence` orders the memory around the
// barrier. Not here: when it is used (MPICollective).
import CMPI
import CoreSupport
import Foundation

/// An MPI shared window of one slot of `count` Floats per rank of a node, or (`single`) of one
/// slot for all of them, which rank 0 allocates and every rank uses.
final class NodeSharedWindow {
    let count: Int
    /// Whether all ranks use one slot (then every entry of `slots` is the same).
    let single: Bool
    /// Every rank's slot, by rank in the node's communicator.
    let slots: [UnsafeMutablePointer<Float>]
    private let comm: MPI_Comm
    private var window: MPI_Win?

    /// Collective over `comm` (every rank of one node): each rank allocates its slot, or with
    /// `single` rank 0 allocates the one slot.
    init(count: Int, comm: MPI_Comm, size: Int, rank: Int, single: Bool = false) throws {
        self.count = count
        self.single = single
        self.comm = comm
        var base: UnsafeMutableRawPointer? = nil
        var win: MPI_Win? = nil
        let mine = single && rank != 0 ? 0 : count * 4
        try MPICollective.check(MPI_Win_allocate_shared(MPI_Aint(mine), 4, cmpi_info_null(), comm, &base, &win), "MPI_Win_allocate_shared")
        try MPICollective.check(MPI_Win_lock_all(cmpi_mode_nocheck(), win), "MPI_Win_lock_all")
        window = win
        slots = try (0..<size).map { q in
            var bytes: MPI_Aint = 0
            var unit: Int32 = 0
            var slot: UnsafeMutableRawPointer? = nil
            let owner = single ? 0 : q
            try MPICollective.check(MPI_Win_shared_query(win, Int32(owner), &bytes, &unit, &slot), "MPI_Win_shared_query")
            guard let slot, bytes >= count * 4 else { throw TrainerError("MPI_Win_shared_query: rank \(owner)'s slot is \(bytes) bytes, expected \(count * 4)") }
            return slot.bindMemory(to: Float.self, capacity: count)
        }
    }

    /// Every rank has arrived, and each sees what the others wrote before (the window's memory is
    /// synchronised on both sides of the barrier).
    func fence() throws {
        try MPICollective.check(MPI_Win_sync(window), "MPI_Win_sync")
        try MPICollective.check(MPI_Barrier(comm), "MPI_Barrier")
        try MPICollective.check(MPI_Win_sync(window), "MPI_Win_sync")
    }

    /// Releases the window (collective; before MPI_Finalize).
    func free() {
        guard window != nil else { return }
        MPI_Win_unlock_all(window)
        MPI_Win_free(&window)
        window = nil
    }
}

/// The sum-and-max reduction of the ranks of one node in shared memory (a step's per-feature sums
/// and maxima, 2–50 KB each, 7 times a step with SyncBatchNorm): each rank writes its values into
/// its slot, and after a fence every rank reads every slot and combines them in rank order, so all
/// ranks get the same values. That is one write and one read of each rank's values, against MPI's
/// packing into pairs, eager copies through the transport's buffers and unpacking.
///
/// A slot has two halves, used by turns: a rank that has finished reading call k and writes call
/// k + 1 cannot disturb a slower rank still reading call k, and it writes the half of call k again
/// only in call k + 2, after the fence of k + 1, which every rank passes only after reading call k.
final class NodeSharedReduction {
    /// Doubles per half of a slot.
    let capacity: Int
    private let window: NodeSharedWindow
    private let (rank, size): (Int, Int)
    /// Every rank's slot as Doubles (its first half), by rank.
    private let slots: [UnsafeMutablePointer<Double>]
    private var half = 0

    /// Collective over `comm` (every rank of one node).
    init(capacity: Int, comm: MPI_Comm, size: Int, rank: Int) throws {
        self.capacity = capacity
        (self.rank, self.size) = (rank, size)
        // Two halves of `capacity` Doubles, in Floats.
        window = try NodeSharedWindow(count: 4 * capacity, comm: comm, size: size, rank: rank)
        slots = window.slots.map { UnsafeMutableRawPointer($0).bindMemory(to: Double.self, capacity: 2 * capacity) }
    }

    /// Replaces `sums` by their sums and `maxima` by their maxima over the node's ranks.
    func sumAndMax(sums: UnsafeMutableBufferPointer<Double>, maxima: UnsafeMutableBufferPointer<Double>) throws {
        let (n, m) = (sums.count, maxima.count)
        precondition(n + m <= capacity)
        half ^= 1
        let offset = half * capacity
        let mine = slots[rank] + offset
        if n > 0 { mine.update(from: sums.baseAddress!, count: n) }
        if m > 0 { (mine + n).update(from: maxima.baseAddress!, count: m) }
        try window.fence()
        // Rank 0's values, then each other rank's added (or compared) in rank order.
        let first = UnsafePointer(slots[0] + offset)
        if n > 0 { sums.baseAddress!.update(from: first, count: n) }
        if m > 0 { maxima.baseAddress!.update(from: first + n, count: m) }
        for q in 1..<size {
            let theirs = UnsafePointer(slots[q] + offset)
            for i in 0..<n { sums[i] += theirs[i] }
            for i in 0..<m where theirs[n + i] > maxima[i] { maxima[i] = theirs[n + i] }
        }
    }

    /// Releases the window (collective; before MPI_Finalize).
    func free() { window.free() }
}
