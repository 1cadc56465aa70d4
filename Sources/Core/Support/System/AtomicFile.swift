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

/// Atomically replaces the file at `path` with `bytes`. With `keepingPrevious`, the file it replaces
/// (if any) becomes that file first, so the version before survives the replacement; `path` exists
/// throughout (the old version is hard-linked there, or renamed where links are not supported).
public func writeFileAtomically(_ path: String, _ bytes: [UInt8], keepingPrevious previous: String? = nil) throws {
    try writeFileAtomically(path, keepingPrevious: previous) { put in try bytes.withUnsafeBytes { try put($0) } }
}

/// Atomically replaces the file at `path` with what `produce` hands to `put`, in order (a file
/// written in parts that stay where they are in memory); otherwise as above.
public func writeFileAtomically(_ path: String, keepingPrevious previous: String? = nil,
                                _ produce: (_ put: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
    try replaceFile(path, keepingPrevious: previous, direct: false) { fd in
        try produce { raw in try writeAll(fd, raw, path: path) }
    }
}

/// Atomically replaces the file at `path` with what `produce` hands to `put`, in order, passed through
/// `staging` (an aligned buffer of a few blocks, reused) and written from there with O_DIRECT where
/// the file system allows it: the disk reads the blocks itself, so a large file costs the CPU almost
/// nothing, which matters for checkpoints written in the background while every core trains; and the
/// file never has to be whole in memory (a checkpoint holds 4 copies of the model). `produce` may
/// be called twice (a second time through the page cache, when O_DIRECT is refused at the first
/// write). As above for `keepingPrevious`. Returns whether the file was written with O_DIRECT.
@discardableResult
public func writeFileAtomically(_ path: String, staging: AlignedBytes, keepingPrevious previous: String? = nil,
                                _ produce: (_ put: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> Bool {
    precondition(staging.capacity >= AlignedBytes.alignment && staging.capacity % AlignedBytes.alignment == 0)
    do {
        try replaceFile(path, keepingPrevious: previous, direct: true) { fd in
            var (filled, total) = (0, 0)
            let flush = { (count: Int) in
                try writeAll(fd, UnsafeRawBufferPointer(start: staging.pointer, count: count), path: path, direct: true)
            }
            try produce { raw in
                var at = 0
                while at < raw.count {
                    let n = min(raw.count - at, staging.capacity - filled)
                    (staging.pointer + filled).copyMemory(from: raw.baseAddress! + at, byteCount: n)
                    (filled, at, total) = (filled + n, at + n, total + n)
                    if filled == staging.capacity {
                        try flush(filled)
                        filled = 0
                    }
                }
            }
            // The last part padded to whole blocks (O_DIRECT writes nothing else); the file is then cut to its size.
            if filled > 0 { try flush(AlignedBytes.wholeBlocks(filled)) }
            try checkedCall(path, "setting the size") { ftruncate(fd, off_t(total)) }
        }
        return true
    } catch DirectIO.unsupported {
        try writeFileAtomically(path, keepingPrevious: previous, produce)
        return false
    }
}

/// O_DIRECT refused by the file system (tmpfs, some network file systems): write through the cache.
enum DirectIO: Error {
    case unsupported

    /// Linux's O_DIRECT (a GNU extension the C module does not export; its value is per
    /// architecture), nil where it is not known.
    static var openFlag: Int32? {
        #if os(Linux) && arch(x86_64)
        return 0o40000
        #elseif os(Linux) && arch(arm64)
        return 0o200000
        #else
        return nil
        #endif
    }
}

/// Writes all of `raw` to `fd` (a short write continues; EINTR retries). `direct`: the descriptor
/// is O_DIRECT, and EINVAL (the file system wants other alignments) means DirectIO.unsupported.
private func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer, path: String, direct: Bool = false) throws {
    var written = 0
    while written < raw.count {
        let n = write(fd, raw.baseAddress! + written, raw.count - written)
        if n < 0 && direct && errno == EINVAL { throw DirectIO.unsupported }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw TrainerError("\(path): writing failed: \(systemReason())") }
        written += n
    }
}

/// The one path of an atomic replacement: a temporary file in the same directory filled by `fill`,
/// flushed, the previous version kept if asked, renamed over `path`, the directory flushed. With
/// `direct`, the temporary is opened with O_DIRECT, and DirectIO.unsupported is thrown (after
/// cleaning up) where that cannot be used.
private func replaceFile(_ path: String, keepingPrevious previous: String?, direct: Bool, _ fill: (Int32) throws -> Void) throws {
    let url = URL(fileURLWithPath: path)
    let directory = url.deletingLastPathComponent().path
    let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
    let removeTemporary = { _ = unlink(temporary) }
    var flags = O_WRONLY | O_CREAT | O_TRUNC
    if direct {
        guard let bit = DirectIO.openFlag else { throw DirectIO.unsupported }
        flags |= bit
    }
    let fd = open(temporary, flags, 0o644)
    if fd < 0 && direct && errno == EINVAL { throw DirectIO.unsupported }
    if fd < 0 { throw TrainerError("\(path): creating a temporary file failed: \(systemReason())") }
    let closeAndRemove = { _ = close(fd); _ = unlink(temporary) }
    do {
        try fill(fd)
    } catch {
        closeAndRemove()
        throw error
    }
    try checkedCall(path, "flushing to disk", cleanup: closeAndRemove) { fsync(fd) }
    // close is not retried on EINTR: on Linux the descriptor is gone either way.
    guard close(fd) == 0 else {
        let reason = systemReason()
        removeTemporary()
        throw TrainerError("\(path): closing failed: \(reason)")
    }
    if let previous { try keepVersion(path, as: previous, cleanup: removeTemporary) }
    try checkedCall(path, "renaming into place", cleanup: removeTemporary) { rename(temporary, path) }
    // Flush the directory entry; not every file system supports fsync on a directory, and the
    // file itself is already safe, so a failure here is not an error.
    let dfd = open(directory, O_RDONLY)
    if dfd >= 0 {
        _ = fsync(dfd)
        close(dfd)
    }
}

/// Makes the current file at `path`, if there is one, the file `previous` (replacing it atomically).
private func keepVersion(_ path: String, as previous: String, cleanup: () -> Void) throws {
    let staged = previous + ".link-\(getpid())"
    _ = unlink(staged)
    if link(path, staged) == 0 {
        try checkedCall(previous, "keeping the previous version", cleanup: { _ = unlink(staged); cleanup() }) { rename(staged, previous) }
    } else if errno != ENOENT {
        // No hard links here (some network file systems): the old version moves instead.
        try checkedCall(previous, "keeping the previous version", cleanup: cleanup) { rename(path, previous) }
    }
}

/// Atomically replaces the file at `path` with the UTF-8 text `text`.
public func writeFileAtomically(_ path: String, text: String) throws {
    try writeFileAtomically(path, Array(text.utf8))
}
