// SystemCall: the one checked path for POSIX calls — retry on EINTR, and on failure a TrainerError
// that names the path, what was being done and the system's own reason.
//
// In the spirit of llm.c's fopenCheck: a call site says what it does and to which file, and never
// formats errno itself. Only for calls that report failure with −1 (or any negative value).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The C library's words for an errno value ("No space left on device").
public func systemReason(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Runs `call` (retrying while it fails with EINTR) and returns its result; when it fails, throws
/// "`path`: `action` failed: reason". `cleanup` runs before the error is thrown (errno preserved).
@discardableResult
public func checkedCall<T: BinaryInteger>(_ path: String, _ action: String, cleanup: () -> Void = {}, _ call: () -> T) throws -> T {
    while true {
        let result = call()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        cleanup()
        throw TrainerError("\(path): \(action) failed: \(systemReason(code))")
    }
}
