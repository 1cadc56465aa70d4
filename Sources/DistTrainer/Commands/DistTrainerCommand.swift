// dist-trainer: the command-line entry point. Subcommands live in their own files.
//
// Argument errors (and --help, --version) are detected before MPI starts, on every rank at once;
// only the launcher's rank 0 prints them, so an mpirun job shows one message instead of one per rank.
import ArgumentParser
import CoreSupport
import Foundation

struct DistTrainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dist-trainer",
        abstract: "Data-parallel training of fully-connected networks on Fashion-MNIST over Open MPI.",
        version: "dist-trainer " + BuildDescription.full,
        subcommands: [TrainCommand.self, EvaluateCommand.self, PredictCommand.self, SummarizeCommand.self, CheckCommand.self, RooflineCommand.self, DownloadCommand.self])
}

@main
enum Main {
    static func main() {
        do {
            var command = try DistTrainerCommand.parseAsRoot()
            try command.run()
        } catch let e as TrainerError {
            // A failure before MPI (a command that runs without it): one line, its exit status.
            if launcherRank() == 0 { printError(e.message) }
            Foundation.exit(e.exitCode)
        } catch {
            let code = DistTrainerCommand.exitCode(for: error)
            // --help and --version are "errors" that exit 0 and print to stdout: rank 0's job too.
            if code == .success {
                if launcherRank() == 0 { DistTrainerCommand.exit(withError: error) }
                Foundation.exit(0)
            }
            if launcherRank() == 0 {
                // One write, so mpirun's own report of the failed job cannot split the line.
                let message = DistTrainerCommand.fullMessage(for: error)
                FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
            } else {
                // The other ranks found the same error; give rank 0 time to print it before their
                // exits make mpirun tear the job down.
                usleep(500_000)
            }
            Foundation.exit(code.rawValue)
        }
    }
}
