// MatrixText: a confusion matrix as aligned text rows, as the console and `evaluate` print it.
import Training

/// The confusion matrix as aligned text rows, one per true class.
func formatMatrix(_ m: ConfusionMatrix) -> String {
    let width = max(4, String(m.counts.flatMap { $0 }.max() ?? 0).count + 1)
    return m.counts.map { row in
        row.map { String(repeating: " ", count: max(0, width - String($0).count)) + String($0) }.joined()
    }.joined(separator: "\n")
}
