// Parallel: the passes between the matrix products run on the products' own threads.
//
// oneDNN computes the products on an OpenMP team (libgomp). Between two products the rest of a
// step (BatchNorm, dropout, the exact sums' maxima and rounding, Adam, the batch gather) used to
// run on the calling thread alone, while the team's other threads spun in OpenMP's wait loop: in a
// process with 2 threads, a third of the step ran at one core's speed. `parallelFor` hands such a
// pass to the same team (libgomp's GOMP_parallel, what `#pragma omp parallel` compiles to), so no
// second pool of threads competes with OpenMP's for the cores.
//
// Thread counts never change results: a pass is split into contiguous parts of whole `grain`s and
// every element (or, for a column sum, every column, whose rows stay in order) is computed by the
// same arithmetic whichever thread owns it; exact sums may instead give each thread a block of rows
// and add the blocks afterwards (BatchNorm's SumGrids.partials). Under mpirun with one thread per rank (the default)
// nothing here runs: the pass is called directly. This is not a task system: one flat loop per call.
import CDNNL

/// The work (element operations) that earns a pass one more thread: a pass gets ⌊work / this⌋
/// threads, at most the compute threads, and below twice this it runs on the calling thread. Waking
/// a thread costs about a microsecond when it spins, more when it sleeps; parts of 2 048 elements
/// (a quarter of this) made a whole step 1.6× slower on 2 threads here, parts of 8 192 and 32 768
/// measured alike. On a many-core node a pass of Model 2's size (65 536) thus uses 8 threads, not
/// all of them. (Tests set it to 0 to split every pass of a small model over every thread;
/// nothing else changes it.)
nonisolated(unsafe) public var parallelWorkPerThread = 8_192

/// The threads a pass of `work` element operations is split among (1: the caller runs it).
@inline(__always)
public func parallelThreads(work: Int) -> Int {
    let team = Int(omp_get_max_threads())
    guard team > 1, omp_in_parallel() == 0 else { return 1 }
    return parallelWorkPerThread <= 0 ? team : min(team, work / parallelWorkPerThread)
}

/// Runs `body` over `0..<count` split into contiguous parts, one per thread of the products' team
/// (as many threads as `work`, the pass's element operations, earns: `parallelThreads`), each part
/// a multiple of `grain` elements (except the last): `grain` keeps a part's start aligned to whole
/// vectors and cache lines. With one thread, `body(0..<count)` runs on the caller. Parts never
/// overlap, so `body` may write its part's elements without synchronisation.
@inline(__always)
public func parallelFor(_ count: Int, grain: Int = 16, work: Int, _ body: (Range<Int>) -> Void) {
    let threads = count <= grain ? 1 : parallelThreads(work: work)
    if threads <= 1 {
        body(0..<count)
        return
    }
    parallelParts(count, grain: grain, threads: threads) { part, _ in body(part) }
}

/// Runs `body(part, t)` on `threads` threads of the products' team, thread t taking
/// `parallelPart(count, grain, t, threads)` (empty parts are skipped): for passes that keep a
/// scratch block per part. With one thread, `body(0..<count, 0)` runs on the caller.
@inline(__always)
public func parallelParts(_ count: Int, grain: Int, threads: Int, _ body: (Range<Int>, Int) -> Void) {
    guard threads > 1 else { return body(0..<count, 0) }
    withoutActuallyEscaping(body) { escapable in
        var job = ParallelJob(count: count, grain: grain, body: escapable)
        withUnsafeMutablePointer(to: &job) { GOMP_parallel(runParallelPart, $0, UInt32(threads), 0) }
    }
}

/// `parallelFor` over the columns of a [rows × width] pass that sums each column (its rows in order,
/// by one thread). Such splits pay only on larger passes: at Model 2's largest (128 rows × 512
/// columns) they measured slower than one thread (2 threads, Zen 4: BatchNorm backward 0.16 vs 0.12
/// ms per step), while splits by rows already paid there; so a column split needs
/// `columnSplitFactor` times the work per thread.
@inline(__always)
public func parallelForColumns(_ width: Int, rows: Int, _ body: (Range<Int>) -> Void) {
    parallelFor(width, work: rows * width / columnSplitFactor, body)
}

/// How many times more work per thread a column split needs than a row split (`parallelForColumns`).
public let columnSplitFactor = 8

/// The part of `0..<count` that thread `thread` of `threads` takes: ⌈count / threads⌉ rounded up
/// to whole grains, the last part shorter, trailing threads possibly none.
@inline(__always)
public func parallelPart(_ count: Int, grain: Int, thread: Int, threads: Int) -> Range<Int> {
    let per = ((count + threads - 1) / threads + grain - 1) / grain * grain
    let start = min(count, thread * per)
    return start..<min(count, start + per)
}

/// What a parallel region's threads read: the loop and its body.
private struct ParallelJob {
    let count: Int
    let grain: Int
    let body: (Range<Int>, Int) -> Void
}

/// The function every thread of the team runs: its own part of the job.
private let runParallelPart: @convention(c) (UnsafeMutableRawPointer?) -> Void = { raw in
    let job = raw!.assumingMemoryBound(to: ParallelJob.self)
    let thread = Int(omp_get_thread_num())
    let part = parallelPart(job.pointee.count, grain: job.pointee.grain, thread: thread, threads: Int(omp_get_num_threads()))
    if !part.isEmpty { job.pointee.body(part, thread) }
}

// MARK: Blocks in the nearest cache

/// The block size (elements) of a pass that makes two passes over each block while it is still in
/// the nearest cache: Adam's update then the weights' bf16 copy (Adam.swift), and MemoryFloor's
/// stream of the same bytes.
public let nearestCacheBlock = 2048

/// Calls `body` on consecutive blocks of `range`, each at most `size` long.
@inlinable @inline(__always)
public func forEachBlock(of range: Range<Int>, size: Int = nearestCacheBlock, _ body: (Range<Int>) -> Void) {
    var start = range.lowerBound
    while start < range.upperBound {
        let block = start..<min(start + size, range.upperBound)
        body(block)
        start = block.upperBound
    }
}
