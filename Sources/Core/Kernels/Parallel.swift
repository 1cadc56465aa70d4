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
// same arithmetic whichever thread owns it. Under mpirun with one thread per rank (the default)
// nothing here runs: the pass is called directly. This is not a task system: one flat loop per call.
import CDNNL

/// A pass smaller than this many element operations runs on the calling thread: waking the team
/// costs about a microsecond when its threads spin, more when they sleep. (Tests set it to 0 to
/// split every pass of a small model; nothing else changes it.)
nonisolated(unsafe) public var parallelWorkThreshold = 16_384

/// Runs `body` over `0..<count` split into contiguous parts, one per thread of the products' team,
/// each part a multiple of `grain` elements (except the last): `grain` keeps a part's start aligned
/// to whole vectors and cache lines. `work` is the pass's element operations: below
/// `parallelWorkThreshold`, or with one compute thread, `body(0..<count)` runs on the caller.
/// Parts never overlap, so `body` may write its part's elements without synchronisation.
@inline(__always)
public func parallelFor(_ count: Int, grain: Int = 16, work: Int, _ body: (Range<Int>) -> Void) {
    if count <= grain || work < parallelWorkThreshold || omp_get_max_threads() <= 1 || omp_in_parallel() != 0 {
        body(0..<count)
        return
    }
    withoutActuallyEscaping(body) { escapable in
        var job = ParallelJob(count: count, grain: grain, body: escapable)
        withUnsafeMutablePointer(to: &job) { GOMP_parallel(runParallelPart, $0, 0, 0) }
    }
}

/// `parallelFor` over the columns of a [rows × width] pass that sums each column (its rows in order,
/// by one thread). Such splits pay only on larger passes: at Model 2's largest (128 rows × 512
/// columns) they measured slower than one thread (2 threads, Zen 4: BatchNorm backward 0.16 vs 0.12
/// ms per step), while splits by rows already paid there; so columns are split from
/// `columnSplitFactor` times the threshold.
@inline(__always)
public func parallelForColumns(_ width: Int, rows: Int, _ body: (Range<Int>) -> Void) {
    parallelFor(width, work: rows * width / columnSplitFactor, body)
}

/// How many times more work a column split needs than a row split (see `parallelForColumns`).
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
    let body: (Range<Int>) -> Void
}

/// The function every thread of the team runs: its own part of the job.
private let runParallelPart: @convention(c) (UnsafeMutableRawPointer?) -> Void = { raw in
    let job = raw!.assumingMemoryBound(to: ParallelJob.self)
    let part = parallelPart(job.pointee.count, grain: job.pointee.grain,
                            thread: Int(omp_get_thread_num()), threads: Int(omp_get_num_threads()))
    if !part.isEmpty { job.pointee.body(part) }
}
