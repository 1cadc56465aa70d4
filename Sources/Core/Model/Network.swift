// Network: the parameters, running statistics and activation buffers of one replica, and the
// forward and backward passes of a data-parallel training step.
//
// A replica trains on its shard of the global minibatch. A step ends in two reductions:
//  - `gradients` (Float, ParameterLayout order): all weight gradients in one buffer, reduced in
//    one call (a reduce-scatter feeding the sharded optimizer step, or an allreduce); or, where the
//    ranks of a node share the products' operands (SharedProductOperands), not reduced at all:
//    each rank computes its part of them from every rank's rows;
//  - `exactSums` (Double, a few thousand values): the per-feature gradients (every bias, BatchNorm
//    scale and shift), the loss sum and correct count, and in BatchNorm mode `local` each block's
//    Σa and Σa² for merging running statistics.
// Per-feature gradients need Double: a hidden Dense bias feeds BatchNorm through ReLU, so for a unit
// that is active on the whole batch its true gradient is exactly zero and what Float arithmetic
// leaves is rounding noise of order 1e-9 — which Adam, dividing by √v, turns into full-size steps.
// Summed in Double, that noise is the same whichever way the batch is split across ranks, so results
// stay independent of the rank count. Every buffer is allocated here, once; a step allocates nothing.
//
// This file is the orchestration of the layer kernels (Dense, Relu, BatchNorm, Dropout,
// SoftmaxCrossEntropy); it is not an optimiser (Adam) nor a training loop (Trainer).
import Collectives
import Kernels

/// One replica of the model: parameters, gradients, running statistics and activations.
public final class Network {
    public let architecture: Architecture
    public let layout: ParameterLayout
    public let statsLayout: RunningStatsLayout
    /// Rows the activation buffers hold (largest shard or evaluation chunk).
    public let capacity: Int

    /// All trainable parameters (ParameterLayout order).
    public let parameters: Buffer<Float>
    /// BatchNorm running means and variances (RunningStatsLayout order).
    public let runningStats: Buffer<Float>
    /// Gradients of all parameters (ParameterLayout order). After a step's local pass this rank's
    /// partial weight gradients; the data-parallel optimizer reduces them in one call (scattered
    /// across ranks by default, see ShardedAdam) and fills in the per-feature ones from `exactSums`.
    public let gradients: Buffer<Float>
    /// Double-precision sums, reduced at the end of the local pass, before the weight gradients: see
    /// `ExactSumsLayout`.
    public let exactSums: Buffer<Double>
    public let exactLayout: ExactSumsLayout

    /// Input batch [capacity × inputWidth] (pixels scaled to [0, 1]) and labels.
    public let input: Buffer<Float>
    public let labels: Buffer<Int32>
    /// Logits [capacity × classes] and their gradient.
    public let logits: Buffer<Float>
    let dLogits: Buffer<Float>
    let blocks: [BlockBuffers]
    /// Number format of the matrix products.
    public let precision: ProductPrecision
    /// Whether a training step's weight-gradient products read bfloat16 copies of their rounded
    /// operands (in fp32 precision too): those operands have at most 8 significant bits, so bf16
    /// holds them exactly and the product gives the same bits as in float32, at bf16's speed.
    public let exactProductsInBF16: Bool
    /// The bfloat16 copies the products read: in bf16 precision all of them, otherwise (with
    /// `exactProductsInBF16`) the weight-gradient operands only.
    let bf16: BF16Copies?
    /// Whether the bf16 copy of the parameters (bf16 precision) holds the parameters' current
    /// values: set once it is converted (or by the optimizer, which converts what it updates as it
    /// updates it, see AdamState.update), cleared by every write of the parameters through `reset`
    /// and `load` (a caller that writes them directly calls `parametersChanged`).
    public private(set) var weightCopyCurrent = false
    /// Whether that copy is memory the ranks of a node share (one copy for all, written as the
    /// parameters' shared copy is: see Collective.sharedCopy).
    public let weightCopyShared: Bool
    /// The weight-gradient operands of the whole global batch in memory the node's ranks share,
    /// when the caller gave it: then a step's weight gradients wait for `computeSharedWeightGradients`.
    public let sharedOperands: SharedProductOperands?
    /// Whether this step's operands are in `sharedOperands` and its weight gradients still to be
    /// computed (by `computeSharedWeightGradients`; `gradients` holds none of them meanwhile).
    public internal(set) var weightGradientsPending = false
    /// Bounds, grids and maxima of the step's exact sums (ExactSum.swift).
    let exact: ExactStepBuffers
    /// Whether the weight-gradient products read operands rounded to a grid set by their columns'
    /// maxima (what makes them exact, so that a step does not depend on how its rows are split).
    /// Training always does; finite-difference tests of the unrounded math turn it off.
    public var roundsProductOperands = true
    /// When set, the matrix products are timed into it (see StepProfile; the Trainer times the rest).
    public var profile: StepProfile?
    /// How many sums so far were redone on a grid from their own maximum (their bound was exceeded):
    /// the first step of every run, and rarely after.
    public internal(set) var sumRedos = 0

