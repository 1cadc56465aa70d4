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
    let removeTemporary = { _ = unlink(temporary) }
    let fd = try checkedCall(path, "creating a temporary file") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
    let closeAndRemove = { _ = close(fd); _ = unlink(temporary) }
    try bytes.withUnsafeBytes { raw in
        var written = 0
        while written < raw.count {
            written += try checkedCall(path, "writing", cleanup: closeAndRemove) { write(fd, raw.baseAddress! + written, raw.count - written) }
        }
    }
    try checkedCall(path, "flushing to disk", cleanup: closeAndRemove) { fsync(fd) }
    // close is not retried on EINTR: on Linux the descriptor is gone either way.
    guard close(fd) == 0 else {
        let reason = systemReason()
        removeTemporary()
        throw TrainerError("\(path): closing failed: \(reason)")
    }
    try checkedCall(path, "renaming into place", cleanup: removeTemporary) { rename(temporary, path) }
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
