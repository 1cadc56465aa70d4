// MPICollective: the Collective protocol over Open MPI, plus the job's MPI life cycle.
//
// MPI is initialised once per process (as a singleton of size 1 when the binary is started without
// mpirun), errors are returned rather than aborting (MPI_ERRORS_RETURN) and every return code is
// turned into a TrainerError carrying MPI's own error string. Only the main thread calls MPI
// (oneDNN's OpenMP threads never do), so MPI_THREAD_FUNNELED is all we ask for.
//
// Not here: the training loop (Core/Trainer) and anything about files.
import CMPI
import Collectives
import CoreSupport
import Foundation
import Kernels

/// Open MPI's MPI_COMM_WORLD as a Collective.
final class MPICollective: Collective, CommunicationTiming {
    let rank: Int
    let size: Int
    /// Ranks on this node (from an MPI_COMM_TYPE_SHARED split) and this rank's index among them.
    let localSize: Int
    let localRank: Int
    /// Number of distinct nodes in the job.
    let nodeCount: Int
    /// Each rank's host name (index = rank), for messages that name a rank's machine.
    let hostNames: [String]
    private(set) var secondsInCollectives = 0.0
    /// Calls and seconds per operation (index = CollectiveOperation raw value).
    private var totals = [OperationTotal](repeating: OperationTotal(), count: CollectiveOperation.allCases.count)
    let world: MPI_Comm
    private var finalized = false
    /// Ends the process when a collective (or the start-up) waits too long; nil when disabled.
    private var watchdog: Watchdog?
    /// Receive buffer of the reduce-scatter, sized once to the largest part.
    private var scratch = Buffer<Float>(count: 0)
    /// The sum-and-max reduction: its pair datatype, operation, and buffer of pairs (grown once).
    private var sumMaxPair: MPI_Datatype? = nil, sumMaxOp: MPI_Op? = nil
    private var pairs = Buffer<Double>(count: 0)
    /// The 16-bit ring's outgoing and incoming values, sized once to the gradient buffer.
    private var wire = Buffer<UInt16>(count: 0), incoming = Buffer<UInt16>(count: 0)
    /// The ranks of this node (MPI_COMM_TYPE_SHARED).
    private let node: MPI_Comm?
    /// Whether the reduce-scatter of the weight gradients reads them from memory shared by the
    /// ranks: the whole job on one node, more than one rank, and $DIST_TRAINER_SHARED_MEMORY not 0
    /// (NodeSharedMemory.swift).
    let sharesMemory: Bool
    /// Every rank's weight gradients and parameters, in windows of memory shared by the node
    /// (sharedStorage), by the address of this rank's slot.
    private var windows: [NodeSharedWindow] = []
    /// The sum-and-max reductions in shared memory (the last one in use; one more each time a call
    /// needed more room than it had).
    private var reductions: [NodeSharedReduction] = []

    /// The window whose slot for this rank is exactly `buffer`, if any.
    private func window(of buffer: UnsafeMutableBufferPointer<Float>) -> NodeSharedWindow? {
        windows.first { buffer.baseAddress == $0.slots[rank] && buffer.count == $0.count }
    }

    /// Open MPI's shared-memory transport (vader) sends a message of up to 4 KB eagerly and a
    /// larger one through a rendezvous with a single-copy transfer (CMA). A step's reductions of
    /// per-feature sums and maxima are 2–40 KB for Model 2 (7 of them with SyncBatchNorm), where
    /// the rendezvous took 5–15 µs per allreduce of 2 ranks against 1.2–2.5 µs eager (a C program,
    /// interleaved); transfers of 1 MB measured the same either way. So eager up to 64 KB, set
    /// before MPI_Init reads it, unless the environment (or mpirun's `--mca`) already sets it.
    /// (Open MPI 4's parameter names; other MPIs ignore them.)
    static func tuneSharedMemoryTransport() {
        for name in transportParameters { setenv("OMPI_MCA_" + name, "65536", 0) }
    }

    /// The shared-memory transport's parameters dist-trainer sets (Open MPI's names).
    static let transportParameters = ["btl_vader_eager_limit", "btl_vader_max_send_size"]

    /// Those parameters as MPI itself now holds them (its tool interface), for summary.json: what
    /// was really used, whoever set it. Empty when the MPI has no such parameters.
    var transportSettings: [String: Int] {
        var settings: [String: Int] = [:]
        for name in MPICollective.transportParameters {
            var value: Int64 = 0
            if cmpi_control_variable(name, &value) == 0 { settings[name] = Int(value) }
        }
        return settings
    }