    /// `riders`: extra Double slots appended to `exactSums` for the caller (see ExactSumsLayout).
    /// `gradientStorage`, `parameterStorage`: memory for `gradients` and `parameters` that the
    /// collective reads from the other ranks in place (Collective.sharedStorage, or for the
    /// parameters one copy for all ranks, Collective.sharedCopy), kept alive by the caller; by
    /// default, the network's own. `weightCopyStorage`: likewise for the parameters' bf16 copy
    /// (bf16 precision), one copy for all ranks. `sharedOperands`: the weight-gradient operands of
    /// the global batch in memory the ranks share (only where the products read bf16 copies, see
    /// `usesBF16Products`).
    /// `exactProductsInBF16`: by default where the CPU has bf16 arithmetic (`ExactProducts.bf16ByDefault`);
    /// never where it has none.
    public init(architecture: Architecture, capacity: Int, riders: Int = 0, precision: ProductPrecision = .fp32,
                exactProductsInBF16: Bool = ExactProducts.bf16ByDefault,
                gradientStorage: UnsafeMutablePointer<Float>? = nil, parameterStorage: UnsafeMutablePointer<Float>? = nil,
                weightCopyStorage: UnsafeMutablePointer<UInt16>? = nil, sharedOperands: SharedProductOperands? = nil) {
        precondition(capacity > 0)
        self.architecture = architecture
        layout = ParameterLayout(architecture)
        statsLayout = RunningStatsLayout(architecture)
        self.capacity = capacity
        let parameterCount = layout.count
        parameters = parameterStorage.map { Buffer(borrowing: $0, count: parameterCount) } ?? Buffer(count: parameterCount)
        runningStats = Buffer(count: statsLayout.count)
        gradients = gradientStorage.map { Buffer(borrowing: $0, count: parameterCount) } ?? Buffer(count: parameterCount)
        exactLayout = ExactSumsLayout(layout, statsLayout, riders: riders)
        exactSums = Buffer(count: exactLayout.count)
        input = Buffer(count: capacity * architecture.inputWidth)
        labels = Buffer(count: capacity)
        logits = Buffer(count: capacity * architecture.classCount)
        dLogits = Buffer(count: capacity * architecture.classCount)
        blocks = (0..<architecture.blockCount).map {
            BlockBuffers(width: architecture.hidden[$0], capacity: capacity, dropout: architecture.dropoutAfter[$0])
        }
        initializeRunningStats(runningStats.all, layout: statsLayout, widths: architecture.hidden)
        self.precision = precision
        self.exactProductsInBF16 = Network.usesBF16Products(precision: precision, requested: exactProductsInBF16)
        precondition(sharedOperands == nil || self.exactProductsInBF16, "shared weight-gradient operands are bf16 copies")
        self.sharedOperands = sharedOperands
        bf16 = self.exactProductsInBF16
            ? BF16Copies(layout: layout, capacity: capacity, weights: precision == .bf16, weightStorage: weightCopyStorage) : nil
        weightCopyShared = precision == .bf16 && weightCopyStorage != nil
        exact = ExactStepBuffers(architecture: architecture, layout: layout, exactCount: exactLayout.count, capacity: capacity)
    }

