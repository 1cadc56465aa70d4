// ExactStepBuffers: what a Network keeps so that a training step's sums are exact (ExactSum.swift) —
// each sum's bound (the previous step's global maximum: part of the training state, saved in
// checkpoints), the grids made from the bounds, the maxima that travel with the reductions, and the
// scratch of the weight-gradient operands. Allocated once with the network; storage only.
import Kernels

final class ExactStepBuffers {
    /// Where block l's bounds start in `bounds`: [a | dy | dy·x̂ | Dense bias gradient] × width.
    let blockBounds: [Int]
    /// Where the loss's bound is in `bounds` (the last entry).
    let lossBound: Int
    /// The bounds, as Floats rounded toward zero (only their binary exponents matter).
    let bounds: Buffer<Float>
    /// Block l's forward grids: Σa's scales then Σa²'s (2w), their limits (2w), the maxima of |a| (w).
    let forwardScale: [Buffer<Double>], forwardLimit: [Buffer<Double>], forwardMaxima: [Buffer<Double>]
    /// Block l's backward grids: Σdy's then Σdy·x̂'s scales and limits (2w), and their maxima (2w).
    let backwardScale: [Buffer<Double>], backwardLimit: [Buffer<Double>], backwardMaxima: [Buffer<Double>]
    /// Hidden dense layer l's bias-gradient grid: scales and limits (w).
    let biasScale: [Buffer<Double>], biasLimit: [Buffer<Double>]
    /// The head bias gradient's scales (its terms are bounded by 1 / global batch a priori).
    let headScale: Buffer<Double>
    var lossScale = 1.0, lossLimit = 0.0
    /// The maxima reduced with the exact sums at the end of the local pass: dense layer l's input
    /// columns at `inputMaxima[l]`, its output gradient's columns at `outputMaxima[l]`, the loss last.
    let finalMaxima: Buffer<Double>
    let inputMaxima: [Int], outputMaxima: [Int], lossMaximum: Int
    /// Each row's training loss of the step.
    let rowLosses: Buffer<Double>
    /// This rank's exact sums before their reduction, kept for a redo.
    let localSums: Buffer<Double>
    /// Maxima a redo computes and discards, and the scales of `roundColumns`.
    let discardedMaxima: Buffer<Double>, roundScratch: Buffer<Float>
    /// The bounds a block's grids are made from (2 × the widest layer).
    let gridBounds: Buffer<Double>
    /// A block of partial sums per compute thread (at most 64) for the BatchNorm passes that split
    /// their rows among the threads (`SumGrids.partials`): 4 × the widest block each; none with one
    /// thread (a rank under mpirun).
    let partials: Buffer<Double>

    init(architecture arch: Architecture, layout: ParameterLayout, exactCount: Int, capacity: Int) {
        var offset = 0
        blockBounds = arch.hidden.map { w in defer { offset += 4 * w }; return offset }
        lossBound = offset
        bounds = Buffer(count: offset + 1)
        func perBlock(_ factor: Int) -> [Buffer<Double>] { arch.hidden.map { Buffer(count: factor * $0) } }
        (forwardScale, forwardLimit, forwardMaxima) = (perBlock(2), perBlock(2), perBlock(1))
        (backwardScale, backwardLimit, backwardMaxima) = (perBlock(2), perBlock(2), perBlock(2))
        (biasScale, biasLimit) = (perBlock(1), perBlock(1))
        headScale = Buffer(count: arch.classCount)
        var m = 0
        inputMaxima = layout.allDense.map { slot in defer { m += slot.fanIn }; return m }
        outputMaxima = layout.allDense.map { slot in defer { m += slot.fanOut }; return m }
        lossMaximum = m
        finalMaxima = Buffer(count: m + 1)
        rowLosses = Buffer(count: capacity)
        localSums = Buffer(count: exactCount)
        let widest = ([arch.inputWidth, arch.classCount] + arch.hidden).max()!
        discardedMaxima = Buffer(count: 2 * widest)
        roundScratch = Buffer(count: 2 * widest)
        gridBounds = Buffer(count: 2 * widest)
        let threads = computeThreads()
        partials = Buffer(count: threads > 1 ? min(threads, 64) * 4 * (arch.hidden.max() ?? 0) : 0)
    }

    /// Grids of `scale` whose maxima go to `maxima`, with this step's partial blocks.
    func grids(scale: UnsafePointer<Double>, maxima: UnsafeMutablePointer<Double>) -> SumGrids {
        SumGrids(scale: scale, maxima: maxima, partials: partials.count > 0 ? partials.pointer : nil, partialCapacity: partials.count)
    }
}
