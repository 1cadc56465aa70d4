// Trainer: the training loop of a learning-rate sweep, written once for any number of ranks.
//
// For each learning rate: fresh parameters (the same initial weights for every rate, broadcast from
// rank 0), then per epoch a seeded permutation of the training split, full global minibatches (the
// remainder is dropped, as the seed does), each rank computing its shard's gradient (with
// `accumulate` K, the mean over K consecutive minibatches), then the data-parallel optimizer step:
// by default ShardedAdam (ZeRO-1: one reduce-scatter of the weight gradients, Adam on this rank's
// part of the parameters, one allgather), with compressed gradients ReplicatedAdam (a 16-bit
// allreduce, the same Adam step on every rank); either way every rank ends the step with the same
// parameters. Then validation in inference mode. The best model by validation macro-F1 across the
// whole sweep is kept, as the seed does.
//
// Every learning rate sees the same initial weights, shuffles and dropout masks (they are keyed by
// seed, epoch and step, not by the rate), so a sweep compares rates and nothing else, and a sweep
// split into one job per rate reproduces the in-process sweep exactly.
//
// Rank 0 alone talks to the observer (console, files, checkpoints) and decides whether to go on;
// it broadcasts that decision so all ranks stop together.
import Collectives
import CoreSupport
import Foundation
import Kernels
import Model

/// A learning-rate sweep in progress: model replica, optimiser state, position and history.
public final class Trainer {
    public let config: TrainingConfig
    public let train: LabeledData
    public let validation: LabeledData
    public let collective: Collective
    public let network: Network
    public let adam: AdamState
    /// Adam across ranks: sharded (ShardedAdam), or replicated after a compressed allreduce.
    let optimizer: DataParallelOptimizer
    public let stepsPerEpoch: Int
    /// Rows of this rank's shard of each global batch.
    public let shard: Range<Int>
    public weak var observer: TrainingObserver?
    /// Polled after every step on every rank; if it returns true on any rank, all ranks stop after
    /// that step together (the vote travels in the step's reduction, so it costs nothing).
    public var stopRequested: () -> Bool = { false }
    /// Save the state within epochs every this many steps of a learning rate's run (0: at epoch
    /// ends only). The same on every rank.
    public var checkpointEvery = 0
    /// Polled with every step; true on any rank (rank 0's timer, say) asks for an in-epoch
    /// checkpoint after that step, taken by every rank together (the vote rides in the step's
    /// reduction like the stop vote).
    public var checkpointRequested: () -> Bool = { false }
    /// When set, every step's time is accounted for by phase (StepProfile; `train --profile`).
    public var profile: StepProfile?

    public internal(set) var position = TrainingPosition()
    /// Every finished epoch, in order.
    public internal(set) var history: [EpochRecord] = []
    public internal(set) var best: BestModel?
    /// Learning-rate indices abandoned because the loss became non-finite.
    public internal(set) var diverged: [Int] = []
    /// The learning rate of the last step (the schedule's value).
    var lastLearningRate = 0.0
    /// Whether some rank asked for an in-epoch checkpoint with the last step (its vote rides in the
    /// reduction of the step's first minibatch).
    var checkpointVoted = false
    /// With `accumulate` K > 1: the sum of the step's reduced minibatch gradients so far, in Double
    /// (this rank's updated part); allocated once, empty without accumulation.
    let accumulatedGradients: Buffer<Double>
    /// Whether the ranks of this node keep one copy of the parameters for all (Collective.sharedCopy).
    let parametersShared: Bool

    /// Rows evaluated at once in inference mode (bounded for memory, large for sgemm efficiency).
    public static let evaluationChunk = 256

