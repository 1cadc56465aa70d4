// Trainer: the training loop of a learning-rate sweep, written once for any number of ranks.
//
// For each learning rate: fresh parameters (the same initial weights for every rate, broadcast from
// rank 0), then per epoch a seeded permutation of the training split, full global minibatches (the
// remainder is dropped, as the seed does), each rank computing its shard's gradient, one fused
// allreduce, the identical Adam step on every rank; then validation in inference mode. The best
// model by validation macro-F1 across the whole sweep is kept, as the seed does.
//
// Every learning rate sees the same initial weights, shuffles and dropout masks (they are keyed by
// seed, epoch and step, not by the rate), so a sweep compares rates and nothing else, and a sweep
// split into one job per rate reproduces the in-process sweep exactly.
//
// Rank 0 alone talks to the observer (console, files, checkpoints) and decides whether to go on;
// it broadcasts that decision so all ranks stop together.
import Foundation

/// The metrics of one epoch of one learning rate (one row of metrics.csv).
public struct EpochRecord: Codable, Equatable, Sendable {
    public var lr: Double
    /// Position of `lr` in the sweep.
    public var lrIndex: Int
    /// 1-based epoch number.
    public var epoch: Int
    /// Mean over the epoch's steps of the training-mode batch loss and accuracy (as the seed).
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var valLoss: Double
    public var valAccuracy: Double
    public var valMacroF1: Double
    /// Wall time of the epoch's training steps (not validation).
    public var trainSeconds: Double
    /// Wall time of the validation pass.
    public var valSeconds: Double
    /// Part of `trainSeconds` spent in collectives on this rank.
    public var communicationSeconds: Double
}

/// The best model so far: where it was found and a copy of its state.
public struct BestModel: Sendable {
    public var record: EpochRecord
    public var parameters: [Float]
    public var runningStats: [Float]
}

/// What rank 0 is told while training runs. Only rank 0 has an observer.
public protocol TrainingObserver: AnyObject {
    /// A learning rate's run starts (fresh parameters).
    func runStarted(lr: Double, lrIndex: Int, stepsPerEpoch: Int)
    /// A step finished; `lossSoFar` is the running mean of this epoch's batch losses.
    func stepFinished(epoch: Int, step: Int, steps: Int, lossSoFar: Double, samplesPerSecond: Double)
    /// An epoch finished; `isBest` says it set a new best validation macro-F1 (its model is `trainer.best`).
    /// Return false to stop training after this epoch.
    func epochFinished(_ record: EpochRecord, isBest: Bool, trainer: Trainer) throws -> Bool
    /// The loss became non-finite; this learning rate's run is abandoned and the sweep goes on.
    func diverged(lr: Double, lrIndex: Int, epoch: Int, step: Int)
    /// Training stopped mid-epoch because a stop was requested (a signal); the trainer's state is
    /// complete and consistent, so a checkpoint written now resumes exactly.
    func interrupted(trainer: Trainer) throws
}

/// Why `Trainer.run` returned.
public enum TrainingOutcome: Equatable, Sendable {
    case completed
    /// The observer asked to stop at the end of an epoch.
    case stopped
    /// A stop was requested (on some rank) and training stopped after the current step.
    case interrupted
}

/// Where a sweep stands: everything besides tensors that a checkpoint needs to resume exactly.
public struct TrainingPosition: Codable, Equatable, Sendable {
    /// The learning rate being trained.
    public var lrIndex = 0
    /// Finished epochs of that learning rate.
    public var epochsDone = 0
    /// Finished steps of the epoch in progress, and its running sums (non-zero only when a run
    /// was interrupted mid-epoch).
    public var stepInEpoch = 0
    public var epochLossSum = 0.0
    public var epochAccuracySum = 0.0
    public var epochTrainSeconds = 0.0
    public var epochCommunicationSeconds = 0.0

    public init() {}

    /// True at the very start of a learning rate's run (fresh weights to be broadcast).
    public var atStartOfRun: Bool { epochsDone == 0 && stepInEpoch == 0 }
}

