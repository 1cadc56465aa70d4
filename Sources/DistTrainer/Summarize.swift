// Summarize: `dist-trainer summarize SWEEP_DIR`, combining the runs of a scripted sweep.
//
// Reads every run directory's config.json and summary.json, picks the global best by validation
// macro-F1 (as the notebook picks across its learning rates; the first run in name order keeps a
// tie), copies its best.safetensors to the sweep directory, evaluates it on the test set, and
// writes a comparison table (comparison.md and comparison.csv: one row per grid point) and the
// sweep's summary.json. Runs without a summary (failed or unfinished) are listed as incomplete.
import ArgumentParser
import Core
import Foundation

struct Summarize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine a sweep's run directories: global best, its test evaluation, a comparison table.")

    @Argument(help: ArgumentHelp("The sweep directory (one run directory per grid point).", valueName: "sweep-dir"))
    var sweepDir: String

    @Option(help: ArgumentHelp("Data directory for the test evaluation (default: the one recorded in the best checkpoint).", valueName: "dir"))
    var dataDir: String?

    struct Row {
        var name: String
        var model: String = "", batch: String = "", lrs: String = ""
        var complete = false
        var bestLR = 0.0, bestEpoch = 0, valF1 = 0.0, valAccuracy = 0.0, testAccuracy = 0.0
    }

    func run() throws {
        try withMPIJob { mpi in
            setBlasThreads(mpi.defaultThreadsPerRank)
            // Rank 0 reads the directory and picks the best; the test evaluation is collective.
            var chosen: [UInt8] = []
            var rows: [Row] = []
            try mpi.agreeing {
                guard mpi.rank == 0 else { return }
                rows = try readRows()
                guard let best = rows.filter(\.complete).max(by: { $0.valF1 < $1.valF1 || ($0.valF1 == $1.valF1 && $0.name > $1.name) }) else {
                    throw TrainerError("\(sweepDir): no finished run (no run directory with summary.json)")
                }
                let source = sweepDir + "/" + best.name + "/best.safetensors"
                guard let data = FileManager.default.contents(atPath: source) else {
                    throw TrainerError("\(source): missing; the run finished without a best model")
                }
                try writeFileAtomically(sweepDir + "/best.safetensors", [UInt8](data))
                chosen = Array(best.name.utf8)
            }
            try mpi.broadcast(&chosen, root: 0)
            let bestName = String(decoding: chosen, as: UTF8.self)
            let checkpoint = sweepDir + "/best.safetensors"
            let (network, test) = try mpi.agreeing { () throws -> (Network, LabeledImages) in
                let (net, data, _) = try loadModelAndData(readSafetensors(path: checkpoint), path: checkpoint, dataDir: dataDir)
                return (net, data.test)
            }
            let result = try Core.evaluate(network, on: test, collective: mpi)
            guard mpi.rank == 0 else { return }
            try write(rows: rows, best: bestName, test: result)
        }
    }

    /// One row per subdirectory of the sweep that looks like a run (has config.json or a log).
    func readRows() throws -> [Row] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: sweepDir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainerError("\(sweepDir): no such sweep directory")
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: sweepDir).sorted()
        var rows: [Row] = []
        for name in entries {
            let dir = sweepDir + "/" + name
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue,
                  FileManager.default.fileExists(atPath: dir + "/config.json") else { continue }
            var row = Row(name: name)
            if let config = try? readJSONObject(dir + "/config.json") {
                row.model = (config["widths"] as? String) ?? ""
                row.batch = (config["batch_size"] as? Int).map(String.init) ?? ""
                row.lrs = ((config["learning_rates"] as? [Double]) ?? []).map { String($0) }.joined(separator: " ")
            }
            if let summary = try? readJSONObject(dir + "/summary.json"), let best = summary["best"] as? [String: Any],
               let test = summary["test"] as? [String: Any] {
                row.complete = true
                row.bestLR = best["lr"] as? Double ?? 0
                row.bestEpoch = best["epoch"] as? Int ?? 0
                row.valF1 = best["val_macro_f1"] as? Double ?? 0
                row.valAccuracy = best["val_accuracy"] as? Double ?? 0
                row.testAccuracy = test["accuracy"] as? Double ?? 0
            }
            rows.append(row)
        }
        return rows
    }

    func readJSONObject(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainerError("\(path): not a JSON object")
        }
        return object
    }

    func write(rows: [Row], best: String, test: Evaluation) throws {
        func f(_ x: Double) -> String { String(format: "%.4f", x) }
        var md = "| run | model | batch | lr | best epoch | best val macro-F1 | val accuracy | test accuracy |\n"
        md += "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        var csv = "run,model,batch_size,learning_rates,best_lr,best_epoch,best_val_macro_f1,val_accuracy,test_accuracy,complete\n"
        for r in rows {
            let mark = r.name == best ? " **(best)**" : ""
            if r.complete {
                md += "| \(r.name)\(mark) | \(r.model) | \(r.batch) | \(r.bestLR) | \(r.bestEpoch) | \(f(r.valF1)) | \(f(r.valAccuracy)) | \(f(r.testAccuracy)) |\n"
            } else {
                md += "| \(r.name) | \(r.model) | \(r.batch) | \(r.lrs) | incomplete | | | |\n"
            }
            csv += [r.name, r.model, r.batch, r.lrs, r.complete ? String(r.bestLR) : "", r.complete ? String(r.bestEpoch) : "",
                    r.complete ? String(r.valF1) : "", r.complete ? String(r.valAccuracy) : "", r.complete ? String(r.testAccuracy) : "",
                    r.complete ? "true" : "false"].joined(separator: ",") + "\n"
        }
        try writeFileAtomically(sweepDir + "/comparison.md", text: md)
        try writeFileAtomically(sweepDir + "/comparison.csv", text: csv)
        let bestRow = rows.first { $0.name == best }!
        let summary: [String: Any] = [
            "best_run": best, "best_lr": bestRow.bestLR, "best_epoch": bestRow.bestEpoch,
            "best_val_macro_f1": bestRow.valF1, "runs": rows.count, "complete_runs": rows.filter(\.complete).count,
            "test": RunFiles.evaluation(test), "checkpoint": "best.safetensors",
        ]
        try writeFileAtomically(sweepDir + "/summary.json", text: RunFiles.json(summary))
        print(md, terminator: "")
        print("best: \(best) (val macro-F1 \(f(bestRow.valF1))); test: loss \(f(test.loss)) accuracy \(f(test.accuracy)) macro-F1 \(f(test.macroF1))")
        print("wrote \(sweepDir)/{best.safetensors, comparison.md, comparison.csv, summary.json}")
    }
}
