// NetworkExactSums: the sums of a `sync` training step made exact (ExactSum.swift), so that a step
// gives the same bits however its rows are split across ranks — BatchNorm's sums at each block,
// the bias gradients and the loss at the end of the local pass — and the weight gradients computed
// after that reduction, from operands rounded to their columns' grids.
//
// Each sum runs on a grid made from its bound (the previous step's global maximum); the maximum of
// this step travels with the reduction, and where it broke the grid's limit the sum is redone on a
// grid made from it (the first step of every run: its bounds are 0). Every decision is taken on
// reduced values, the same on every rank. `local` BatchNorm keeps plain Double sums: its math
// depends on the split by definition.
import Collectives
import Kernels

extension Network {
    // MARK: Block sums

    /// Block `l`'s Σa, Σa² and active counts over the global batch, exact, summed across ranks into
    /// `sums` (as values).
    func reduceForwardSums(_ l: Int, _ ctx: StepContext, collective: Collective) throws {
        let (b, w, x) = (blocks[l], blocks[l].width, exact)
        let bound = x.bounds.pointer + x.blockBounds[l]
        let (scale, limit, maxima) = (x.forwardScale[l].pointer, x.forwardLimit[l].pointer, x.forwardMaxima[l].pointer)
        let squares = x.gridBounds.pointer + w
        func localSums(from bounds: UnsafePointer<Double>, maxima: UnsafeMutablePointer<Double>) {
            sumGrids(bounds: bounds, count: w, rows: ctx.globalBatch, scale: scale, limit: limit)
            // Squares get twice the headroom: a column within its limit has its squares within theirs.
            for j in 0..<w { squares[j] = bounds[j] * bounds[j] }
            sumGrids(bounds: squares, count: w, rows: ctx.globalBatch, headroom: 2 * sumHeadroomBits, scale: scale + w, limit: limit + w)
            maxima.update(repeating: 0, count: w)
            batchNormSums(b.a.pointer, rows: ctx.rows, width: w, into: b.sums.pointer, activeCounts: b.sums.pointer + 2 * w,
                          grids: x.grids(scale: scale, maxima: maxima))
        }
        historyBounds(bound, count: w, into: x.gridBounds.pointer)
        localSums(from: x.gridBounds.pointer, maxima: maxima)
        try collective.allreduceSumAndMax(sums: b.sums.all, maxima: x.forwardMaxima[l].all)
        if !withinLimits(maxima, limit, count: w) {
            sumRedos += 1
            localSums(from: maxima, maxima: x.discardedMaxima.pointer)
            try collective.allreduceSum(b.sums.all)
        }
        for j in 0..<w { bound[j] = boundFloat(maxima[j]) }
        for j in 0..<(2 * w) { b.sums.pointer[j] /= scale[j] }
    }

    /// Block `l`'s Σdy and Σdy·x̂ (dropout applied to dy first, in place), exact, summed across
    /// ranks into `gradSums` (as values).
    func reduceBackwardSums(_ l: Int, _ ctx: StepContext, collective: Collective) throws {
        let (b, w, x) = (blocks[l], blocks[l].width, exact)
        let bound = x.bounds.pointer + x.blockBounds[l] + w  // dy's, then dy·x̂'s
        let (scale, limit, maxima) = (x.backwardScale[l].pointer, x.backwardLimit[l].pointer, x.backwardMaxima[l].pointer)
        var mask = b.mask.map { UnsafePointer($0.pointer) }
        func localSums(from bounds: UnsafePointer<Double>, maxima: UnsafeMutablePointer<Double>) {
            sumGrids(bounds: bounds, count: 2 * w, rows: ctx.globalBatch, scale: scale, limit: limit)
            maxima.update(repeating: 0, count: 2 * w)
            batchNormGradientSums(b.grad.pointer, xhat: b.xhat.pointer, rows: ctx.rows, width: w, into: b.gradSums.pointer,
                                  mask: mask, grids: x.grids(scale: scale, maxima: maxima))
            mask = nil  // applied once, in place
        }
        historyBounds(bound, count: w, into: x.gridBounds.pointer)  // dy's
        historyBounds(bound + w, count: w, into: x.gridBounds.pointer + w)  // dy·x̂'s
        localSums(from: x.gridBounds.pointer, maxima: maxima)
        try collective.allreduceSumAndMax(sums: b.gradSums.all, maxima: x.backwardMaxima[l].all)
        if !withinLimits(maxima, limit, count: 2 * w) {
            sumRedos += 1
            localSums(from: maxima, maxima: x.discardedMaxima.pointer)
            try collective.allreduceSum(b.gradSums.all)
        }
        for j in 0..<(2 * w) {
            bound[j] = boundFloat(maxima[j])
            b.gradSums.pointer[j] /= scale[j]
        }
    }

