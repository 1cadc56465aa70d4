// Agreement: every rank of a job fails together, with the same one-line message, or none does.
//
// A failure that happens on one rank only (a file it cannot read, a flag it rejects) must not leave
// the other ranks waiting forever in the next collective. Every step that can fail on some ranks
// ends in `agree`; files that only rank 0 may read (the run directory need not be shared) are read
// there and broadcast with `rootReads`.
import CoreSupport

extension Collective {
    /// Error agreement: every rank passes the error it hit (or nil); if any rank failed, every rank
    /// throws the same error, the one of the lowest failing rank, prefixed with that rank when the job
    /// has more than one. Use it after every step that can fail on some ranks only (reading files,
    /// checking flags), before the next collective, so no rank is left waiting in it.
    public func agree(_ local: TrainerError?) throws {
        if size == 1 {
            if let local { throw TrainerError(local.message, agreed: true, exitCode: local.exitCode) }
            return
        }
        let (lowest, _) = try allreduceMinMax(local == nil ? Double(size) : Double(rank))
        let failing = Int(lowest)
        guard failing < size else { return }
        // The exit status travels with the message (4 bytes, little-endian, first).
        var bytes = rank == failing ? withUnsafeBytes(of: local!.exitCode.littleEndian) { Array($0) } + Array(local!.message.utf8) : []
        try broadcast(&bytes, root: failing)
        let code = bytes.count >= 4 ? Int32(littleEndian: bytes.prefix(4).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }) : 1
        let message = String(decoding: bytes.dropFirst(4), as: UTF8.self)
        throw TrainerError(message.hasPrefix("rank ") ? message : "rank \(failing): \(message)", agreed: true, exitCode: code)
    }

    /// Runs `body` and agrees on its outcome across ranks (see `agree`); returns its value when
    /// every rank succeeded.
    public func agreeing<T>(_ body: () throws -> T) throws -> T {
        var value: T?
        var failure: TrainerError?
        do { value = try body() } catch let e as TrainerError { failure = e } catch {
            failure = TrainerError("\(error)")
        }
        try agree(failure)
        return value!
    }
}

extension Collective {
    /// Runs `read` on rank `root` only and gives its bytes to every rank; a failure on the root
    /// becomes every rank's failure (see `agree`). For files that need exist only on the root's host.
    public func rootReads(root: Int = 0, _ read: () throws -> [UInt8]) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try agreeing { if rank == root { bytes = try read() } }
        try broadcast(&bytes, root: root)
        return bytes
    }
}