    /// Whether a network of `precision` computes its exact weight-gradient products from bf16
    /// copies (`exactProductsInBF16`): in bf16, and in fp32 where requested and the CPU has bf16
    /// arithmetic.
    public static func usesBF16Products(precision: ProductPrecision, requested: Bool = ExactProducts.bf16ByDefault) -> Bool {
        precision == .bf16 || (requested && cpuHasBF16)
    }

    /// Fresh He-initialised parameters (unless `parameters` is false: another rank writes the
    /// copy this rank shares) and running statistics for `seed`.
    public func reset(seed: UInt64, parameters writesParameters: Bool = true) {
        if writesParameters {
            initializeParameters(parameters.all, layout: layout, seed: seed)
            weightCopyCurrent = false
        }
        initializeRunningStats(runningStats.all, layout: statsLayout, widths: architecture.hidden)
        exact.bounds.zero()
    }

    /// The exact sums' bounds: part of the training state (a resumed run must make the grids the
    /// uninterrupted one would have made), saved in `last` checkpoints.
    public var sumBounds: [Float] {
        get { exact.bounds.array }
        set { exact.bounds.load(newValue) }
    }

    /// A copy of the parameters and running statistics.
    public var state: ModelState { ModelState(parameters: parameters.array, runningStats: runningStats.array) }

    /// Replaces the parameters (unless `parameters` is false, as in `reset`) and running
    /// statistics (e.g. with a checkpoint's or the best model's).
    public func load(_ state: ModelState, parameters writesParameters: Bool = true) {
        if writesParameters {
            parameters.load(state.parameters)
            weightCopyCurrent = false
        }
        runningStats.load(state.runningStats)
    }

    /// Says that the parameters were written directly (not through `reset` or `load`): the bf16
    /// copy is converted again before it is next read.
    public func parametersChanged() { weightCopyCurrent = false }

    // MARK: The bf16 copy of the weights

    /// The bf16 copy of the parameters (bf16 precision), for an optimizer that writes it as it
    /// updates them; nil in fp32.
    public var weightCopy: UnsafeMutablePointer<UInt16>? { bf16?.parameters?.pointer }

    /// Converts the parameters into their bf16 copy, all of them but `range` (which the optimizer
    /// converted as it updated it), and records the copy as current. Nothing in fp32.
    public func refreshWeightCopy(except range: Range<Int> = 0..<0) {
        guard let copy = weightCopy else { return }
        let (p, c) = (parameters.pointer, copy)
        if range.lowerBound > 0 { convertToBF16(p, count: range.lowerBound, into: c) }
        let rest = range.upperBound
        if rest < layout.count { convertToBF16(p + rest, count: layout.count - rest, into: c + rest) }
        weightCopyCurrent = true
    }

    /// Records the bf16 copy as current without converting it: the ranks sharing it wrote it (each
    /// its part, in the optimizer), or one of them did (see Trainer.rewriteParameters).
    public func weightCopyWritten() { weightCopyCurrent = weightCopy != nil }

    /// The input of hidden block `l` (or of the head when `l == blockCount`).
    func layerInput(_ l: Int) -> UnsafeMutablePointer<Float> {
        l == 0 ? input.pointer : blocks[l - 1].out.pointer
    }

    // MARK: Products

    /// Dense layer `l`'s forward product over `n` rows of its input into `y` (layer `blockCount`
    /// is the head), with ReLU for hidden blocks. In bf16 the input's copy must be current.
    func forwardProduct(_ l: Int, rows n: Int, y: UnsafeMutablePointer<Float>) {
        let start = profile == nil ? 0 : StepProfile.now()
        defer { if let profile { profile.add(.forwardProducts, since: start) } }
        let slot = l < blocks.count ? layout.dense[l] : layout.head
        let p = parameters.pointer
        if let bf16, let weights = bf16.parameters {
            denseForward(x: bf16.inputs[l].pointer, rows: n, weight: weights.pointer + slot.weight, bias: p + slot.bias,
                         fanIn: slot.fanIn, fanOut: slot.fanOut, relu: l < blocks.count, y: y)
        } else {
            denseForward(x: layerInput(l), rows: n, weight: p + slot.weight, bias: p + slot.bias,
                         fanIn: slot.fanIn, fanOut: slot.fanOut, relu: l < blocks.count, y: y)
        }
    }

