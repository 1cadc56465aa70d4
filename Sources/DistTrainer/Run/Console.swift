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

    init(interactive: Bool = Console.stdoutIsTerminal()) {
        self.interactive = interactive
    }

    /// Whether what this process prints ends up on a terminal. Under mpirun a rank's stdout is a
    /// pseudo-terminal even when mpirun's own output goes to a pipe or a file, so there the question
    /// is asked of mpirun's stdout (the parent process of a rank on mpirun's node).
    static func stdoutIsTerminal() -> Bool {
        guard isatty(STDOUT_FILENO) == 1 else { return false }
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil else { return true }
        var target = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/\(getppid())/fd/1", &target, target.count - 1)
        guard n > 0 else { return true }
        let path = String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasPrefix("/dev/pts/") || path.hasPrefix("/dev/tty")
    }

    /// Prints an ordinary line (after erasing the progress line, if one is shown).
    func line(_ text: String) {
        clearProgress()
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Redraws the progress line, at most ten times a second; does nothing when not interactive.
    /// The text is built only when it will be shown, so calling this every step costs nothing.
    func progress(force: Bool = false, _ text: () -> String) {
        guard interactive else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard force || now - lastProgress > 100_000_000 else { return }
        lastProgress = now
        FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + text()).utf8))
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

/// Prints one warning line to stderr (something was wrong, and the run goes on without it).
func printWarning(_ message: String) {
    FileHandle.standardError.write(Data("dist-trainer: warning: \(message)\n".utf8))
}
