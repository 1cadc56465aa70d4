// Gzip: in-memory gzip inflate and deflate on top of zlib.
//
// The Fashion-MNIST files ship as .gz; we inflate a whole file at once into one [UInt8] (47 MB for
// the largest), which is simpler and faster than streaming and small enough to keep in memory.
// `gzip` exists so tests can write .gz fixtures; `inflateRaw` unpacks the raw deflate members of a
// zip archive (NumPy's .npz). This is not a general archive tool: no file names, no timestamps, no
// streaming API.
import CoreSupport
import CZlib

// MARK: - Public API

/// True if `data` starts with the gzip magic bytes 0x1f 0x8b (RFC 1952).
public func isGzip(_ data: [UInt8]) -> Bool {
    data.count >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

/// Inflates a gzip stream held entirely in memory.
///
/// Multi-member files (several gzip streams concatenated, as `cat a.gz b.gz` makes) inflate to the
/// concatenation of their contents, as `gunzip` does; zero bytes after the last member (tape-style
/// padding) are ignored. zlib checks each member's CRC-32 and length trailer.
///
/// - Parameters:
///   - data: the compressed bytes.
///   - name: how to name the input in error messages, e.g. "train-images-idx3-ubyte.gz".
///   - limit: the most bytes the content may inflate to (a small file that claims gigabytes —
///     a "zip bomb" — is refused before it exhausts memory); 1 GiB by default, twenty times the
///     largest Fashion-MNIST file.
/// - Throws: `TrainerError` naming `name` if the data is not gzip, is truncated, is corrupt, is
///   followed by something that is not another gzip member, or inflates beyond `limit`.
public func gunzip(_ data: [UInt8], name: String, limit: Int = 1 << 30) throws -> [UInt8] {
    guard isGzip(data) else {
        throw TrainerError("\(name): not a gzip file (first bytes \(hexPrefix(data, 8)), expected 1f 8b)")
    }
    let inflater = try Inflater(name: name, limit: limit)
    defer { inflater.end() }

    // First guess at the output size: the last member's ISIZE trailer (size mod 2^32, little-endian).
    // For a single-member file under 4 GiB this is exact, so the common case is one allocation. It is
    // only a hint (a corrupt trailer must not make us allocate wildly), hence the cap.
    let n = data.count
    var guess = n * 4
    if n >= 18 {
        let isize = Int(data[n - 4]) | Int(data[n - 3]) << 8 | Int(data[n - 2]) << 16 | Int(data[n - 1]) << 24
        guess = min(isize, n * 1100, limit)  // deflate cannot exceed ~1032:1
    }
    var out = [UInt8](repeating: 0, count: max(guess, 64))
    var produced = 0
    var consumed = 0  // bytes of `data` used by the members inflated so far

    try data.withUnsafeBufferPointer { inBuf in
        while true {
            consumed = try inflater.inflateMember(input: inBuf, from: consumed, output: &out, produced: &produced)
            if consumed == n { return }
            // Another member (`cat a.gz b.gz`), zero padding, or garbage.
            let rest = inBuf[consumed...]
            if rest.count >= 2 && rest[consumed] == 0x1f && rest[consumed + 1] == 0x8b {
                try inflater.reset()
                continue
            }
            if rest.allSatisfy({ $0 == 0 }) { return }
            throw TrainerError(
                "\(name): \(rest.count) bytes of trailing data after the gzip stream "
                    + "(at offset \(consumed) of \(n); first bytes \(hexPrefix(Array(rest), 8)))")
        }
    }
    out.removeSubrange(produced...)
    return out
}

/// Inflates a raw deflate stream (no wrapper: a zip member) that must inflate to exactly `size`
/// bytes; `name` is blamed in errors.
public func inflateRaw(_ data: UnsafeBufferPointer<UInt8>, size: Int, name: String) throws -> [UInt8] {
    let inflater = try Inflater(name: name, limit: max(size, 1), windowBits: -15)
    defer { inflater.end() }
    var out = [UInt8](repeating: 0, count: max(size, 1))
    var produced = 0
    _ = try inflater.inflateMember(input: data, from: 0, output: &out, produced: &produced)
    guard produced == size else { throw TrainerError("\(name): inflates to \(produced) bytes, its zip entry says \(size)") }
    out.removeSubrange(produced...)
    return out
}

/// Deflates `data` into a single-member gzip stream (default compression level, no file name, mtime 0).
/// Used by tests to write fixtures; never fails for in-memory input.
public func gzip(_ data: [UInt8]) -> [UInt8] {
    // zlib keeps a pointer back to the z_stream and checks it on every call, so the stream needs a
    // fixed address; a Swift local passed with & is not guaranteed one.
    let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    stream.initialize(to: z_stream())
    defer { stream.deallocate() }
    // 15 window bits + 16 selects the gzip wrapper instead of zlib's.
    let rc = deflateInit2_(
        stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
        zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    precondition(rc == Z_OK, "deflateInit2 failed: \(rc)")
    defer { deflateEnd(stream) }

    // deflateBound covers the gzip header and trailer; the slack is belt and braces.
    var out = [UInt8](repeating: 0, count: Int(deflateBound(stream, uLong(data.count))) + 64)
    var produced = 0
    data.withUnsafeBufferPointer { inBuf in
        var offset = 0
        while true {
            let chunk = min(inBuf.count - offset, maxChunk)
            stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress.map { $0 + offset })
            stream.pointee.avail_in = uInt(chunk)
            let last = offset + chunk == inBuf.count
            if produced == out.count { out.append(contentsOf: repeatElement(0, count: out.count)) }
            let status: Int32 = out.withUnsafeMutableBufferPointer { outBuf in
                stream.pointee.next_out = outBuf.baseAddress! + produced
                stream.pointee.avail_out = uInt(min(outBuf.count - produced, maxChunk))
                let before = stream.pointee.avail_out
                let s = deflate(stream, last ? Z_FINISH : Z_NO_FLUSH)
                produced += Int(before - stream.pointee.avail_out)
                return s
            }
            offset += chunk - Int(stream.pointee.avail_in)
            if status == Z_STREAM_END { break }
            precondition(status == Z_OK || status == Z_BUF_ERROR, "deflate failed: \(status)")
        }
    }
    out.removeSubrange(produced...)
    return out
}

// MARK: - Inflate machinery

/// zlib counts bytes in 32-bit `uInt`; feed it at most this much at a time.
private let maxChunk = 1 << 30

/// A zlib inflate stream plus the name to blame in errors. The z_stream lives on the heap because
/// zlib stores a pointer back to it and rejects calls made through a moved copy.
private struct Inflater {
    let stream: UnsafeMutablePointer<z_stream>
    let name: String
    /// The most bytes the output may grow to.
    let limit: Int

    /// `windowBits` 15 + 16: gzip wrapper only, 32 KiB window (we checked the magic ourselves, so the
    /// "auto-detect zlib or gzip" mode, 32 + 15, would only let non-gzip inputs through); −15: raw
    /// deflate (zip members).
    init(name: String, limit: Int, windowBits: Int32 = 15 + 16) throws {
        self.name = name
        self.limit = limit
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = inflateInit2_(stream, windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            stream.deallocate()
            throw TrainerError("\(name): zlib inflateInit2 failed (\(rc))")
        }
    }

    func reset() throws {
        let rc = inflateReset(stream)
        guard rc == Z_OK else { throw TrainerError("\(name): zlib inflateReset failed (\(rc))") }
    }

    /// Frees zlib's state and the stream; call exactly once.
    func end() {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates one gzip member starting at `input[from]`, appending to `output` at `produced`
    /// (growing it as needed). Returns the offset just past the member's trailer.
    func inflateMember(
        input: UnsafeBufferPointer<UInt8>, from: Int, output: inout [UInt8], produced: inout Int
    ) throws -> Int {
        var offset = from
        while true {
            if produced == output.count {
                // Out of room: double (up to the limit). Only happens when the ISIZE hint was wrong
                // (multi-member, > 4 GiB, or a trailer that lies).
                guard output.count < limit else {
                    throw TrainerError("\(name): inflates to more than \(limit) bytes (the limit for a data file); refusing to go on")
                }
                output.append(contentsOf: repeatElement(0, count: min(output.count, limit - output.count)))
            }
            let chunk = min(input.count - offset, maxChunk)
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + offset)
            stream.pointee.avail_in = uInt(chunk)
            let status: Int32 = output.withUnsafeMutableBufferPointer { outBuf in
                stream.pointee.next_out = outBuf.baseAddress! + produced
                stream.pointee.avail_out = uInt(min(outBuf.count - produced, maxChunk))
                let before = stream.pointee.avail_out
                let s = inflate(stream, Z_NO_FLUSH)
                produced += Int(before - stream.pointee.avail_out)
                return s
            }
            offset += chunk - Int(stream.pointee.avail_in)
            switch status {
            case Z_STREAM_END:
                return offset
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible. With output space left, that means the input ran out mid-stream.
                if stream.pointee.avail_out > 0 && offset == input.count {
                    throw TrainerError(
                        "\(name): truncated gzip stream (input ended after \(input.count) bytes, "
                            + "\(produced) bytes inflated, end of stream not reached)")
                }
                continue
            case Z_DATA_ERROR:
                throw TrainerError(
                    "\(name): corrupt gzip data (zlib: \(zlibMessage); stopped at byte \(offset) of \(input.count))")
            case Z_MEM_ERROR:
                throw TrainerError("\(name): out of memory while inflating (\(produced) bytes inflated)")
            default:
                throw TrainerError("\(name): zlib inflate failed with status \(status) (\(zlibMessage))")
            }
        }
    }

    var zlibMessage: String {
        stream.pointee.msg.map { String(cString: $0) } ?? "no message"
    }
}

// MARK: - Helpers

/// The first `count` bytes as "1f 8b 08", for error messages; "(empty)" for no bytes.
func hexPrefix(_ data: [UInt8], _ count: Int) -> String {
    if data.isEmpty { return "(empty)" }
    let digits = Array("0123456789abcdef")
    let shown = data.prefix(count).map { String([digits[Int($0 >> 4)], digits[Int($0 & 15)]]) }
    return shown.joined(separator: " ") + (data.count > count ? " …" : "")
}
