// TrainingSnapshot: a trainer's whole state as plain values — what a `last` checkpoint stores and
// a resume restores — and the checks a snapshot read from a file must pass before it is used.
//
// Taken by `Trainer.snapshot()` as a copy, so training can go on changing the live network while
// the copy is written; put back by `Trainer.restore(from:path:)`. Nothing here knows about files:
// how a snapshot is laid out in safetensors is Formats/Checkpoint.swift.
import CoreSupport
import Model

/// Everything a trainer holds that a resume needs: settings, model, optimizer and sweep state.
public struct TrainingSnapshot: Sendable {
    public var config: TrainingConfig
    public var architecture: Architecture
    /// The live model (parameters and running statistics).
    public var model: ModelState
    /// Adam's moments, current on every rank (the trainer gathers them before a snapshot).
    public var moments: AdamMoments
    public var sweep: SweepState
    /// The best model so far; its epoch record is `sweep.best`.
    public var bestModel: ModelState?
    /// The bounds of the exact sums (Network.sumBounds): the next step's grids depend on them.
    public var sumBounds: [Float]

    public init(config: TrainingConfig, architecture: Architecture, model: ModelState, moments: AdamMoments,
                sweep: SweepState, bestModel: ModelState?, sumBounds: [Float]) {
        self.config = config
        self.architecture = architecture
        self.model = model
        self.moments = moments
        self.sweep = sweep
        self.bestModel = bestModel
        self.sumBounds = sumBounds
    }
}

/// Adam's first and second moments, flat in ParameterLayout order.
public struct AdamMoments: Equatable, Sendable {
    public var m: [Float]
    public var v: [Float]

    public init(m: [Float], v: [Float]) {
        self.m = m
        self.v = v
    }
}

/// The shape of the data a run trained on, recorded so a resume can refuse different data.
public struct DataShape: Codable, Equatable, Sendable {
    public var trainSamples: Int
    public var validationSamples: Int
    public var inputWidth: Int

    public init(trainSamples: Int, validationSamples: Int, inputWidth: Int) {
        self.trainSamples = trainSamples
        self.validationSamples = validationSamples
        self.inputWidth = inputWidth
    }
}

/// Where a sweep stands, as a `last` checkpoint records it (everything but tensors).
public struct SweepState: Equatable, Sendable {
    public var position: TrainingPosition
    /// Adam's update count.
    public var optimizerStep: Int
    /// Every finished epoch.
    public var history: [EpochRecord]
    /// The epoch of the best model so far (its tensors are stored under `best.`).
    public var best: EpochRecord?
    /// Abandoned learning-rate indices.
    public var diverged: [Int]
    public var data: DataShape

    public init(position: TrainingPosition, optimizerStep: Int, history: [EpochRecord], best: EpochRecord?,
                diverged: [Int], data: DataShape) {
        self.position = position
        self.optimizerStep = optimizerStep
        self.history = history
        self.best = best
        self.diverged = diverged
        self.data = data
    }
}

extension SweepState {
    /// Checks every position, index and count against the configuration the run is resumed with
    /// (a checkpoint is a file, and a file can say anything); one line naming `path` otherwise.
    public func validate(config: TrainingConfig, savedEpochs: Int, stepsPerEpoch: Int, path: String) throws {
        func bad(_ what: String) -> TrainerError { TrainerError("\(path): checkpoint \(what)") }
        let rates = config.learningRates.count
        let p = position
        guard (0...rates).contains(p.lrIndex) else { throw bad("position is at learning rate index \(p.lrIndex), expected 0...\(rates)") }
        guard (0...savedEpochs).contains(p.epochsDone) else { throw bad("position has \(p.epochsDone) epochs done, expected 0...\(savedEpochs)") }
        guard (0..<max(stepsPerEpoch, 1)).contains(p.stepInEpoch) else {
            throw bad("position is at step \(p.stepInEpoch) of an epoch, expected 0..<\(stepsPerEpoch)")
        }
        for (name, value) in [("loss sum", p.epochLossSum), ("accuracy sum", p.epochAccuracySum), ("train seconds", p.epochTrainSeconds),
                              ("communication seconds", p.epochCommunicationSeconds)] where !(value.isFinite && value >= 0) {
            throw bad("position's \(name) is \(value), expected a finite value ≥ 0")
        }
        guard optimizerStep >= 0, optimizerStep <= savedEpochs * max(stepsPerEpoch, 1) + 1 else {
            throw bad("optimizer step count is \(optimizerStep), expected 0...\(savedEpochs * max(stepsPerEpoch, 1))")
        }
        guard Set(diverged).count == diverged.count, diverged.allSatisfy({ (0..<rates).contains($0) && $0 <= p.lrIndex }) else {
            throw bad("lists abandoned learning rates \(diverged), expected distinct indices below \(min(p.lrIndex + 1, rates))")
        }
        for r in history + (best.map { [$0] } ?? []) {
            guard (0..<rates).contains(r.lrIndex), (1...savedEpochs).contains(r.epoch),
                  [r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy, r.valMacroF1].allSatisfy({ !$0.isNaN }) else {
                throw bad("history has an impossible epoch record (learning rate index \(r.lrIndex), epoch \(r.epoch))")
            }
        }
    }
}
