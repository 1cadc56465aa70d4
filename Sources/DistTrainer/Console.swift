// Console: rank 0's terminal output — plain lines, and on a terminal one live progress line.
//
// On a terminal the progress line is redrawn in place (carriage return, erase line) and is erased
// before any ordinary line is printed, so the two never garble each other. When stdout is a file or
// a pipe (logs, Slurm) there is no progress line at all, only the ordinary lines.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class Console {
    /// Whether stdout is a terminal, i.e. whether the live progress line is shown.
    let interactive: Bool
    private var progressShown = false
    private var lastProgress: UInt64 = 0

    init(interactive: Bool = isatty(STDOUT_FILENO) == 1) {
        self.interactive = interactive
    }

    /// Prints an ordinary line (after erasing the progress line, if one is shown).
    func line(_ text: String) {
        clearProgress()
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Redraws the progress line, at most ten times a second; does nothing when not interactive.
    func progress(_ text: String, force: Bool = false) {
        guard interactive else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard force || now - lastProgress > 100_000_000 else { return }
        lastProgress = now
        FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + text).utf8))
        progressShown = true
    }

    /// Erases the progress line, if shown.
    func clearProgress() {
        guard progressShown else { return }
        FileHandle.standardOutput.write(Data("\r\u{1B}[2K".utf8))
        progressShown = false
    }
}

/// Prints one error line to stderr.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("dist-trainer: error: \(message)\n".utf8))
}