    public init(config: TrainingConfig, split: DataSplit, collective: Collective) throws {
        try config.validate()
        try config.validate(trainingSamples: split.train.count, ranks: collective.size)
        self.config = config
        train = split.train
        validation = split.validation
        self.collective = collective
        let arch = config.architecture(inputWidth: split.train.width, classCount: split.train.classCount)
        shard = shardRange(batch: config.batchSize, rank: collective.rank, size: collective.size)
        let largestShard = (config.batchSize + collective.size - 1) / collective.size
        // Ranks sharing a node keep one copy of the parameters (and of their bf16 copy) for all, and
        // share the weight-gradient operands or else read each other's gradients in place (the
        // sharded step only: a compressed allreduce works on copies, and every rank updates every
        // parameter). The gradients stay in a shared window either way: sharing the operands, a rank
        // touches only its part of it, which measured 1.9 MB less peak memory than a private buffer.
        // See Collective.sharedCopy for the rules of writing a shared copy, which `rewriteParameters`
        // keeps.
        let sharing = config.gradientCompression == .none
        let layout = ParameterLayout(arch)
        let count = layout.count
        let sharedGradients = sharing ? try collective.sharedStorage(count: count) : nil
        let sharedParameters = sharing ? try collective.sharedCopy(count: count) : nil
        // bf16 values, two to a Float.
        let sharedWeightCopy = sharing && sharedParameters != nil && config.precision == .bf16
            ? try collective.sharedCopy(count: (count + 1) / 2).map { UnsafeMutableRawPointer($0).bindMemory(to: UInt16.self, capacity: count) } : nil
        parametersShared = sharedParameters != nil
        // With one copy of the parameters, the weight-gradient products' bf16 operands of the whole
        // batch are shared too: each rank computes its part of the gradients from every rank's rows
        // (ShardedAdam.reduce), and no gradient is reduced.
        var sharedOperands: SharedProductOperands?
        if parametersShared && Network.usesBF16Products(precision: config.precision) {
            let (partition, firstRow) = (ShardedAdam.partition(count: count, collective: collective), shard.lowerBound)
            let values = SharedProductOperands.count(layout: layout, partition: partition, rows: config.batchSize)
            sharedOperands = try collective.sharedCopy(count: (values + 1) / 2).map {
                SharedProductOperands(storage: UnsafeMutableRawPointer($0).bindMemory(to: UInt16.self, capacity: values), layout: layout,
                                      partition: partition, rank: collective.rank, rows: config.batchSize, firstRow: firstRow)
            }
        }
        network = Network(architecture: arch, capacity: max(largestShard, Trainer.evaluationChunk), riders: 2, precision: config.precision,
                          gradientStorage: sharedGradients, parameterStorage: sharedParameters, weightCopyStorage: sharedWeightCopy,
                          sharedOperands: sharedOperands)
        adam = AdamState(parameterCount: network.layout.count, variant: config.optimizer)
        optimizer = config.gradientCompression == .none ? ShardedAdam(adam: adam, collective: collective)
            : ReplicatedAdam(adam: adam, compression: config.gradientCompression)
        stepsPerEpoch = split.train.count / config.samplesPerStep
        let accumulating = config.accumulate > 1
        accumulatedGradients = Buffer(count: accumulating ? network.layout.count : 0)
        try startLearningRate()
    }

    /// Fresh parameters and optimiser for the current learning rate, identical on every rank.
    func startLearningRate() throws {
        try rewriteParameters { writes in network.reset(seed: config.seed, parameters: writes) }
        adam.reset()
        let lr = position.lrIndex
        position = TrainingPosition()
        position.lrIndex = lr
    }

    var isRoot: Bool { collective.rank == 0 }

    /// Runs `write`, which sets the parameters (and whatever else it sets) to values every rank
    /// computes alike, told whether this rank writes the parameters. Each rank writes its own
    /// copy; the one copy the ranks of a node share (`parametersShared`) rank 0 alone writes, with
    /// its bf16 copy, between two fences: no rank still reads the old values while it writes, and
    /// every rank sees the new ones after it (the rules of Collective.sharedCopy).
    func rewriteParameters(_ write: (_ writesParameters: Bool) -> Void) throws {
        guard parametersShared else { return write(true) }
        try collective.synchronizeShared()
        write(isRoot)
        if isRoot { network.refreshWeightCopy() }
        try collective.synchronizeShared()
        network.weightCopyWritten()
    }

    // MARK: - The loop

    /// Trains until the sweep is finished, the observer asks to stop, or a stop is requested.
    public func run() throws -> TrainingOutcome {
        while position.lrIndex < config.learningRates.count {
            if position.atStartOfRun { try startRun() }
            while position.epochsDone < config.epochs {
                switch try trainEpoch() {
                case .diverged:
                    diverged.append(position.lrIndex)
                    position.epochsDone = config.epochs
                case .interrupted:
                    try optimizer.gatherMoments(collective: collective)
                    if isRoot { try observer?.interrupted(trainer: self) }
                    try collective.barrier()
                    return .interrupted
                case .finished(let record):
                    try finishEpoch(record)
                    // A stop requested during the epoch's last step ends the run here, after the
                    // observer saved the epoch.
                    if stopVoted { return .interrupted }
                }
            }
            position.lrIndex += 1
            if position.lrIndex < config.learningRates.count { try startLearningRate() }
        }
        return .completed
    }