    /// The gradient of dense layer `l`'s output (a block's pre-activation, the head's logits).
    func outputGradient(_ l: Int) -> UnsafeMutablePointer<Float> {
        l < blocks.count ? blocks[l].grad.pointer : dLogits.pointer
    }

    /// Dense layer `l`'s input gradient dx = dy · Wᵀ into `dx` (the gradient of layer l − 1's output),
    /// from the gradient of its output (in bf16: its bf16 copy, refreshed here).
    func inputGradientProduct(_ l: Int, rows n: Int, dx: UnsafeMutablePointer<Float>) {
        let start = profile == nil ? 0 : StepProfile.now()
        defer { if let profile { profile.add(.inputGradientProducts, since: start) } }
        let slot = l < blocks.count ? layout.dense[l] : layout.head
        let dy = outputGradient(l)
        if let bf16, let weights = bf16.parameters {
            convertToBF16(dy, count: n * slot.fanOut, into: bf16.gradients[l].pointer)
            MatrixEngine.shared.inputGradient(dy: bf16.gradients[l].pointer, rows: n, weight: weights.pointer + slot.weight,
                                              fanIn: slot.fanIn, fanOut: slot.fanOut, dx: dx)
        } else {
            MatrixEngine.shared.inputGradient(dy: dy, rows: n, weight: parameters.pointer + slot.weight,
                                              fanIn: slot.fanIn, fanOut: slot.fanOut, dx: dx)
        }
    }

    /// Dense layer `l`'s weight gradient xᵀ · dy into `gradients`, from its input and output gradient
    /// as they are (in bf16, their bf16 copies, refreshed here from the float32 values unless
    /// `copiesCurrent`: the rounding of the operands wrote them; in fp32 precision the copies are
    /// read only when the rounding wrote them).
    func weightGradientProduct(_ l: Int, rows n: Int, copiesCurrent: Bool = false) {
        let start = profile == nil ? 0 : StepProfile.now()
        defer { if let profile { profile.add(.weightGradientProducts, since: start) } }
        let slot = l < blocks.count ? layout.dense[l] : layout.head
        let (x, dy, dW) = (layerInput(l), outputGradient(l), gradients.pointer + slot.weight)
        guard n > 0 else { return dW.update(repeating: 0, count: slot.fanIn * slot.fanOut) }
        if let bf16, copiesCurrent || precision == .bf16 {
            if !copiesCurrent {
                convertToBF16(x, count: n * slot.fanIn, into: bf16.inputs[l].pointer)
                convertToBF16(dy, count: n * slot.fanOut, into: bf16.gradients[l].pointer)
            }
            MatrixEngine.shared.weightGradient(x: bf16.inputs[l].pointer, dy: bf16.gradients[l].pointer, rows: n,
                                               fanIn: slot.fanIn, fanOut: slot.fanOut, dWeight: dW)
        } else {
            MatrixEngine.shared.weightGradient(x: x, dy: dy, rows: n, fanIn: slot.fanIn, fanOut: slot.fanOut, dWeight: dW)
        }
    }

    /// In bf16: refreshes the weights' copy and layer `l`'s input copy (`n` rows) from float32.
    func refreshBF16(weights: Bool = false, input l: Int? = nil, rows n: Int = 0) {
        guard let bf16, precision == .bf16 else { return }
        if weights, !weightCopyCurrent {
            // A copy the ranks share is written only by the optimizer and Trainer.rewriteParameters.
            precondition(!weightCopyShared, "the shared bf16 copy of the parameters is not current")
            refreshWeightCopy()
        }
        if let l { convertToBF16(layerInput(l), count: n * architecture.fanIn(l), into: bf16.inputs[l].pointer) }
    }

