// AtomicFile: writing a file so that a crash at any instant leaves either the old or the new
// version, never a mix or a truncated file.
//
// The bytes go to a temporary file in the same directory, which is flushed to disk (fsync),
// renamed over the target (atomic on POSIX file systems), and the directory is flushed so the rename
// itself survives a power loss. Any failure (disk full, permissions) removes the temporary file
// and throws a TrainerError naming the target; the previous file is untouched.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Atomically replaces the file at `path` with `bytes`.
public func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    let url = URL(fileURLWithPath: path)
    let directory = url.deletingLastPathComponent().path
    let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
    func failure(_ what: String) -> TrainerError {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        return TrainerError("\(path): \(what) failed: \(reason)")
    }
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw failure("creating a temporary file") }
    var written = 0
    let ok: Bool = bytes.withUnsafeBytes { raw in
        while written < raw.count {
            let n = write(fd, raw.baseAddress! + written, raw.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            written += n
        }
        return true
    }
    guard ok else { close(fd); throw failure("writing") }
    guard fsync(fd) == 0 else { close(fd); throw failure("flushing to disk") }
    guard close(fd) == 0 else { throw failure("closing") }
    guard rename(temporary, path) == 0 else { throw failure("renaming into place") }
    // Flush the directory entry; not every file system supports fsync on a directory, and the
    // file itself is already safe, so a failure here is not an error.
    let dfd = open(directory, O_RDONLY)
    if dfd >= 0 {
        _ = fsync(dfd)
        close(dfd)
    }
}

/// Atomically replaces the file at `path` with the UTF-8 text `text`.
public func writeFileAtomically(_ path: String, text: String) throws {
    try writeFileAtomically(path, Array(text.utf8))
}
