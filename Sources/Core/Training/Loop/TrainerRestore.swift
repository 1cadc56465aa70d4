// TrainerRestore: a trainer's state as a plain snapshot, and putting a trainer back where a
// snapshot left it after checking that the snapshot fits this trainer's model and data.
//
// The trainer must have been built with the snapshot's configuration (a resumed run keeps its
// settings; only `epochs` may have been raised). Reading a checkpoint file into a snapshot is
// Formats' job (LastCheckpoint).
import CoreSupport
import Kernels
import Model

extension Trainer {
    /// A copy of the whole state. Adam's moments are current on every rank only after a gather,
    /// which the trainer does before every observer call that may save (`epochFinished`,
    /// `interrupted`); a snapshot taken elsewhere holds only this rank's part of them current.
    public func snapshot() -> TrainingSnapshot {
        snapshot(model: network.state, moments: AdamMoments(m: adam.m.array, v: adam.v.array))
    }

    /// A snapshot around copies of the model and moments already taken.
    func snapshot(model: ModelState, moments: AdamMoments) -> TrainingSnapshot {
        let sweep = SweepState(
            position: position, optimizerStep: adam.step, history: history, best: best?.record, diverged: diverged,
            data: DataShape(trainSamples: train.count, validationSamples: validation.count, inputWidth: train.width))
        return TrainingSnapshot(config: config, architecture: network.architecture, model: model, moments: moments, sweep: sweep,
                                bestModel: best?.state, sumBounds: network.sumBounds)
    }

    /// The same as `snapshot()`, written into `recycled`'s arrays when they have the sizes (an
    /// earlier snapshot nothing else holds any more: its memory is reused in place, so that frequent
    /// snapshots within epochs allocate nothing and fault in no fresh pages).
    public func snapshot(reusing recycled: inout TrainingSnapshot?) -> TrainingSnapshot {
        // Taken out of the optional, so that this is its only reference and its arrays are written
        // in place (a second reference would make the first write copy them).
        guard var s = recycled.take(), s.model.parameters.count == network.parameters.count,
              s.model.runningStats.count == network.runningStats.count, s.moments.m.count == adam.m.count else { return snapshot() }
        func copy(_ source: Buffer<Float>, into target: inout [Float]) {
            target.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: source.pointer, count: source.count) }
        }
        copy(network.parameters, into: &s.model.parameters)
        copy(network.runningStats, into: &s.model.runningStats)
        copy(adam.m, into: &s.moments.m)
        copy(adam.v, into: &s.moments.v)
        let fresh = snapshot(model: s.model, moments: s.moments)
        return fresh
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
        try rewriteParameters { writes in network.load(snapshot.model, parameters: writes) }
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