    /// One training step's matrix products and nothing else: every Dense layer's forward product
    /// (with its fused bias and ReLU), weight gradient and input gradient, and in bf16 the copies of
    /// the activations a step converts (not the weights': Adam writes their copy as it updates them,
    /// so only the first call converts it), on whatever the buffers hold — what `dist-trainer roofline` times as the bound
    /// of a step. The same calls as `forwardTrain` and `backward` make, without the passes between;
    /// the weight gradients in the precision's own format, or with `asTrained` as a training step
    /// computes them (from the bf16 copies of their rounded operands where `exactProductsInBF16`).
    public func stepProducts(rows n: Int, asTrained: Bool = false) {
        refreshBF16(weights: true, input: 0, rows: n)
        for l in 0..<blocks.count {
            forwardProduct(l, rows: n, y: blocks[l].a.pointer)
            refreshBF16(input: l + 1, rows: n)
        }
        forwardProduct(blocks.count, rows: n, y: logits.pointer)
        for l in stride(from: blocks.count, through: 1, by: -1) { inputGradientProduct(l, rows: n, dx: blocks[l - 1].grad.pointer) }
        for l in 0...blocks.count { weightGradientProduct(l, rows: n, copiesCurrent: asTrained && roundsProductOperands) }
    }

    // MARK: Training step

    /// Forward pass in training mode over `ctx.rows` samples in `input`: batch statistics (global
    /// ones in `sync` mode, summed across ranks), dropout masks, and in `sync` mode the running
    /// statistics update.
    public func forwardTrain(_ ctx: StepContext, collective: Collective) throws {
        let n = ctx.rows
        refreshBF16(weights: true, input: 0, rows: n)
        for (l, b) in blocks.enumerated() {
            forwardProduct(l, rows: n, y: b.a.pointer)
            try normalizeForTraining(l, ctx, collective: collective)
            refreshBF16(input: l + 1, rows: n)
        }
        forwardProduct(blocks.count, rows: n, y: logits.pointer)
    }

    /// Block `l`'s BatchNorm in training mode and its dropout, from its ReLU output `a` to `out`.
    func normalizeForTraining(_ l: Int, _ ctx: StepContext, collective: Collective) throws {
        let (b, n, norm) = (blocks[l], ctx.rows, layout.norm[l])
        let (w, p, sync) = (b.width, parameters.pointer, ctx.batchNormMode == .sync)
        if sync {
            try reduceForwardSums(l, ctx, collective: collective)
        } else {
            // Local statistics normalise this shard; their sums travel in the fused allreduce so
            // that every rank can merge the running statistics exactly afterwards.
            batchNormSums(b.a.pointer, rows: n, width: w, into: b.sums.pointer, activeCounts: b.sums.pointer + 2 * w)
            (exactSums.pointer + exactLayout.statistics + statsLayout.mean[l]).update(from: b.sums.pointer, count: 2 * w)
        }
        batchNormMoments(sums: b.sums.pointer, count: sync ? ctx.globalBatch : n, width: w,
                         mean: b.mean.pointer, variance: b.variance.pointer, invStd: b.invStd.pointer)
        if sync {
            let r = runningStats.pointer
            batchNormUpdateRunning(runningMean: r + statsLayout.mean[l], runningVariance: r + statsLayout.variance[l],
                                   mean: b.mean.pointer, variance: b.variance.pointer, width: w)
        }
        if let mask = b.mask {
            dropoutMask(mask.pointer, rows: n, width: w, firstRow: ctx.firstRow, key: ctx.dropoutKey.with(l), keep: ctx.keep)
        }
        batchNormNormalize(b.a.pointer, rows: n, width: w, mean: b.mean.pointer, invStd: b.invStd.pointer,
                           scale: p + norm.scale, shift: p + norm.shift, xhat: b.xhat.pointer, y: b.out.pointer,
                           mask: b.mask?.pointer)
    }