    /// The first step of a learning rate's run: every rank takes rank 0's initial weights, so a
    /// replica that initialised differently (another library version, say) cannot silently train a
    /// different model.
    func startRun() throws {
        try collective.broadcast(network.parameters.all, root: 0)
        // A rank's own copy may have changed (a shared one was written by rank 0 alone, its bf16 copy with it).
        if !parametersShared { network.parametersChanged() }
        try collective.broadcast(network.runningStats.all, root: 0)
        if isRoot {
            observer?.runStarted(lr: config.learningRates[position.lrIndex], lrIndex: position.lrIndex,
                                 stepsPerEpoch: stepsPerEpoch)
        }
    }

    enum EpochResult {
        case finished(EpochRecord)
        case diverged
        case interrupted
    }

    /// The rest of the current epoch (from `position.stepInEpoch`), then validation.
    func trainEpoch() throws -> EpochResult {
        let epoch = position.epochsDone
        let order = permutation(train.count, key: RandomKey(seed: config.seed, .shuffle).with(epoch))
        let dropoutKey = RandomKey(seed: config.seed, .dropout).with(epoch)
        while position.stepInEpoch < stepsPerEpoch {
            guard try trainStep(order: order, dropoutKey: dropoutKey) else { return .diverged }
            // The reduced vote: some rank was asked to stop. A stop requested during the last step
            // takes effect after this epoch is recorded (see finishEpoch).
            if stopVoted && position.stepInEpoch < stepsPerEpoch { return .interrupted }
            if inEpochCheckpointDue { try saveWithinEpoch() }
        }
        return .finished(try validateEpoch())
    }

    /// One data-parallel step at `position`; false if the loss became non-finite (every rank sees
    /// the same reduced loss, so every rank returns false together).
    func trainStep(order: [Int], dropoutKey: RandomKey) throws -> Bool {
        let (step, epoch, samples) = (position.stepInEpoch, position.epochsDone, config.samplesPerStep)
        let base = config.learningRates[position.lrIndex]
        let lr = config.learningRate(base: base, step: epoch * stepsPerEpoch + step, stepsPerEpoch: stepsPerEpoch)
        collective.noteProgress(lrIndex: position.lrIndex, epoch: epoch + 1, step: step + 1)
        let start = DispatchTime.now().uptimeNanoseconds
        let commBefore = collective.communicationSeconds
        let tally = try computeStepGradients(order: order, dropoutKey: dropoutKey, vote: stopRequested())
        guard tally.lossSum.isFinite else {
            if isRoot { observer?.diverged(lr: base, lrIndex: position.lrIndex, epoch: epoch + 1, step: step + 1) }
            return false
        }
        try timedOptimizer {
            if config.accumulate > 1 {
                try optimizer.update(network, collective: collective, lr: Float(lr), weightDecay: Float(config.weightDecay))
            } else {
                try optimizer.step(network, collective: collective, lr: Float(lr), weightDecay: Float(config.weightDecay))
            }
        }
        profile?.steps += 1
        position.stepInEpoch += 1
        position.epochLossSum += tally.lossSum / Double(samples)
        position.epochAccuracySum += Double(tally.correct) / Double(samples)
        position.epochTrainSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        position.epochCommunicationSeconds += collective.communicationSeconds - commBefore
        lastLearningRate = lr
        if isRoot, let observer {
            observer.stepFinished(StepReport(
                epoch: epoch + 1, step: step + 1, steps: stepsPerEpoch, samplesPerStep: samples, runStep: epoch * stepsPerEpoch + step + 1,
                loss: tally.lossSum / Double(samples), lossSoFar: position.epochLossSum / Double(step + 1), learningRate: lr,
                samplesPerSecond: Double(position.stepInEpoch * samples) / max(position.epochTrainSeconds, 1e-9)))
        }
        return true
    }

