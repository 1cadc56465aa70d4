// FileSystem: reading a whole file and creating a directory path, with one-line errors that name
// the path (and the component that failed) and the system's reason.
//
// FileManager's errors on Linux say little more than "the operation could not be completed", so
// these few operations are done with POSIX calls through SystemCall. Writing is AtomicFile's job.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a whole regular file into memory, at most `limit` bytes (2 GiB by default).
///
/// Anything but a regular file is refused before a byte is read: a FIFO would block until a writer
/// appears, a device could be endless, a directory is not data. The file is opened non-blocking
/// (so opening a FIFO cannot hang) and checked with fstat on the opened descriptor (no race with a
/// rename); symbolic links are followed, and a loop of them is the system's ELOOP error.
public func readFile(_ path: String, limit: Int = 1 << 31) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { throw TrainerError("\(path): cannot open (\(systemReason()))") }
    defer { close(fd) }
    var info = stat()
    try checkedCall(path, "stat") { fstat(fd, &info) }
    let kind = info.st_mode & S_IFMT
    guard kind == S_IFREG else {
        let what = kind == S_IFDIR ? "a directory" : kind == S_IFIFO ? "a FIFO" : kind == S_IFCHR || kind == S_IFBLK ? "a device" : "not a regular file"
        throw TrainerError("\(path): is \(what), expected a regular file")
    }
    let size = Int(info.st_size)
    guard size <= limit else { throw TrainerError("\(path): \(size) bytes, more than the \(limit) this file may have") }
    var failure: TrainerError?
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
        initialized = 0
        while initialized < size {
            let n = read(fd, buffer.baseAddress! + initialized, size - initialized)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { failure = TrainerError("\(path): read failed: \(systemReason())"); return }
            if n == 0 { break }
            initialized += n
        }
    }
    if let failure { throw failure }
    guard bytes.count == size else {
        throw TrainerError("\(path): read \(bytes.count) of \(size) bytes (the file shrank while reading)")
    }
    return bytes
}

/// `mkdir -p`: creates `path` and any missing parents, component by component so a failure can
/// say which part and why ("runs/x: cannot create directory runs/x (Not a directory)").
public func makeDirectories(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += part
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw TrainerError("\(path): cannot create directory \(prefix) (\(systemReason()))")
        }
        prefix += "/"
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw TrainerError("\(path): exists but is not a directory")
    }
}

/// Whether `path` is a directory the process can create files in (tried, not guessed from modes:
/// root, read-only mounts and ACLs all make modes misleading).
public func checkWritableDirectory(_ path: String) throws {
    let probe = path + "/.write-test-\(getpid())"
    let fd = try checkedCall(path, "creating a file in the directory") { open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
    close(fd)
    unlink(probe)
}