    /// Initialises MPI. Call once, before any other MPI use. With a `timeout` > 0 the watchdog runs
    /// from here on: a start-up that does not complete in time (a host that cannot connect back, a
    /// rank that never arrives) ends the process with a line, as a collective that hangs does.
    init(timeout: Double) throws {
        let watchdog = timeout > 0 ? Watchdog(timeout: timeout, rank: launcherRank()) : nil
        watchdog?.enter(.startup, elements: 0)
        MPICollective.tuneSharedMemoryTransport()
        var provided: Int32 = 0
        try MPICollective.check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
        world = cmpi_comm_world()
        try MPICollective.check(MPI_Comm_set_errhandler(world, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try MPICollective.check(MPI_Comm_rank(world, &r), "MPI_Comm_rank")
        try MPICollective.check(MPI_Comm_size(world, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        var local: MPI_Comm? = nil
        try MPICollective.check(
            MPI_Comm_split_type(world, cmpi_comm_type_shared(), r, cmpi_info_null(), &local), "MPI_Comm_split_type")
        var lr: Int32 = 0, ls: Int32 = 0
        try MPICollective.check(MPI_Comm_rank(local, &lr), "MPI_Comm_rank")
        try MPICollective.check(MPI_Comm_size(local, &ls), "MPI_Comm_size")
        node = local
        localRank = Int(lr)
        localSize = Int(ls)
        // Each node's local rank 0 counts its node once.
        var leaders: [Int32] = [localRank == 0 ? 1 : 0]
        try MPICollective.check(
            MPI_Allreduce(cmpi_in_place(), &leaders, 1, cmpi_int32(), cmpi_op_sum(), world), "MPI_Allreduce")
        nodeCount = Int(leaders[0])
        sharesMemory = nodeCount == 1 && size > 1 && ProcessInfo.processInfo.environment["DIST_TRAINER_SHARED_MEMORY"] != "0"
        hostNames = try MPICollective.gatherHostNames(world, size: size)
        try MPICollective.check(cmpi_make_sum_max(&sumMaxPair, &sumMaxOp), "MPI_Op_create")
        watchdog?.leave()
        // Across hosts, the launcher gets a few seconds to notice a lost host before a rank's exit
        // (see Watchdog.end); on one node nothing can be lost and the exit is immediate.
        watchdog?.identify(rank: rank, host: nodeCount > 1 ? hostNames[rank] : "", grace: nodeCount > 1 ? Watchdog.launcherGrace : 0)
        self.watchdog = watchdog
    }

    /// Every rank's host name, gathered once at start-up (fixed-size slots, cut at 63 bytes).
    private static func gatherHostNames(_ world: MPI_Comm, size: Int) throws -> [String] {
        let width = 64
        var mine = [UInt8](repeating: 0, count: width)
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        for (i, c) in name.prefix(width - 1).enumerated() { mine[i] = UInt8(bitPattern: c) }
        var all = [UInt8](repeating: 0, count: width * size)
        try check(MPI_Allgather(&mine, Int32(width), cmpi_uint8(), &all, Int32(width), cmpi_uint8(), world), "MPI_Allgather")
        return (0..<size).map { r in
            String(decoding: all[(r * width)..<((r + 1) * width)].prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The threads a rank uses for the products unless told otherwise: the user's OMP_NUM_THREADS
    /// when set (oneDNN's OpenMP variable), else the node's cores shared among its ranks, but never
    /// more than the cores this process may run on (mpirun binds each rank to one core when there
    /// are at most two ranks, and more threads than allowed cores would only fight).
    var defaultThreadsPerRank: Int {
        if let value = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"]?.split(separator: ",").first.flatMap({ Int($0) }), value > 0 {
            return value
        }
        return max(1, min(ProcessInfo.processInfo.activeProcessorCount / localSize, allowedCPUCount()))
    }

    func noteProgress(lrIndex: Int, epoch: Int, step: Int) {
        watchdog?.note(lrIndex: lrIndex, epoch: epoch, step: step)
    }

    /// Shuts MPI down; every rank must call it before exiting normally.
    func finalize() {
        guard !finalized else { return }
        finalized = true
        for window in windows { window.free() }
        for reduction in reductions { reduction.free() }
        MPI_Finalize()
    }

    /// Ends the whole job at once with `code` (used when ranks cannot agree on an error, so that
    /// no rank is left waiting in a collective).
    func abort(code: Int32) -> Never {
        MPI_Abort(world, code)
        exit(code)
    }

    // MARK: Collective

    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try timed(.allreduceFloat, buffer.count) { try MPICollective.check(
            MPI_Allreduce(cmpi_in_place(), buffer.baseAddress, Int32(buffer.count), cmpi_float(), cmpi_op_sum(), world),
            "MPI_Allreduce") }
    }

    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try timed(.allreduceDouble, buffer.count) { try MPICollective.check(
            MPI_Allreduce(cmpi_in_place(), buffer.baseAddress, Int32(buffer.count), cmpi_double(), cmpi_op_sum(), world),
            "MPI_Allreduce") }
    }

    /// One MPI_Allreduce of (sum, max) pairs with a user-defined operation: sums and maxima travel
    /// in one message, the shorter list padded with zeros.
    func allreduceSumAndMax(sums: UnsafeMutableBufferPointer<Double>, maxima: UnsafeMutableBufferPointer<Double>) throws {
        let n = max(sums.count, maxima.count)
        guard size > 1, n > 0 else { return }
        if sharesMemory, let node {
            let needed = sums.count + maxima.count
            if (reductions.last?.capacity ?? 0) < needed {
                // Every rank makes the same calls with the same sizes, so every rank grows it here.
                try timed(.sharedWindow, needed) {
                    reductions.append(try NodeSharedReduction(capacity: max(needed, 4096), comm: node, size: size, rank: rank))
                }
            }
            let reduction = reductions[reductions.count - 1]
            return try timed(.sumAndMaxShared, needed) { try reduction.sumAndMax(sums: sums, maxima: maxima) }
        }
        if pairs.count < 2 * n { pairs = Buffer(count: 2 * n) }
        let p = pairs.pointer
        for i in 0..<n {
            p[2 * i] = i < sums.count ? sums[i] : 0
            p[2 * i + 1] = i < maxima.count ? maxima[i] : 0
        }
        try timed(.allreduceSumAndMax, 2 * n) { try MPICollective.check(
            MPI_Allreduce(cmpi_in_place(), p, Int32(n), sumMaxPair, sumMaxOp, world), "MPI_Allreduce") }
        for i in 0..<sums.count { sums[i] = p[2 * i] }
        for i in 0..<maxima.count { maxima[i] = p[2 * i + 1] }
    }

    func allreduceMinMax(_ value: Double) throws -> (min: Double, max: Double) {
        // max(v) and max(−v) = −min(v) in one call.
        var pair = [value, -value]
        try timed(.allreduceMinMax, 2) { try MPICollective.check(
            MPI_Allreduce(cmpi_in_place(), &pair, 2, cmpi_double(), cmpi_op_max(), world), "MPI_Allreduce") }
        return (-pair[1], pair[0])
    }

    /// Ring reduce-scatter with point-to-point messages: in N − 1 steps each rank passes one part
    /// on to its right neighbour and adds the part arriving from its left. (Open MPI 4.1's own
    /// MPI_Reduce_scatter takes about twice as long as an allreduce of the whole buffer here, which
    /// would cancel the point of scattering.)
    func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {
        guard size > 1 else { return }
        if let window = window(of: buffer) { return try reduceScatterShared(window, partition: partition) }
        let largest = Int(partition.counts.max() ?? 0)
        if scratch.count < largest { scratch = Buffer(count: largest) }
        let (right, left) = (Int32((rank + 1) % size), Int32((rank + size - 1) % size))
        let tag = CollectiveOperation.reduceScatterRing.tag
        try timed(.reduceScatterRing, buffer.count) {
            for s in 0..<(size - 1) {
                let send = partition.range((rank - s - 1 + 2 * size) % size)
                let receive = partition.range((rank - s - 2 + 2 * size) % size)
                try MPICollective.check(
                    MPI_Sendrecv(buffer.baseAddress! + send.lowerBound, Int32(send.count), cmpi_float(), right, tag,
                                 scratch.pointer, Int32(receive.count), cmpi_float(), left, tag, world, cmpi_status_ignore()),
                    "MPI_Sendrecv")
                let target = buffer.baseAddress! + receive.lowerBound
                let incoming = UnsafePointer(scratch.pointer)
                // With several threads per rank the sum uses them all (memory-bound: 12 bytes per element).
                parallelFor(receive.count, work: receive.count) { part in
                    for i in part { target[i] += incoming[i] }
                }
            }
        }
    }

    /// Memory for `count` Floats of this rank in a window every rank of the node reads (when the job
    /// is on one node), so that `reduceScatterSum` adds, and `allgather` copies, the other ranks'
    /// parts where they lie.
    func sharedStorage(count: Int) throws -> UnsafeMutablePointer<Float>? {
        guard sharesMemory, let node else { return nil }
        // Collective like any other: the watchdog sees a rank that never arrives.
        var window: NodeSharedWindow?
        try timed(.sharedWindow, count) { window = try NodeSharedWindow(count: count, comm: node, size: size, rank: rank) }
        guard let window else { return nil }
        windows.append(window)
        return window.slots[rank]
    }

    /// One copy of `count` Floats for all ranks (the whole job on one node), which rank 0 allocates:
    /// the parameters, which every rank's Adam updates in its own part where every rank reads them,
    /// so that the allgather is only a fence (NodeSharedMemory.swift).
    func sharedCopy(count: Int) throws -> UnsafeMutablePointer<Float>? {
        guard sharesMemory, let node else { return nil }
        var window: NodeSharedWindow?
        try timed(.sharedWindow, count) { window = try NodeSharedWindow(count: count, comm: node, size: size, rank: rank, single: true) }
        guard let window else { return nil }
        windows.append(window)
        return window.slots[rank]
    }

    func synchronizeShared() throws { try fence(counted: .sharedFence) }

    func synchronizeOperands() throws { try fence(counted: .operandFence) }

    /// A fence of the node's shared memory: a barrier with the memory synchronised on both sides
    /// (the job's ranks are the node's whenever memory is shared), timed as `operation`.
    private func fence(counted operation: CollectiveOperation) throws {
        guard let window = windows.first else { return try barrier() }
        try timed(operation, 0) { try window.fence() }
    }

    /// The reduce-scatter in shared memory: after a fence, this rank adds every other rank's values
    /// of its own part, read where they lie, to its own (in rank order; the sums are exact either way).
    private func reduceScatterShared(_ window: NodeSharedWindow, partition: Partition) throws {
        let part = partition.range(rank)
        try timed(.reduceScatterShared, window.count) {
            try window.fence()
            let mine = window.slots[rank] + part.lowerBound
            for q in 0..<size where q != rank {
                let theirs = UnsafePointer(window.slots[q] + part.lowerBound)
                parallelFor(part.count, work: part.count) { range in
                    for i in range { mine[i] += theirs[i] }
                }
            }
        }
    }

    /// Ring allreduce with 16-bit messages: a reduce-scatter whose partial sums are re-rounded to
    /// 16 bits at every hop (the adding is in float32), then an allgather of the 16-bit parts. Every
    /// rank, the part's owner included, ends with the same 16-bit-rounded sums.
    func allreduceSumCompressed(_ buffer: UnsafeMutableBufferPointer<Float>, format: GradientCompression) throws {
        guard let base = buffer.baseAddress else { return }
        if wire.count < buffer.count { wire = Buffer(count: buffer.count) }
        // One rank rounds once, as SingleProcess does, so a single process trains on gradients of
        // the same precision as a job (the protocol's promise; it returned unrounded sums before).
        guard size > 1 else { return format.round(buffer, scratch: wire.pointer) }
        let partition = Partition(count: buffer.count, parts: size)
        if incoming.count < buffer.count { incoming = Buffer(count: buffer.count) }
        let tag = CollectiveOperation.compressedAllreduceRing.tag
        let (right, left) = (Int32((rank + 1) % size), Int32((rank + size - 1) % size))
        func part(_ k: Int) -> Range<Int> { partition.range((k % size + size) % size) }
        try timed(.compressedAllreduceRing, buffer.count) {
            format.encode(base, count: buffer.count, into: wire.pointer)
            for s in 0..<(size - 1) {
                let (send, receive) = (part(rank - s - 1), part(rank - s - 2))
                try sendReceive(wire.pointer + send.lowerBound, send.count, incoming.pointer, receive.count, right, left, tag)
                format.decodeAdding(incoming.pointer, count: receive.count, into: base + receive.lowerBound)
                format.encode(base + receive.lowerBound, count: receive.count, into: wire.pointer + receive.lowerBound)
            }
            for s in 0..<(size - 1) {
                let (send, receive) = (part(rank - s), part(rank - s - 1))
                try sendReceive(wire.pointer + send.lowerBound, send.count, wire.pointer + receive.lowerBound, receive.count, right, left, tag)
            }
            format.decode(wire.pointer, count: buffer.count, into: base)
        }
    }

    /// One ring hop of 16-bit values: send to `right`, receive from `left`.
    private func sendReceive(_ send: UnsafeMutablePointer<UInt16>, _ sendCount: Int, _ receive: UnsafeMutablePointer<UInt16>, _ receiveCount: Int,
                             _ right: Int32, _ left: Int32, _ tag: Int32) throws {
        try MPICollective.check(
            MPI_Sendrecv(send, Int32(sendCount), cmpi_uint16(), right, tag, receive, Int32(receiveCount), cmpi_uint16(), left, tag,
                         world, cmpi_status_ignore()), "MPI_Sendrecv")
    }

    /// The allgather in shared memory: after a fence (every rank's part is final), this rank copies
    /// every other rank's part from where it lies. The next reduce-scatter's fence keeps an owner
    /// from writing its part again before every rank has copied it.
    private func allgatherShared(_ window: NodeSharedWindow, partition: Partition) throws {
        // One copy for all: every part is already where every rank reads it.
        if window.single { return try timed(.allgatherShared, 0) { try window.fence() } }
        try timed(.allgatherShared, window.count) {
            try window.fence()
            for q in 0..<size where q != rank {
                let part = partition.range(q)
                let (mine, theirs) = (window.slots[rank] + part.lowerBound, UnsafePointer(window.slots[q] + part.lowerBound))
                parallelFor(part.count, work: part.count) { range in
                    (mine + range.lowerBound).update(from: theirs + range.lowerBound, count: range.count)
                }
            }
        }
    }

    func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, partition: Partition) throws {
        guard size > 1 else { return }
        if let window = window(of: buffer) { return try allgatherShared(window, partition: partition) }
        try timed(.allgather, buffer.count) {
            try partition.counts.withUnsafeBufferPointer { counts in
                try partition.offsets.withUnsafeBufferPointer { offsets in
                    try MPICollective.check(
                        MPI_Allgatherv(cmpi_in_place(), 0, cmpi_float(), buffer.baseAddress, counts.baseAddress,
                                       offsets.baseAddress, cmpi_float(), world),
                        "MPI_Allgatherv")
                }
            }
        }
    }

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        // One copy for all holds the root's values already (its writes were one rank's, see sharedCopy).
        if let window = window(of: buffer), window.single { return try synchronizeShared() }
        try timed(.broadcastBuffer, buffer.count) { try MPICollective.check(
            MPI_Bcast(buffer.baseAddress, Int32(buffer.count), cmpi_float(), Int32(root), world), "MPI_Bcast") }
    }

    func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        // The length, then the bytes: one operation in the totals.
        try timed(.broadcastBytes, bytes.count) {
            var length: [Int32] = [Int32(bytes.count)]
            try MPICollective.check(MPI_Bcast(&length, 1, cmpi_int32(), Int32(root), world), "MPI_Bcast")
            if rank != root { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
            if length[0] > 0 { try MPICollective.check(MPI_Bcast(&bytes, length[0], cmpi_uint8(), Int32(root), world), "MPI_Bcast") }
        }
    }

    func barrier() throws {
        try timed(.barrier, 0) { try MPICollective.check(MPI_Barrier(world), "MPI_Barrier") }
    }

    // MARK: Helpers

    /// Runs one MPI call, timing it and letting the watchdog see it.
    private func timed(_ operation: CollectiveOperation, _ elements: Int, _ body: () throws -> Void) rethrows {
        let start = DispatchTime.now().uptimeNanoseconds
        watchdog?.enter(operation, elements: elements)
        defer {
            watchdog?.leave()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            secondsInCollectives += seconds
            totals[operation.rawValue].calls += 1
            totals[operation.rawValue].seconds += seconds
        }
        try body()
    }

    var operationTotals: [String: OperationTotal] {
        Dictionary(uniqueKeysWithValues: CollectiveOperation.allCases.filter { totals[$0.rawValue].calls > 0 }.map { ($0.name, totals[$0.rawValue]) })
    }

    /// Throws a TrainerError with MPI's error string unless `code` is MPI_SUCCESS.
    static func check(_ code: Int32, _ call: String) throws {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw TrainerError("\(call) failed: \(message) (MPI error \(code))", exitCode: ExitStatus.peerLost)
    }
}
