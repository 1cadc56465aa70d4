// RunFiles: the run directory — its file names, creating it, and writing the metrics and confusion
// matrices (config.json and summary.json are RunConfigFile and RunSummary, written through here).
//
// Every file is written whole and atomically (Core's AtomicFile), so a reader or a crash never sees
// a half-written file; the metrics files are rewritten from the full history after every epoch,
// which keeps them consistent with the checkpoint a resumed run starts from.
import CoreSupport
import Datasets
import Formats
import Foundation
import Training

enum RunFiles {
    static let config = "config.json"
    static let metricsJSONL = "metrics.jsonl"
    static let metricsCSV = "metrics.csv"
    static let summary = "summary.json"
    static let validationConfusion = "confusion_val.csv"
    static let testConfusion = "confusion_test.csv"
    static let best = "best.safetensors"
    static let last = "last.safetensors"
    /// The checkpoint before the newest `last` (kept so that a damaged newest one costs one interval).
    static let previousLast = "last.prev.safetensors"
    /// The elastic restarts of a run, one JSON object per line (written by scripts/elastic.sh).
    static let restarts = "restarts.jsonl"

    /// The file that keeps the version of `path` before its newest (`last.prev.safetensors`).
    static func previous(of path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(previousLast).path
    }

    /// Creates `path` (and parents) and checks it is writable; one line naming the flag and the
    /// failing component otherwise.
    static func prepareDirectory(_ path: String) throws {
        do {
            try makeDirectories(path)
            try checkWritableDirectory(path)
        } catch let e as TrainerError {
            throw TrainerError("--run-dir " + e.message)
        }
    }

    /// Every file a run writes into its directory (what `claim` looks for and `--overwrite` removes).
    static var all: [String] { [config, metricsJSONL, metricsCSV, summary, validationConfusion, testConfusion, best, last] }

    /// A fresh run may only start in a directory that holds no run: one line naming it otherwise;
    /// with `overwrite`, the old run's files are removed first (nothing else in the directory).
    static func claim(_ path: String, overwrite: Bool) throws {
        let present = all.filter { FileManager.default.fileExists(atPath: path + "/" + $0) }
        guard !present.isEmpty else { return }
        guard overwrite else {
            throw TrainerError("--run-dir \(path) already holds a run (\(present.prefix(3).joined(separator: ", "))); "
                + "continue it with --resume \(path) (or --resume auto), or replace it with --overwrite")
        }
        for name in present { try checkedCall(path + "/" + name, "removing the old run's file") { unlink(path + "/" + name) } }
    }

    /// Writes `value` as pretty JSON to `directory/name`.
    static func writeJSON<T: Encodable>(_ value: T, to directory: String, _ name: String) throws {
        let path = directory + "/" + name
        try writeFileAtomically(path, text: try JSONCoding.text(value, pretty: true, what: path) + "\n")
    }

    // MARK: Metrics

    /// metrics.jsonl (one EpochRecord per line) and metrics.csv.
    static func writeMetrics(_ history: [EpochRecord], to directory: String) throws {
        let jsonl = try history.map { try JSONCoding.text($0) + "\n" }.joined()
        try writeFileAtomically(directory + "/" + metricsJSONL, text: jsonl)
        var csv = "lr,epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_macro_f1,train_seconds,val_seconds,communication_seconds,"
            + "slowest_rank,compute_seconds_min,compute_seconds_max\n"
        for r in history {
            let values: [Double] = [
                r.lr, Double(r.epoch), r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy, r.valMacroF1,
                r.trainSeconds, r.valSeconds, r.communicationSeconds, Double(r.slowestRank), r.computeSecondsMin, r.computeSecondsMax,
            ]
            csv += values.map(csvNumber).joined(separator: ",") + "\n"
        }
        try writeFileAtomically(directory + "/" + metricsCSV, text: csv)
    }

    static func writeConfusion(_ matrix: ConfusionMatrix, names: [String], to path: String) throws {
        var csv = "true\\predicted," + names.map(csvField).joined(separator: ",") + "\n"
        for (t, row) in matrix.counts.enumerated() {
            csv += csvField(names[t]) + "," + row.map(String.init).joined(separator: ",") + "\n"
        }
        try writeFileAtomically(path, text: csv)
    }

    /// A checkpoint's class names: its own, or for a file of an older version (whose data was
    /// Fashion-MNIST) Fashion-MNIST's when it has ten classes, else the label numbers.
    static func classNames(_ header: CheckpointHeader) -> [String] {
        let count = header.architecture.classCount
        return header.classNames ?? (FashionMNIST.classNames.count == count ? FashionMNIST.classNames : (0..<count).map(String.init))
    }

    // MARK: CSV

    /// Integers without a decimal point, everything else in full (shortest round-trip) precision.
    static func csvNumber(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}