    /// Loss of the shard against `labels` and the gradient of the *global-batch mean* loss with
    /// respect to the logits (scaled by 1 / globalBatch, so shards sum to the full gradient). Also
    /// writes the loss sum and correct count into the fused buffer (in `sync` mode the loss sum in
    /// grid steps of an exact sum, with the largest row loss among the final maxima). The returned
    /// tally is this shard's, in plain Double.
    @discardableResult
    public func lossAndGradient(_ ctx: StepContext) -> LossTally {
        let tally = softmaxCrossEntropy(
            logits: logits.pointer, labels: labels.pointer, rows: ctx.rows, classes: architecture.classCount,
            gradScale: 1 / Float(ctx.globalBatch), dLogits: dLogits.pointer, predictions: nil, smoothing: ctx.labelSmoothing,
            rowLosses: exact.rowLosses.pointer)
        exact.finalMaxima.zero()
        exactSums.pointer[exactLayout.loss] = ctx.batchNormMode == .sync ? lossSteps(ctx) : tally.lossSum
        exactSums.pointer[exactLayout.loss + 1] = Double(tally.correct)
        return tally
    }

    /// Backward pass from the logit gradient to every input gradient and per-feature gradient sum
    /// (this shard's part); the weight gradients follow the reduction (`finishStep`). In `sync` mode
    /// each BatchNorm sums Σdy and Σdy·x̂ across ranks for its input gradient.
    public func backward(_ ctx: StepContext, collective: Collective) throws {
        let n = ctx.rows
        if let last = blocks.last { inputGradientProduct(blocks.count, rows: n, dx: last.grad.pointer) }
        let head = exactSums.pointer + exactLayout.bias[blocks.count]
        if ctx.batchNormMode == .sync {
            let scale = exact.headScale.pointer
            let grid = sumGrid(bound: 1 / Double(ctx.globalBatch), rows: ctx.globalBatch)
            for j in 0..<architecture.classCount { scale[j] = grid.scale }
            columnSums(dLogits.pointer, rows: n, width: layout.head.fanOut, into: head,
                       grids: SumGrids(scale: scale, maxima: exact.finalMaxima.pointer + exact.outputMaxima[blocks.count]))
        } else {
            columnSums(dLogits.pointer, rows: n, width: layout.head.fanOut, into: head)
        }
        for l in stride(from: blocks.count - 1, through: 0, by: -1) {
            try normalizeBackward(l, ctx, collective: collective)
            if l > 0 { inputGradientProduct(l, rows: n, dx: blocks[l - 1].grad.pointer) }
        }
    }

    /// Block `l` backward from the gradient of its output to the gradient of its Dense output (in
    /// place in `grad`): dropout, BatchNorm (its dγ, dβ into the exact sums), ReLU, and the Dense
    /// bias gradient in Double (in `sync` mode exact, in grid steps).
    func normalizeBackward(_ l: Int, _ ctx: StepContext, collective: Collective) throws {
        let (b, n, norm, e) = (blocks[l], ctx.rows, layout.norm[l], exactSums.pointer)
        let (w, dy, sync) = (b.width, b.grad.pointer, ctx.batchNormMode == .sync)
        if sync {
            try reduceBackwardSums(l, ctx, collective: collective)
        } else {
            batchNormGradientSums(dy, xhat: b.xhat.pointer, rows: n, width: w, into: b.gradSums.pointer, mask: b.mask?.pointer)
            // This shard's dβ = Σdy and dγ = Σdy·x̂, summed over ranks with the other exact sums.
            (e + exactLayout.shift[l]).update(from: b.gradSums.pointer, count: w)
            (e + exactLayout.scale[l]).update(from: b.gradSums.pointer + w, count: w)
        }
        let db = e + exactLayout.bias[l]
        let grids = sync ? biasGrids(l, ctx) : nil
        batchNormBackwardInput(dy, xhat: b.xhat.pointer, rows: n, width: w, scale: parameters.pointer + norm.scale,
                               invStd: b.invStd.pointer, sums: b.gradSums.pointer, count: sync ? ctx.globalBatch : n,
                               coefficients: b.coefficients.pointer, reluOutput: b.a.pointer, biasGradient: db, biasGrids: grids)
        zeroAlwaysActiveBiases(l, ctx)
    }

