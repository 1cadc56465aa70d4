// Download: the `dist-trainer download` subcommand.
//
// Thin wiring from flags to `downloadDataset` in Core (Sources/Core/Download.swift), which does the
// fetching, SHA-256 verification and atomic writes against the official table in Dataset.swift.
// Nothing here touches MPI; run it once, on one machine, before training.
import ArgumentParser
import Datasets
import Foundation

struct DownloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Fetch Fashion-MNIST into ./data/fashion-mnist (for machines without the Debian package)",
        discussion: """
            Fetches the four .gz files from the mirror, checks the SHA-256 of each file's uncompressed \
            content against the official values, and writes only verified files. Files already present \
            with the right content are skipped. Training finds ./data/fashion-mnist by itself; for \
            another --output-dir, set FASHION_MNIST_DIR.
            """)

    @Option(name: .long, help: ArgumentHelp("Base URL the <name>.gz files are under.", valueName: "url"))
    var mirror: String = FashionMNIST.mirror

    @Option(name: .customLong("output-dir"), help: ArgumentHelp("Directory to write the files into.", valueName: "dir"))
    var outputDir: String = FashionMNIST.localDirectory

    func validate() throws {
        guard let url = URL(string: mirror), url.scheme?.lowercased() == "http", url.host != nil else {
            throw ValidationError("--mirror: '\(mirror)' is not an http:// URL (the built-in client speaks plain HTTP; for https, fetch the files yourself and set FASHION_MNIST_DIR)")
        }
        guard !outputDir.isEmpty else { throw ValidationError("--output-dir: empty path") }
    }

    func run() throws {
        // validate() guarantees the URL parses.
        let url = URL(string: mirror)!
        try downloadDataset(mirror: url, into: outputDir, files: FashionMNIST.files) { line in
            // Unbuffered, so each line appears as its file lands even when stdout is a pipe.
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
    }
}