    /// The bounds of a channel's columns from its history, into `out`: a column's previous maximum
    /// (at least `floor` times the channel's largest), or where that was 0 (a unit silent on the
    /// whole last batch, common in the first layer) the channel's largest, so that the unit waking
    /// up does not force a redo. All 0 (a run's first step) stays 0.
    func historyBounds(_ bound: UnsafePointer<Float>, count: Int, floor: Double = 0, into out: UnsafeMutablePointer<Double>) {
        var largest: Float = 0
        for j in 0..<count { largest = max(largest, bound[j]) }
        let (fallback, least) = (Double(largest), Double(largest) * floor)
        for j in 0..<count { out[j] = bound[j] > 0 ? max(Double(bound[j]), least) : fallback }
    }

    // MARK: Bias gradients and the loss

    /// A Dense bias gradient's bound is at least this fraction of its layer's largest: a first-layer
    /// unit active on one row of a batch and on many of the next grows its maximum by far more than
    /// the headroom, and would make almost every step redo its final sums. (A bias gradient summed on
    /// its layer's grid is still exact, and far more precise than the Float it becomes.)
    var biasFloor: Double { 0x1p-8 }

    /// The grid of hidden dense layer `l`'s bias gradient, with its maxima among the final ones.
    func biasGrids(_ l: Int, _ ctx: StepContext, bounds: UnsafePointer<Double>? = nil) -> SumGrids {
        let (w, x) = (blocks[l].width, exact)
        let bound = x.bounds.pointer + x.blockBounds[l] + 3 * w
        let (scale, limit) = (x.biasScale[l].pointer, x.biasLimit[l].pointer)
        if bounds == nil { historyBounds(bound, count: w, floor: biasFloor, into: x.gridBounds.pointer) }
        sumGrids(bounds: bounds ?? UnsafePointer(x.gridBounds.pointer), count: w, rows: ctx.globalBatch, scale: scale, limit: limit)
        return x.grids(scale: scale, maxima: bounds == nil ? x.finalMaxima.pointer + x.outputMaxima[l] : x.discardedMaxima.pointer)
    }

    /// The step's loss sum over this shard's rows in grid steps (from `bound`, by default the loss's
    /// bound), and the largest row loss into the final maxima (non-finite for a diverged step).
    func lossSteps(_ ctx: StepContext, bound: Double? = nil) -> Double {
        let x = exact
        (x.lossScale, x.lossLimit) = sumGrid(bound: bound ?? Double(x.bounds.pointer[x.lossBound]), rows: ctx.globalBatch)
        var (steps, largest) = (0.0, 0.0)
        for i in 0..<ctx.rows {
            let loss = x.rowLosses.pointer[i]
            steps += gridSteps(loss, x.lossScale)
            largest = loss.isFinite ? max(largest, abs(loss)) : .infinity
        }
        if bound == nil { x.finalMaxima.pointer[x.lossMaximum] = largest }
        return steps
    }

    // MARK: The end of the local pass