    /// Units active on every row normalised together: their bias gradient is exactly zero (what
    /// Float arithmetic leaves there is rounding noise, which Adam would turn into full-size steps).
    func zeroAlwaysActiveBiases(_ l: Int, _ ctx: StepContext) {
        let (w, db) = (blocks[l].width, exactSums.pointer + exactLayout.bias[l])
        let active = blocks[l].sums.pointer + 2 * w
        let together = Double(ctx.batchNormMode == .sync ? ctx.globalBatch : ctx.rows)
        for j in 0..<w where active[j] == together { db[j] = 0 }
    }

    /// After the reductions: copies the per-feature gradients (biases, BatchNorm scales and shifts)
    /// from the Double sums into `target`, which holds the gradients of parameters `range` (target[0]
    /// is parameter range.lowerBound); entries outside `range` are skipped.
    public func writeExactGradients(into target: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let e = exactSums.pointer
        func put(_ parameter: Int, _ value: Double) {
            if range.contains(parameter) { target[parameter - range.lowerBound] = Float(value) }
        }
        for (l, slot) in layout.allDense.enumerated() {
            for j in 0..<slot.fanOut { put(slot.bias + j, e[exactLayout.bias[l] + j]) }
        }
        for (l, slot) in layout.norm.enumerated() {
            for j in 0..<slot.width {
                put(slot.scale + j, e[exactLayout.scale[l] + j])
                put(slot.shift + j, e[exactLayout.shift[l] + j])
            }
        }
    }

    /// After the reductions in `local` mode: merges the shards' BatchNorm sums into the global batch
    /// mean and variance (count-weighted means plus the spread of the shard means, which is what Σa²
    /// over the whole batch contains; never an average of shard variances) and updates the running
    /// statistics with them.
    public func mergeRunningStatistics(globalBatch: Int) {
        let r = runningStats.pointer
        let inv = 1.0 / Double(globalBatch)
        for (l, b) in blocks.enumerated() {
            let w = b.width
            let s = exactSums.pointer + exactLayout.statistics + statsLayout.mean[l]
            for j in 0..<w {
                let mu = s[j] * inv
                b.mean.pointer[j] = Float(mu)
                b.variance.pointer[j] = Float(max(s[w + j] * inv - mu * mu, 0))
            }
            batchNormUpdateRunning(runningMean: r + statsLayout.mean[l], runningVariance: r + statsLayout.variance[l],
                                   mean: b.mean.pointer, variance: b.variance.pointer, width: w)
        }
    }

    /// The part of a data-parallel step before the weight gradients are reduced: forward, loss,
    /// backward, then `finishStep` (the reduction of the per-feature values and the local weight
    /// gradients). Afterwards `gradients` holds this rank's partial weight gradients (its shard's
    /// share of the global-batch mean), or with `sharedOperands` none yet (`weightGradientsPending`),
    /// and `exactSums` the global per-feature gradients, loss and correct count. The data-parallel
    /// optimizer (ShardedAdam, or ReplicatedAdam with compressed gradients) then reduces the weight
    /// gradients in its step, or computes its part of them from the shared operands.
    public func computeLocalGradients(_ ctx: StepContext, collective: Collective) throws -> LossTally {
        try forwardTrain(ctx, collective: collective)
        lossAndGradient(ctx)
        try backward(ctx, collective: collective)
        return try finishStep(ctx, collective: collective)
    }

    /// A whole data-parallel gradient computation: `computeLocalGradients`, then one allreduce of all
    /// weight gradients (or all of them from the shared operands), so that `gradients` holds the
    /// global-batch gradient on every rank (used by `dist-trainer check` and the tests; training
    /// reduce-scatters instead, see ShardedAdam).
    public func computeGradients(_ ctx: StepContext, collective: Collective) throws -> LossTally {
        let tally = try computeLocalGradients(ctx, collective: collective)
        if weightGradientsPending, let s = sharedOperands {
            // This rank's part from the shared operands, then every part to every rank.
            try computeSharedWeightGradients(collective: collective)
            try collective.allgather(gradients.all, partition: s.partition)
        } else {
            try collective.allreduceSum(gradients.all)
        }
        writeExactGradients(into: gradients.pointer, range: 0..<layout.count)
        return tally
    }

    // MARK: Inference

