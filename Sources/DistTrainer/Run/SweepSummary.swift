// SweepSummary: the files `summarize` writes into a sweep directory — summary.json (the global best
// and its test evaluation) and one comparison row per run (comparison.md, comparison.csv).

/// The contents of a sweep directory's summary.json.
struct SweepSummary: Codable, Equatable {
    var bestRun: String
    var bestLr: Double
    var bestEpoch: Int
    var bestValMacroF1: Double
    var runs: Int
    var completeRuns: Int
    var test: EvaluationSummary
    /// The copied best model, relative to the sweep directory.
    var checkpoint: String
}

/// One run directory of a sweep, as the comparison table shows it.
struct SweepRow: Equatable {
    var name: String
    var config: RunConfigFile?
    /// Nil for a run that failed or has not finished.
    var summary: RunSummary?

    var complete: Bool { summary != nil }
    var model: String { config?.record.widths ?? "" }
    var batch: String { config.map { String($0.settings.batchSize) } ?? "" }
    var learningRates: String { config?.settings.learningRates.map { String($0) }.joined(separator: " ") ?? "" }
    var valMacroF1: Double { summary?.best.valMacroF1 ?? 0 }
}
