// RunSummary: summary.json, the result of a finished run — the best model, its validation and test
// evaluation, timing and memory.
//
// Written by `train` at the end of a run; read by `summarize`, the sweep scripts and the tests.
// Field names on disk are snake case (JSONCoding) and stable.
import Collectives
import Formats
import Training

/// The contents of summary.json.
struct RunSummary: Codable, Equatable {
    /// Where the best model was found.
    struct Best: Codable, Equatable {
        var lr: Double
        var epoch: Int
        var valMacroF1: Double
        var valAccuracy: Double
        var valLoss: Double

        init(_ r: EpochRecord) {
            lr = r.lr
            epoch = r.epoch
            valMacroF1 = r.valMacroF1
            valAccuracy = r.valAccuracy
            valLoss = r.valLoss
        }
    }

    /// Peak resident memory per rank, in MB.
    struct Memory: Codable, Equatable {
        var minOverRanks: Double
        var maxOverRanks: Double
    }

    var best: Best
    var validation: EvaluationSummary
    var test: EvaluationSummary
    var epochSecondsMedian: Double
    var divergedLrs: [Double]
    var ranks: Int
    var peakRssMb: Memory
    /// Rank 0's collectives over the whole run: calls and seconds per kind (empty for one process).
    var collectives: [String: OperationTotal]?
    /// The learning rates whose runs early stopping ended, and after which epoch.
    var earlyStopped: [EarlyStop]?
    /// How many of the step's exact sums this process redid on a grid from their own maximum
    /// (ExactSum.swift: every run's first step, then rarely; a resumed run counts from the resume).
    var exactSumRedos: Int?
    /// Checkpoints this process wrote within epochs (`--checkpoint-every`, `--checkpoint-interval`),
    /// and the seconds training waited for the background writer (a slow disk shows here).
    var checkpointsWithinEpochs: Int?
    var checkpointWaitSeconds: Double?
    /// The elastic restarts this run went through (scripts/train.sh's records in restarts.jsonl).
    var restarts: [RestartRecord]?
    /// With `--profile`: rank 0's milliseconds per step by phase (StepProfile), and their total.
    var stepProfile: [String: Double]?
    /// Rank 0's MPI shared-memory transport parameters as MPI reports them, such as the eager limit
    /// dist-trainer raises unless the environment sets it (MPICollective); nil for one process.
    var mpiTransport: [String: Int]?

    struct EarlyStop: Codable, Equatable {
        var lr: Double
        var epoch: Int
    }
}

/// One restart of an elastic job, as scripts/elastic.sh records it in the run directory's
/// restarts.jsonl (one JSON object per line).
struct RestartRecord: Codable, Equatable {
    var restart: Int
    var maxRestarts: Int
    /// The failed attempt's exit status, the hosts that no longer answered, and those restarted on.
    var exitStatus: Int
    var lostHosts: [String]
    var hosts: [String]
    var ranks: Int
    /// Where the restart resumed: learning rate index, epochs done, steps into the epoch, checkpoint.
    var resumeLrIndex: Int
    var resumeEpochsDone: Int
    var resumeStepInEpoch: Int
    var resumeCheckpoint: String
    /// Steps trained since that checkpoint and lost (nil when no rank said where it was).
    var stepsLost: Int?
    /// From the failed attempt's end to the relaunch (the probes and the resume point).
    var secondsToRelaunch: Double

    /// The records of `path` (restarts.jsonl); none when it does not exist; a line that does not
    /// parse is skipped (the file is the script's, and a summary must still be written).
    static func read(_ path: String) -> [RestartRecord] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONCoding.decode(RestartRecord.self, from: Array($0.utf8), what: path) }
    }
}

/// A model's loss, accuracy, macro-F1 and confusion matrix on one split, as the run files store it.
struct EvaluationSummary: Codable, Equatable {
    var loss: Double
    var accuracy: Double
    var macroF1: Double
    /// Rows = true class, columns = predicted class.
    var confusionMatrix: [[Int]]

    init(_ e: Evaluation) {
        loss = e.loss
        accuracy = e.accuracy
        macroF1 = e.macroF1
        confusionMatrix = e.confusion.counts
    }
}
