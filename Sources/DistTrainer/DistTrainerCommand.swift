// dist-trainer: the command-line entry point. Subcommands live in their own files.
//
// Argument errors are detected before MPI starts, on every rank at once; only the launcher's
// rank 0 prints them, so an mpirun job shows one message instead of one per rank.
import ArgumentParser
import Foundation

struct DistTrainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dist-trainer",
        abstract: "Data-parallel training of fully-connected networks on Fashion-MNIST over Open MPI.",
        subcommands: [Train.self, Evaluate.self, Summarize.self, Check.self, Roofline.self, Download.self])
}

@main
enum Main {
    static func main() {
        do {
            var command = try DistTrainerCommand.parseAsRoot()
            try command.run()
        } catch {
            if launcherRank() == 0 { DistTrainerCommand.exit(withError: error) }
            Foundation.exit(DistTrainerCommand.exitCode(for: error).rawValue)
        }
    }
}