/// A learning-rate sweep in progress: model replica, optimiser state, position and history.
public final class Trainer {
    public let config: TrainingConfig
    public let train: LabeledImages
    public let validation: LabeledImages
    public let collective: Collective
    public let network: Network
    public let adam: AdamState
    /// Adam with its work split across ranks (see ShardedAdam).
    let optimizer: ShardedAdam
    public let stepsPerEpoch: Int
    /// Rows of this rank's shard of each global batch.
    public let shard: Range<Int>
    public weak var observer: TrainingObserver?
    /// Polled after every step on every rank; if it returns true on any rank, all ranks stop after
    /// that step together (the vote travels in the step's reduction, so it costs nothing).
    public var stopRequested: () -> Bool = { false }

    public internal(set) var position = TrainingPosition()
    /// Every finished epoch, in order.
    public internal(set) var history: [EpochRecord] = []
    public internal(set) var best: BestModel?
    /// Learning-rate indices abandoned because the loss became non-finite.
    public internal(set) var diverged: [Int] = []

    /// Rows evaluated at once in inference mode (bounded for memory, large for sgemm efficiency).
    public static let evaluationChunk = 256

    public init(config: TrainingConfig, split: DataSplit, collective: Collective) throws {
        try config.validate()
        try config.validate(trainingSamples: split.train.count, ranks: collective.size)
        self.config = config
        train = split.train
        validation = split.validation
        self.collective = collective
        let arch = config.architecture(inputWidth: split.train.width, classCount: 10)
        shard = shardRange(batch: config.batchSize, rank: collective.rank, size: collective.size)
        let largestShard = (config.batchSize + collective.size - 1) / collective.size
        network = Network(architecture: arch, capacity: max(largestShard, Trainer.evaluationChunk))
        adam = AdamState(parameterCount: network.layout.count, variant: config.optimizer)
        optimizer = ShardedAdam(adam: adam, collective: collective)
        stepsPerEpoch = split.train.count / config.batchSize
        startLearningRate()
    }

    /// Fresh parameters and optimiser for the current learning rate, identical on every rank.
    func startLearningRate() {
        network.reset(seed: config.seed)
        adam.reset()
        let lr = position.lrIndex
        position = TrainingPosition()
        position.lrIndex = lr
    }

    var isRoot: Bool { collective.rank == 0 }

    // MARK: - The loop