    /// The reduction that ends the local pass — the per-feature sums, the loss and correct count and
    /// the maxima of every product operand, in one call — then the weight gradients of this shard
    /// on the operands' grids. Returns the step's reduced loss sum and correct count.
    public func finishStep(_ ctx: StepContext, collective: Collective) throws -> LossTally {
        let sync = ctx.batchNormMode == .sync
        recordOperandMaxima(ctx, outputs: !sync)
        if sync {
            // dγ and dβ were reduced at their blocks; their slots take the global values afterwards.
            for (l, b) in blocks.enumerated() {
                (exactSums.pointer + exactLayout.shift[l]).update(repeating: 0, count: b.width)
                (exactSums.pointer + exactLayout.scale[l]).update(repeating: 0, count: b.width)
            }
        }
        exact.localSums.copy(from: exactSums)
        try collective.allreduceSumAndMax(sums: exactSums.all, maxima: exact.finalMaxima.all)
        if sync {
            try redoFinalSumsIfNeeded(ctx, collective: collective)
            convertFinalSums(ctx)
        } else {
            mergeRunningStatistics(globalBatch: ctx.globalBatch)
        }
        computeWeightGradients(ctx)
        let e = exactSums.pointer
        return LossTally(lossSum: e[exactLayout.loss], correct: Int(e[exactLayout.loss + 1].rounded()))
    }

    /// Every dense layer's input maxima per column among the final maxima, and with `outputs` its
    /// output gradient's (in `sync` mode the exact bias sums recorded those on their pass).
    func recordOperandMaxima(_ ctx: StepContext, outputs: Bool) {
        let m = exact.finalMaxima.pointer
        for l in 0...blocks.count {
            let slot = l < blocks.count ? layout.dense[l] : layout.head
            let scratch = exact.roundScratch.pointer
            columnMaxima(layerInput(l), rows: ctx.rows, width: slot.fanIn, into: m + exact.inputMaxima[l], scratch: scratch)
            if outputs { columnMaxima(outputGradient(l), rows: ctx.rows, width: slot.fanOut, into: m + exact.outputMaxima[l], scratch: scratch) }
        }
    }

    /// Where a bias gradient's or the loss's maximum broke its grid, all of them are summed again
    /// on grids from this step's maxima (from this rank's sums as they were before the reduction).
    func redoFinalSumsIfNeeded(_ ctx: StepContext, collective: Collective) throws {
        let (x, m) = (exact, exact.finalMaxima.pointer)
        let biasExceeded = (0..<blocks.count).contains { l in
            !withinLimits(m + x.outputMaxima[l], x.biasLimit[l].pointer, count: blocks[l].width)
        }
        if biasExceeded || !(m[x.lossMaximum] <= x.lossLimit) {
            sumRedos += 1
            exactSums.copy(from: x.localSums)
            for l in 0..<blocks.count { resumBias(l, ctx, bounds: m + x.outputMaxima[l]) }
            exactSums.pointer[exactLayout.loss] = lossSteps(ctx, bound: m[x.lossMaximum])
            try collective.allreduceSum(exactSums.all)
        }
        for l in 0..<blocks.count {
            let bound = x.bounds.pointer + x.blockBounds[l] + 3 * blocks[l].width
            for j in 0..<blocks[l].width { bound[j] = boundFloat(m[x.outputMaxima[l] + j]) }
        }
        x.bounds.pointer[x.lossBound] = boundFloat(m[x.lossMaximum])
    }

    /// Hidden dense layer `l`'s bias gradient summed again from its output gradient (the pass of
    /// batchNormBackwardInput left it in `grad`), on grids from `bounds`.
    func resumBias(_ l: Int, _ ctx: StepContext, bounds: UnsafePointer<Double>) {
        let grids = biasGrids(l, ctx, bounds: bounds)
        columnSums(blocks[l].grad.pointer, rows: ctx.rows, width: blocks[l].width, into: exactSums.pointer + exactLayout.bias[l], grids: grids)
        zeroAlwaysActiveBiases(l, ctx)
    }

