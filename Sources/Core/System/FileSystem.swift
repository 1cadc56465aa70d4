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

/// Reads a whole regular file into memory with one read into an uninitialized array (no Data round
/// trip, no per-byte copy, which matters in debug builds for the 47 MB train images).
public func readFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else {
        throw TrainerError("\(path): cannot open (\(systemReason()))")
    }
    defer { fclose(f) }
    var info = stat()
    try checkedCall(path, "stat") { fstat(fileno(f), &info) }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
        throw TrainerError("\(path): not a regular file")
    }
    let size = Int(info.st_size)
    var readError: Int32 = 0
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buf, initialized in
        initialized = size == 0 ? 0 : fread(buf.baseAddress!, 1, size, f)
        if initialized < size { readError = ferror(f) != 0 ? errno : 0 }
    }
    guard bytes.count == size else {
        let why = readError != 0 ? systemReason(readError) : "file shrank while reading"
        throw TrainerError("\(path): read \(bytes.count) of \(size) bytes (\(why))")
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
