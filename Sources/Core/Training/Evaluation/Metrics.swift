// Metrics: confusion matrix, accuracy, per-class precision/recall/F1 and macro-F1.
//
// Definitions follow scikit-learn's, which the seed uses: confusion[t][p] counts samples of true
// class t predicted as p; a class's F1 is 2·tp / (2·tp + fp + fn), 0 when that is 0/0; macro-F1 is
// the unweighted mean over the classes that occur among the true or the predicted labels
// (sklearn's `labels=None`), so a class absent from both does not count and a class that is
// present but never predicted counts as 0.

/// A classification result: the confusion matrix and everything derived from it.
public struct ConfusionMatrix: Codable, Equatable, Sendable {
    /// counts[t][p]: samples of true class t predicted as class p.
    public var counts: [[Int]]

    public init(classes: Int) { counts = Array(repeating: Array(repeating: 0, count: classes), count: classes) }

    public init(counts: [[Int]]) { self.counts = counts }

    /// Builds the matrix from parallel arrays of true and predicted labels.
    public init(truth: [Int], predicted: [Int], classes: Int) {
        precondition(truth.count == predicted.count)
        self.init(classes: classes)
        for (t, p) in zip(truth, predicted) { counts[t][p] += 1 }
    }

    public var classes: Int { counts.count }
    public var total: Int { counts.reduce(0) { $0 + $1.reduce(0, +) } }
    public var correct: Int { (0..<classes).reduce(0) { $0 + counts[$1][$1] } }

    /// Fraction of samples on the diagonal (0 for an empty matrix).
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }

    /// Per-class precision, recall, F1 and support (number of true samples).
    public func perClass() -> [ClassScores] {
        (0..<classes).map { c in
            let tp = counts[c][c]
            let support = counts[c].reduce(0, +)
            let predicted = (0..<classes).reduce(0) { $0 + counts[$1][c] }
            let precision = predicted == 0 ? 0 : Double(tp) / Double(predicted)
            let recall = support == 0 ? 0 : Double(tp) / Double(support)
            let denominator = support + predicted  // = 2·tp + fp + fn
            let f1 = denominator == 0 ? 0 : 2 * Double(tp) / Double(denominator)
            return ClassScores(precision: precision, recall: recall, f1: f1, support: support, predicted: predicted)
        }
    }

    /// Macro-averaged F1 over the classes present among true or predicted labels.
    public var macroF1: Double {
        let present = perClass().filter { $0.support > 0 || $0.predicted > 0 }
        return present.isEmpty ? 0 : present.reduce(0) { $0 + $1.f1 } / Double(present.count)
    }
}

/// Precision, recall and F1 of one class.
public struct ClassScores: Codable, Equatable, Sendable {
    public var precision: Double
    public var recall: Double
    public var f1: Double
    /// Samples whose true class this is.
    public var support: Int
    /// Samples predicted as this class.
    public var predicted: Int
}

/// Loss, accuracy, macro-F1 and confusion matrix of a model on a data split.
public struct Evaluation: Codable, Equatable, Sendable {
    public var loss: Double
    public var confusion: ConfusionMatrix
    public var accuracy: Double { confusion.accuracy }
    public var macroF1: Double { confusion.macroF1 }

    public init(loss: Double, confusion: ConfusionMatrix) {
        self.loss = loss
        self.confusion = confusion
    }
}
