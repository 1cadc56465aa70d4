// RunFiles: the run directory's file formats (config.json, metrics.jsonl, metrics.csv,
// summary.json, confusion matrices as CSV).
//
// Every file is written whole and atomically (Core/AtomicFile), so a reader or a crash never sees a
// half-written file; the metrics files are rewritten from the full history after every epoch, which
// keeps them consistent with the checkpoint a resumed run starts from.
import Core
import Foundation

enum RunFiles {
    static let config = "config.json"
    static let metricsJSONL = "metrics.jsonl"
    static let metricsCSV = "metrics.csv"
    static let summary = "summary.json"
    static let validationConfusion = "confusion_val.csv"
    static let testConfusion = "confusion_test.csv"
    static let best = "best.safetensors"
    static let last = "last.safetensors"

    /// Creates `path` (and parents) and checks it is writable; one line naming it otherwise.
    static func prepareDirectory(_ path: String) throws {
        // Component by component with mkdir(2), so a failure can say which part and why.
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: prefix, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    throw TrainerError("--run-dir \(path): cannot create the directory: \(prefix) is a file")
                }
                continue
            }
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw TrainerError("--run-dir \(path): cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
        let probe = path + "/.write-test-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw TrainerError("--run-dir \(path): the directory is not writable (\(String(cString: strerror(errno))))")
        }
        close(fd)
        unlink(probe)
    }

    // MARK: JSON

    /// Compact (one line) or pretty JSON text with sorted keys.
    static func json(_ object: Any, pretty: Bool = true) -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        let data = try! JSONSerialization.data(withJSONObject: object, options: options)
        return String(decoding: data, as: UTF8.self)
    }

    static func record(_ r: EpochRecord) -> [String: Any] {
        [
            "lr": r.lr, "lr_index": r.lrIndex, "epoch": r.epoch,
            "train_loss": r.trainLoss, "train_accuracy": r.trainAccuracy,
            "val_loss": r.valLoss, "val_accuracy": r.valAccuracy, "val_macro_f1": r.valMacroF1,
            "train_seconds": r.trainSeconds, "val_seconds": r.valSeconds,
            "communication_seconds": r.communicationSeconds,
        ]
    }

    static func evaluation(_ e: Evaluation) -> [String: Any] {
        ["loss": e.loss, "accuracy": e.accuracy, "macro_f1": e.macroF1, "confusion_matrix": e.confusion.counts]
    }

    // MARK: Writers

    static func writeMetrics(_ history: [EpochRecord], to directory: String) throws {
        let jsonl = history.map { json(record($0), pretty: false) + "\n" }.joined()
        try writeFileAtomically(directory + "/" + metricsJSONL, text: jsonl)
        var csv = "lr,epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_macro_f1,train_seconds,val_seconds,communication_seconds\n"
        for r in history {
            let values: [Double] = [
                r.lr, Double(r.epoch), r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy, r.valMacroF1,
                r.trainSeconds, r.valSeconds, r.communicationSeconds,
            ]
            csv += values.map(csvNumber).joined(separator: ",") + "\n"
        }
        try writeFileAtomically(directory + "/" + metricsCSV, text: csv)
    }

    static func writeConfusion(_ matrix: ConfusionMatrix, to path: String) throws {
        let names = FashionMNIST.classNames.count == matrix.classes
            ? FashionMNIST.classNames : (0..<matrix.classes).map { "class \($0)" }
        var csv = "true\\predicted," + names.map(csvField).joined(separator: ",") + "\n"
        for (t, row) in matrix.counts.enumerated() {
            csv += csvField(names[t]) + "," + row.map(String.init).joined(separator: ",") + "\n"
        }
        try writeFileAtomically(path, text: csv)
    }

    /// Integers without a decimal point, everything else in full (shortest round-trip) precision.
    static func csvNumber(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}

/// Median of a non-empty list (mean of the middle two for an even count); 0 for an empty one.
func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