    /// The gradients of the step at `position`: one global minibatch's local gradients, ready for
    /// the optimizer's reduction; or with `accumulate` K the mean over K consecutive minibatches
    /// (each normalised by BatchNorm on its own, each with its own dropout masks, numbered as if they
    /// were steps of an unaccumulated run), each reduced as it is computed and averaged in Double in
    /// minibatch order, ready for the optimizer's update. (A minibatch's reduced gradient is exact,
    /// the same on any number of ranks; the rank partials of several minibatches, on grids of their
    /// own, would not add up exactly.) `vote` is this rank's stop vote. Returns the loss and correct
    /// count summed over the step's samples.
    func computeStepGradients(order: [Int], dropoutKey: RandomKey, vote: Bool) throws -> LossTally {
        let (k, batch) = (config.accumulate, config.batchSize)
        let augmentation = config.augmentShift > 0
            ? Augmentation(seed: config.seed, epoch: position.epochsDone, shift: config.augmentShift, flip: config.augmentFlip) : nil
        var total = LossTally(lossSum: 0, correct: 0)
        for micro in 0..<k {
            let minibatch = position.stepInEpoch * k + micro
            timed(.gather) {
                order.withUnsafeBufferPointer { o in
                    let first = minibatch * batch
                    network.gather(train, indices: UnsafeBufferPointer(rebasing: o[(first + shard.lowerBound)..<(first + shard.upperBound)]),
                                   augmentation: augmentation)
                    // The next minibatch's samples, fetched while this one's products run.
                    let next = first + batch
                    if next + batch <= o.count {
                        network.prefetch(train, indices: UnsafeBufferPointer(rebasing: o[(next + shard.lowerBound)..<(next + shard.upperBound)]))
                    }
                }
            }
            let ctx = StepContext(
                globalBatch: batch, firstRow: shard.lowerBound, rows: shard.count, dropoutKey: dropoutKey.with(minibatch),
                keep: Float(1 - config.dropout), batchNormMode: config.batchNorm, labelSmoothing: Float(config.labelSmoothing))
            network.exactSums.pointer[stopVoteSlot] = vote ? 1 : 0
            network.exactSums.pointer[stopVoteSlot + 1] = micro == 0 && checkpointRequested() ? 1 : 0
            let tally = try localGradients(ctx)
            if micro == 0 { checkpointVoted = network.exactSums.pointer[stopVoteSlot + 1] > 0 }
            total.lossSum += tally.lossSum
            total.correct += tally.correct
            if k > 1 {
                try timedOptimizer {
                    try optimizer.reduce(network, collective: collective)
                    accumulate(minibatch: micro, of: k)
                }
            }
        }
        return total
    }

    /// Adds minibatch `micro` (of `k`), just reduced, to the step's sum; after the last one leaves
    /// their mean in this rank's part of the gradient buffer, where the optimizer's update reads it.
    func accumulate(minibatch micro: Int, of k: Int) {
        let (g, acc, range) = (network.gradients.pointer, accumulatedGradients.pointer, optimizer.updatedRange)
        if micro == 0 {
            for i in range { acc[i] = Double(g[i]) }
        } else {
            for i in range { acc[i] += Double(g[i]) }
        }
        if micro == k - 1 {
            let inverse = 1 / Double(k)
            for i in range { g[i] = Float(acc[i] * inverse) }
        }
    }

    /// Validation after the epoch's last step, and the epoch's record.
    func validateEpoch() throws -> EpochRecord {
        let valStart = DispatchTime.now().uptimeNanoseconds
        let val = try evaluate(network, on: validation, collective: collective)
        let valSeconds = Double(DispatchTime.now().uptimeNanoseconds - valStart) / 1e9
        try verifyReplicasAgree()
        let straggler = try findStraggler()
        let steps = Double(max(stepsPerEpoch, 1))
        return EpochRecord(
            lr: config.learningRates[position.lrIndex], lrIndex: position.lrIndex, epoch: position.epochsDone + 1,
            trainLoss: position.epochLossSum / steps, trainAccuracy: position.epochAccuracySum / steps,
            valLoss: val.loss, valAccuracy: val.accuracy, valMacroF1: val.macroF1,
            trainSeconds: position.epochTrainSeconds, valSeconds: valSeconds,
            communicationSeconds: position.epochCommunicationSeconds,
            slowestRank: straggler.rank, computeSecondsMin: straggler.min, computeSecondsMax: straggler.max,
            lrLast: config.lrSchedule == .constant && config.warmupEpochs == 0 ? nil : lastLearningRate)
    }

    /// Every rank's time outside collectives this epoch, compared: the slowest rank (the one the
    /// others wait for in every step's reduction) and the least and most compute time.
    func findStraggler() throws -> (rank: Int, min: Double, max: Double) {
        let seconds = Buffer<Double>(count: collective.size)
        seconds.pointer[collective.rank] = position.epochTrainSeconds - position.epochCommunicationSeconds
        try collective.allreduceSum(seconds.all)
        let all = Array(seconds.all)
        let slowest = all.indices.max { all[$0] < all[$1] } ?? 0
        return (slowest, all.min() ?? 0, all[slowest])
    }

