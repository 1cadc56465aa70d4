// TrainerRestore: putting a trainer back where a `last` checkpoint left it, after checking that the
// checkpoint fits this trainer's model and data.
//
// The trainer must have been built with the checkpoint's configuration (a resumed run keeps its
// settings; only `epochs` may have been raised). Reading the file is LastCheckpoint's job.

extension Trainer {
    /// Restores the state of `checkpoint` (read from `path`, named in errors).
    public func restore(from checkpoint: LastCheckpoint, path: String) throws {
        let arch = checkpoint.header.architecture
        guard arch == network.architecture else {
            throw TrainerError("\(path): checkpoint is for model \(arch.widthsDescription), the data and flags give \(network.architecture.widthsDescription)")
        }
        let data = checkpoint.sweep.data
        guard data.trainSamples == train.count, data.validationSamples == validation.count else {
            throw TrainerError("\(path): checkpoint was trained on \(data.trainSamples) train / \(data.validationSamples) validation samples, the data gives \(train.count) / \(validation.count)")
        }
        let sweep = checkpoint.sweep
        try sweep.validate(config: config, savedEpochs: checkpoint.header.config.epochs, stepsPerEpoch: stepsPerEpoch, path: path)
        network.load(checkpoint.model)
        adam.m.load(checkpoint.moments.m)
        adam.v.load(checkpoint.moments.v)
        adam.step = sweep.optimizerStep
        position = sweep.position
        history = sweep.history
        diverged = sweep.diverged
        if let record = sweep.best, let state = checkpoint.bestModel {
            best = BestModel(record: record, state: state)
        } else {
            best = nil
        }
    }
}
