// EvaluationReport: what `dist-trainer evaluate --json` prints — one object with the checkpoint's
// scores on a split, per class and overall.

/// The JSON object `evaluate --json` prints.
struct EvaluationReport: Codable, Equatable {
    struct ClassRow: Codable, Equatable {
        var `class`: String
        var precision: Double
        var recall: Double
        var f1: Double
        var support: Int
    }

    var checkpoint: String
    var split: String
    var samples: Int
    var model: String
    var seed: UInt64
    var loss: Double
    var accuracy: Double
    var macroF1: Double
    var perClass: [ClassRow]
    var confusionMatrix: [[Int]]
}