    /// Forward pass in inference mode over `rows` samples in `input`: running statistics, no dropout.
    /// Leaves the logits in `logits`.
    public func forwardInference(rows n: Int) {
        let (p, r) = (parameters.pointer, runningStats.pointer)
        refreshBF16(weights: true, input: 0, rows: n)
        for (l, b) in blocks.enumerated() {
            let (norm, w) = (layout.norm[l], b.width)
            forwardProduct(l, rows: n, y: b.a.pointer)
            batchNormInferenceMoments(runningMean: r + statsLayout.mean[l], runningVariance: r + statsLayout.variance[l],
                                      width: w, mean: b.mean.pointer, invStd: b.invStd.pointer)
            batchNormNormalize(b.a.pointer, rows: n, width: w, mean: b.mean.pointer, invStd: b.invStd.pointer,
                               scale: p + norm.scale, shift: p + norm.shift, xhat: nil, y: b.out.pointer)
            refreshBF16(input: l + 1, rows: n)
        }
        forwardProduct(blocks.count, rows: n, y: logits.pointer)
    }

    // MARK: Input

    /// Loads samples `indices` of `data` into rows 0 ..< indices.count of `input` and their labels
    /// into `labels`: bytes scaled by 1/255 (InputTransform.bytes), Float features as they are (the
    /// data set was standardised when it was loaded). With `augmentation` (images only), each image
    /// is transformed (keyed by its index) as it is copied.
    public func gather(_ data: LabeledData, indices: UnsafeBufferPointer<Int>, augmentation: Augmentation? = nil) {
        let width = data.width
        precondition(width == architecture.inputWidth && indices.count <= capacity)
        for (row, index) in indices.enumerated() { labels.pointer[row] = Int32(data.labels[index]) }
        guard data.encoding == .bytes else {
            data.features.withUnsafeBufferPointer { f in
                for (row, index) in indices.enumerated() {
                    (input.pointer + row * width).update(from: f.baseAddress! + index * width, count: width)
                }
            }
            return
        }
        data.pixels.withUnsafeBufferPointer { px in
            let (scale, pixels, input) = (Float(1.0 / 255.0), px.baseAddress!, input.pointer)
            parallelFor(indices.count, grain: 1, work: indices.count * width) { part in
                for row in part {
                    // Two samples ahead into the nearest cache (the step before brought them nearer).
                    if row + 2 < part.upperBound { Kernels.prefetch(pixels + indices[row + 2] * width, bytes: width) }
                    let index = indices[row]
                    let (src, dst) = (pixels + index * width, input + row * width)
                    if let augmentation {
                        augmentation.apply(src, rows: data.rows, cols: data.cols, index: index, into: dst)
                    } else {
                        for j in 0..<width { dst[j] = Float(src[j]) * scale }
                    }
                }
            }
        }
    }

    /// Asks for samples `indices` of `data` to be brought into the caches, so that their `gather`
    /// (the next step's) does not wait on memory: a hint, with no effect on any result.
    public func prefetch(_ data: LabeledData, indices: UnsafeBufferPointer<Int>) {
        if data.encoding == .bytes {
            data.pixels.withUnsafeBytes { px in
                for index in indices { Kernels.prefetch(px.baseAddress! + index * data.width, bytes: data.width) }
            }
        } else {
            data.features.withUnsafeBytes { f in
                let bytes = data.width * MemoryLayout<Float>.stride
                for index in indices { Kernels.prefetch(f.baseAddress! + index * bytes, bytes: bytes) }
            }
        }
    }

    /// Hidden block `l`'s BatchNorm input (the ReLU output) from the last forward pass, row-major
    /// [rows × width] for the first `rows` rows (for checks of the statistics).
    public func batchNormInput(_ l: Int, rows: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: blocks[l].a.pointer, count: rows * blocks[l].width)
    }

    /// A checksum of the replica's state (parameters and running statistics), used once per epoch
    /// to verify that all ranks still hold identical copies.
    public func checksum() -> Double {
        var s = 0.0
        for i in 0..<parameters.count { s += Double(parameters.pointer[i]) * Double(1 + i % 7) }
        for i in 0..<runningStats.count { s += Double(runningStats.pointer[i]) * Double(1 + i % 5) }
        return s
    }
}