    /// Records the epoch, updates the best model, and agrees with rank 0 on whether to go on: rank 0
    /// decides early stopping and asks its observer (which saves the state), then broadcasts.
    func finishEpoch(_ record: EpochRecord) throws {
        let lrIndex = position.lrIndex
        position = TrainingPosition()
        position.lrIndex = lrIndex
        position.epochsDone = record.epoch
        history.append(record)
        // Strictly greater, as the seed: the first model to reach a score keeps it.
        let isBest = record.valMacroF1 > (best?.record.valMacroF1 ?? 0)
        if isBest { best = BestModel(record: record, state: network.state) }
        // Every rank's moments are current only in its own part; rank 0 checkpoints all of them.
        try optimizer.gatherMoments(collective: collective)
        var decision = EpochDecision.proceed
        if isRoot {
            if earlyStoppingDue() { endRunEarly() }
            if let observer { decision = try observer.epochFinished(history[history.count - 1], isBest: isBest, trainer: self) }
            if decision == .proceed && history.last?.earlyStopped == true { decision = .endLearningRate }
        }
        decision = try collective.broadcast(decision, root: 0)
        if decision == .endLearningRate && !isRoot { endRunEarly() }
    }

    /// Whether validation macro-F1 has not improved for `config.earlyStopping` epochs of this run.
    func earlyStoppingDue() -> Bool {
        guard config.earlyStopping > 0 else { return false }
        let run = history.filter { $0.lrIndex == position.lrIndex }
        guard let bestEpoch = run.max(by: { $0.valMacroF1 < $1.valMacroF1 || ($0.valMacroF1 == $1.valMacroF1 && $0.epoch > $1.epoch) })?.epoch else {
            return false
        }
        return position.epochsDone - bestEpoch >= config.earlyStopping && position.epochsDone < config.epochs
    }

    /// Marks the last epoch as the one that stopped this learning rate's run, and ends the run.
    func endRunEarly() {
        history[history.count - 1].earlyStopped = true
        position.epochsDone = config.epochs
    }

    // MARK: - The stop vote

    /// The slot of the step's Double reduction that carries the stop vote: each rank writes 1 if it
    /// was asked to stop, and after the reduction every rank sees the sum.
    var stopVoteSlot: Int { network.exactLayout.riders.lowerBound }

    /// Whether any rank voted to stop in the last step.
    var stopVoted: Bool { network.exactSums.pointer[stopVoteSlot] > 0 }

    // MARK: - Checkpoints within an epoch

    /// After a step that is not the epoch's last (whose checkpoint comes with the epoch's record):
    /// every `checkpointEvery` steps of the run, or when a rank asked (its vote rode in the step's
    /// last reduction, so every rank sees the same sum). Every rank decides the same.
    var inEpochCheckpointDue: Bool {
        guard position.stepInEpoch < stepsPerEpoch else { return false }
        let runStep = position.epochsDone * stepsPerEpoch + position.stepInEpoch
        return (checkpointEvery > 0 && runStep % checkpointEvery == 0) || checkpointVoted
    }

    /// Gathers the optimizer's moments (a collective) and lets rank 0's observer save the state,
    /// which is complete and consistent after a step: a resume from it continues bit for bit.
    func saveWithinEpoch() throws {
        try optimizer.gatherMoments(collective: collective)
        if isRoot { try observer?.checkpointDue(trainer: self) }
    }

    // MARK: - Checks

    /// Fails loudly if the ranks' parameters or running statistics have drifted apart (they are
    /// updated identically, so any difference is a bug or a broken reduction).
    func verifyReplicasAgree() throws {
        guard collective.size > 1 else { return }
        let sum = network.checksum()
        let (lo, hi) = try collective.allreduceMinMax(sum)
        if lo != hi {
            throw TrainerError("replicas diverged after epoch \(position.epochsDone + 1) of lr \(config.learningRates[position.lrIndex]): parameter checksums range from \(lo) to \(hi) across ranks")
        }
    }

    // MARK: - Final evaluation

    /// Loads the best model into the network (no-op if there is none; collective).
    public func loadBest() throws {
        guard let best else { return }
        try rewriteParameters { writes in network.load(best.state, parameters: writes) }
    }

    /// Evaluates the best model on `images` (collective).
    public func evaluateBest(on images: LabeledData) throws -> Evaluation {
        try loadBest()
        return try evaluate(network, on: images, collective: collective)
    }
}