    /// Trains until the sweep is finished, the observer asks to stop, or a stop is requested.
    public func run() throws -> TrainingOutcome {
        while position.lrIndex < config.learningRates.count {
            if position.atStartOfRun {
                // Rank 0's initial weights are the job's: a replica that initialised differently
                // (another library version, say) cannot silently train a different model.
                try collective.broadcast(network.parameters.all, root: 0)
                try collective.broadcast(network.runningStats.all, root: 0)
                if isRoot {
                    observer?.runStarted(lr: config.learningRates[position.lrIndex], lrIndex: position.lrIndex,
                                         stepsPerEpoch: stepsPerEpoch)
                }
            }
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
                    if try !finishEpoch(record) { return .stopped }
                }
            }
            position.lrIndex += 1
            if position.lrIndex < config.learningRates.count { startLearningRate() }
        }
        return .completed
    }

    enum EpochResult {
        case finished(EpochRecord)
        case diverged
        case interrupted
    }

    /// The rest of the current epoch (from `position.stepInEpoch`), then validation.
    func trainEpoch() throws -> EpochResult {
        let lr = config.learningRates[position.lrIndex]
        let epoch = position.epochsDone
        let batch = config.batchSize
        let order = permutation(train.count, key: RandomKey(seed: config.seed, .shuffle).with(epoch))
        let dropoutKey = RandomKey(seed: config.seed, .dropout).with(epoch)
        let control = network.exactSums.pointer + network.exactLayout.control
        while position.stepInEpoch < stepsPerEpoch {
            let step = position.stepInEpoch
            collective.noteProgress(lrIndex: position.lrIndex, epoch: epoch + 1, step: step + 1)
            let start = DispatchTime.now().uptimeNanoseconds
            let commBefore = collective.communicationSeconds
            order.withUnsafeBufferPointer { o in
                let base = step * batch
                network.gather(train, indices: UnsafeBufferPointer(rebasing: o[(base + shard.lowerBound)..<(base + shard.upperBound)]))
            }
            let ctx = StepContext(
                globalBatch: batch, firstRow: shard.lowerBound, rows: shard.count,
                dropoutKey: dropoutKey.with(step), keep: Float(1 - config.dropout), batchNormMode: config.batchNorm)
            control.pointee = stopRequested() ? 1 : 0
            let tally = try network.computeLocalGradients(ctx, collective: collective)
            // Every rank sees the same reduced loss, so every rank takes this branch together.
            guard tally.lossSum.isFinite else {
                if isRoot { observer?.diverged(lr: lr, lrIndex: position.lrIndex, epoch: epoch + 1, step: step + 1) }
                return .diverged
            }
            try optimizer.step(network, collective: collective, lr: Float(lr))
            position.stepInEpoch += 1
            position.epochLossSum += tally.lossSum / Double(batch)
            position.epochAccuracySum += Double(tally.correct) / Double(batch)
            position.epochTrainSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            position.epochCommunicationSeconds += collective.communicationSeconds - commBefore
            if isRoot, let observer {
                observer.stepFinished(epoch: epoch + 1, step: step + 1, steps: stepsPerEpoch,
                                      lossSoFar: position.epochLossSum / Double(step + 1),
                                      samplesPerSecond: Double(position.stepInEpoch * batch) / max(position.epochTrainSeconds, 1e-9))
            }
            // The reduced vote: some rank was asked to stop.
            if control.pointee > 0 && position.stepInEpoch < stepsPerEpoch { return .interrupted }
        }
        let valStart = DispatchTime.now().uptimeNanoseconds
        let val = try evaluate(network, on: validation, collective: collective)
        let valSeconds = Double(DispatchTime.now().uptimeNanoseconds - valStart) / 1e9
        try verifyReplicasAgree()
        let steps = Double(max(stepsPerEpoch, 1))
        let record = EpochRecord(
            lr: lr, lrIndex: position.lrIndex, epoch: epoch + 1,
            trainLoss: position.epochLossSum / steps, trainAccuracy: position.epochAccuracySum / steps,
            valLoss: val.loss, valAccuracy: val.accuracy, valMacroF1: val.macroF1,
            trainSeconds: position.epochTrainSeconds, valSeconds: valSeconds,
            communicationSeconds: position.epochCommunicationSeconds)
        // A stop requested during the last step takes effect after this epoch is recorded.
        return .finished(record)
    }

    /// Records the epoch, updates the best model, and lets rank 0 decide whether to continue.
    func finishEpoch(_ record: EpochRecord) throws -> Bool {
        let lrIndex = position.lrIndex
        position = TrainingPosition()
        position.lrIndex = lrIndex
        position.epochsDone = record.epoch
        history.append(record)
        // Strictly greater, as the seed: the first model to reach a score keeps it.
        let isBest = record.valMacroF1 > (best?.record.valMacroF1 ?? 0)
        if isBest {
            best = BestModel(record: record, parameters: network.parameters.array, runningStats: network.runningStats.array)
        }
        // Every rank's moments are current only in its own part; rank 0 checkpoints all of them.
        try optimizer.gatherMoments(collective: collective)
        // A stop requested during the epoch's last step ends the run here, after the checkpoint.
        let stopVoted = network.exactSums.pointer[network.exactLayout.control] > 0
        var decision: [UInt8] = [1]
        if isRoot, let observer {
            decision = [try observer.epochFinished(record, isBest: isBest, trainer: self) ? 1 : 0]
        }
        try collective.broadcast(&decision, root: 0)
        return decision == [1] && !stopVoted
    }

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

    /// Loads the best model into the network (no-op if there is none).
    public func loadBest() {
        guard let best else { return }
        network.load(parameters: best.parameters, runningStats: best.runningStats)
    }

    /// Evaluates the best model on `images` (collective).
    public func evaluateBest(on images: LabeledImages) throws -> Evaluation {
        loadBest()
        return try evaluate(network, on: images, collective: collective)
    }
}

extension Collective {
    /// Seconds spent inside collectives so far (0 when not measured).
    public var communicationSeconds: Double { (self as? CommunicationTiming)?.secondsInCollectives ?? 0 }
}

/// A collective that measures the time spent in its operations.
public protocol CommunicationTiming {
    var secondsInCollectives: Double { get }
}