    /// The reduced grid steps as values; the BatchNorm scale and shift gradients from the blocks'
    /// reduced sums (already global: they were not part of this reduction).
    func convertFinalSums(_ ctx: StepContext) {
        let (e, x) = (exactSums.pointer, exact)
        for (l, b) in blocks.enumerated() {
            let (w, bias, scale) = (b.width, e + exactLayout.bias[l], x.biasScale[l].pointer)
            for j in 0..<w { bias[j] /= scale[j] }
            (e + exactLayout.shift[l]).update(from: b.gradSums.pointer, count: w)
            (e + exactLayout.scale[l]).update(from: b.gradSums.pointer + w, count: w)
        }
        let head = e + exactLayout.bias[blocks.count]
        for j in 0..<architecture.classCount { head[j] /= x.headScale.pointer[j] }
        e[exactLayout.loss] /= x.lossScale
    }

    // MARK: Weight gradients

    /// Every dense layer's weight gradient from its input and output gradient, each rounded in place
    /// to `productBits` bits below its column's maximum over the global batch (unless
    /// `roundsProductOperands` is off): every product and partial sum is then exact in float32.
    /// With `exactProductsInBF16` (bf16 precision, and fp32 on a CPU with bf16 arithmetic) the rounded
    /// operands are written straight into the product's bfloat16 copies (in the rounding's pass;
    /// the float32 values stay as they were, and nothing reads them again) and the product reads those.
    /// With `sharedOperands` the copies are this rank's rows of the global batch's, and the products
    /// wait for `computeSharedWeightGradients`.
    func computeWeightGradients(_ ctx: StepContext) {
        let (x, bits) = (exact, productBits(rows: ctx.globalBatch))
        let shared = roundsProductOperands ? sharedOperands : nil
        if let shared {
            precondition(ctx.globalBatch == shared.rows && ctx.firstRow == shared.firstRow, "the shared operands are laid out for another shard")
        }
        for l in 0...blocks.count {
            let slot = l < blocks.count ? layout.dense[l] : layout.head
            if roundsProductOperands {
                let gradientCopy = shared.map { $0.gradients[l] + ctx.firstRow * slot.fanOut } ?? bf16?.gradients[l].pointer
                roundColumns(layerInput(l), rows: ctx.rows, width: slot.fanIn, maxima: x.finalMaxima.pointer + x.inputMaxima[l],
                             bits: bits, scratch: x.roundScratch.pointer, bf16: shared == nil ? bf16?.inputs[l].pointer : nil,
                             bf16Blocks: shared?.inputWrites[l])
                roundColumns(outputGradient(l), rows: ctx.rows, width: slot.fanOut, maxima: x.finalMaxima.pointer + x.outputMaxima[l],
                             bits: bits, scratch: x.roundScratch.pointer, bf16: gradientCopy)
            }
            if shared == nil { weightGradientProduct(l, rows: ctx.rows, copiesCurrent: roundsProductOperands) }
        }
        weightGradientsPending = shared != nil
    }

    /// The pending weight gradients of this rank's part of the parameters (`sharedOperands.partition`),
    /// over the whole global batch, into `gradients` (collective: a fence first, after which every
    /// rank's rows of the shared operands are written). That is the global gradient of those
    /// parameters, the one a reduce-scatter of the ranks' partial gradients gives, bit for bit (see
    /// SharedProductOperands). A weight row the part's ends cut is computed whole; its entries
    /// outside the part are not this rank's to use. Nothing is done when none are pending.
    public func computeSharedWeightGradients(collective: Collective) throws {
        guard weightGradientsPending, let s = sharedOperands else { return }
        weightGradientsPending = false
        try collective.synchronizeOperands()
        let start = profile == nil ? 0 : StepProfile.now()
        defer { if let profile { profile.add(.weightGradientProducts, since: start) } }
        for (l, slot) in layout.allDense.enumerated() where !s.inputs[l].columns.isEmpty {
            let x = s.inputs[l]
            MatrixEngine.shared.weightGradient(x: x.base, dy: s.gradients[l], rows: s.rows, fanIn: x.columns.count, fanOut: slot.fanOut,
                                               dWeight: gradients.pointer + slot.weight + x.columns.lowerBound * slot.fanOut)
        }
    }
}
