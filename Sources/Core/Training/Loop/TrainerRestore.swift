// TrainerRestore: a trainer's state as a plain snapshot, and putting a trainer back where a
// snapshot left it after checking that the snapshot fits this trainer's model and data.
//
// The trainer must have been built with the snapshot's configuration (a resumed run keeps its
// settings; only `epochs` may have been raised). Reading a checkpoint file into a snapshot is
// Formats' job (LastCheckpoint).
import CoreSupport

extension Trainer {
    /// A copy of the whole state. Adam's moments are current on every rank only after a gather,
    /// which the trainer does before every observer call that may save (`epochFinished`,
    /// `interrupted`); a snapshot taken elsewhere holds only this rank's part of them current.
    public func snapshot() -> TrainingSnapshot {
        let sweep = SweepState(
            position: position, optimizerStep: adam.step, history: history, best: best?.record, diverged: diverged,
            data: DataShape(trainSamples: train.count, validationSamples: validation.count, inputWidth: train.width))
        return TrainingSnapshot(config: config, architecture: network.architecture, model: network.state,
                                moments: AdamMoments(m: adam.m.array, v: adam.v.array), sweep: sweep, bestModel: best?.state,
                                sumBounds: network.sumBounds)
    }

    /// Restores `snapshot` (read from `path`, named in errors).
    public func restore(from snapshot: TrainingSnapshot, path: String) throws {
        let arch = snapshot.architecture
        guard arch == network.architecture else {
            throw TrainerError("\(path): checkpoint is for model \(arch.widthsDescription), the data and flags give \(network.architecture.widthsDescription)")
        }
        let sweep = snapshot.sweep
        guard sweep.data.trainSamples == train.count, sweep.data.validationSamples == validation.count else {
            throw TrainerError("\(path): checkpoint was trained on \(sweep.data.trainSamples) train / \(sweep.data.validationSamples) validation samples, the data gives \(train.count) / \(validation.count)")
        }
        try sweep.validate(config: config, savedEpochs: snapshot.config.epochs, stepsPerEpoch: stepsPerEpoch, path: path)
        network.load(snapshot.model)
        network.sumBounds = snapshot.sumBounds
        adam.m.load(snapshot.moments.m)
        adam.v.load(snapshot.moments.v)
        adam.step = sweep.optimizerStep
        position = sweep.position
        history = sweep.history
        diverged = sweep.diverged
        if let record = sweep.best, let state = snapshot.bestModel {
            best = BestModel(record: record, state: state)
        } else {
            best = nil
        }
    }
}
