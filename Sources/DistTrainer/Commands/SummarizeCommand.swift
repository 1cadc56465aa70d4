// Summarize: `dist-trainer summarize SWEEP_DIR`, combining the runs of a scripted sweep.
//
// Rank 0 reads every run directory's config.json and summary.json (only its host needs the sweep
// directory), picks the global best by validation macro-F1 (as the notebook picks across its
// learning rates; the first run in name order keeps a tie) and copies its best.safetensors to the
// sweep directory; the test evaluation of that model is sharded over the ranks; rank 0 writes a
// comparison table (comparison.md and comparison.csv: one row per grid point) and the sweep's
// summary.json. Runs without a summary (failed or unfinished) are listed as incomplete.
import ArgumentParser
import CoreSupport
import Formats
import Foundation
import Kernels
import Training

struct SummarizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summarize",
        abstract: "Combine a sweep's run directories: global best, its test evaluation, a comparison table.")

    @Argument(help: ArgumentHelp("The sweep directory (one run directory per grid point).", valueName: "sweep-dir"))
    var sweepDir: String

    @OptionGroup(title: "Data for the test evaluation (default: the data the best checkpoint was trained on)") var data: DataFlags

    func run() throws {
        try withMPIJob { mpi in
            setComputeThreads(mpi.defaultThreadsPerRank)
            var rows: [SweepRow] = []
            try mpi.agreeing {
                guard mpi.rank == 0 else { return }
                rows = try readRows()
                try copyBest(of: rows)
            }
            let loaded = try CheckpointAndData.load(sweepDir + "/" + RunFiles.best, flag: "summarize", source: try data.source(), mpi: mpi)
            let result = try evaluate(loaded.network, on: loaded.data.test, collective: mpi)
            guard mpi.rank == 0, let best = bestRow(rows) else { return }
            try write(rows: rows, best: best, test: result)
        }
    }

    /// The complete run with the highest validation macro-F1 (the first in name order on a tie).
    func bestRow(_ rows: [SweepRow]) -> SweepRow? {
        rows.filter(\.complete).max { $0.valMacroF1 < $1.valMacroF1 || ($0.valMacroF1 == $1.valMacroF1 && $0.name > $1.name) }
    }

    /// Copies the best run's best.safetensors into the sweep directory.
    func copyBest(of rows: [SweepRow]) throws {
        guard let best = bestRow(rows) else {
            throw TrainerError("\(sweepDir): no finished run (no run directory with summary.json)")
        }
        let source = sweepDir + "/" + best.name + "/" + RunFiles.best
        guard FileManager.default.fileExists(atPath: source) else {
            throw TrainerError("\(source): missing; the run finished without a best model")
        }
        try writeFileAtomically(sweepDir + "/" + RunFiles.best, try readFile(source))
    }

    /// One row per subdirectory of the sweep that looks like a run (has config.json).
    func readRows() throws -> [SweepRow] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: sweepDir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainerError("\(sweepDir): no such sweep directory")
        }
        return try FileManager.default.contentsOfDirectory(atPath: sweepDir).sorted().compactMap { name in
            let dir = sweepDir + "/" + name
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue,
                  FileManager.default.fileExists(atPath: dir + "/" + RunFiles.config) else { return nil }
            // An unreadable file makes the row incomplete, not the summary impossible.
            func read<T: Decodable>(_ type: T.Type, _ file: String) -> T? {
                let path = dir + "/" + file
                return try? JSONCoding.decode(type, from: readFile(path), what: path)
            }
            return SweepRow(name: name, config: read(RunConfigFile.self, RunFiles.config), summary: read(RunSummary.self, RunFiles.summary))
        }
    }

    func write(rows: [SweepRow], best: SweepRow, test: Evaluation) throws {
        func f(_ x: Double) -> String { String(format: "%.4f", x) }
        var md = "| run | model | batch | lr | best epoch | best val macro-F1 | val accuracy | test accuracy |\n"
        md += "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        var csv = "run,model,batch_size,learning_rates,best_lr,best_epoch,best_val_macro_f1,val_accuracy,test_accuracy,complete\n"
        for r in rows {
            let mark = r.name == best.name ? " **(best)**" : ""
            if let s = r.summary {
                md += "| \(r.name)\(mark) | \(r.model) | \(r.batch) | \(s.best.lr) | \(s.best.epoch) | \(f(s.best.valMacroF1)) | \(f(s.best.valAccuracy)) | \(f(s.test.accuracy)) |\n"
            } else {
                md += "| \(r.name) | \(r.model) | \(r.batch) | \(r.learningRates) | incomplete | | | |\n"
            }
            let results = r.summary.map { [String($0.best.lr), String($0.best.epoch), String($0.best.valMacroF1), String($0.best.valAccuracy), String($0.test.accuracy)] }
                ?? ["", "", "", "", ""]
            csv += ([r.name, r.model, r.batch, r.learningRates] + results + [String(r.complete)]).joined(separator: ",") + "\n"
        }
        try writeFileAtomically(sweepDir + "/comparison.md", text: md)
        try writeFileAtomically(sweepDir + "/comparison.csv", text: csv)
        let bestSummary = best.summary!
        let summary = SweepSummary(
            bestRun: best.name, bestLr: bestSummary.best.lr, bestEpoch: bestSummary.best.epoch,
            bestValMacroF1: bestSummary.best.valMacroF1, runs: rows.count, completeRuns: rows.filter(\.complete).count,
            test: EvaluationSummary(test), checkpoint: RunFiles.best)
        try RunFiles.writeJSON(summary, to: sweepDir, RunFiles.summary)
        print(md, terminator: "")
        print("best: \(best.name) (val macro-F1 \(f(best.valMacroF1))); test: loss \(f(test.loss)) accuracy \(f(test.accuracy)) macro-F1 \(f(test.macroF1))")
        print("wrote \(sweepDir)/{best.safetensors, comparison.md, comparison.csv, summary.json}")
    }
}
