// ZipArchive: reading the members of a zip archive held in memory — what NumPy's .npz files are
// (np.savez stores its arrays uncompressed, np.savez_compressed deflates them).
//
// The central directory at the end of the file is the index: each member's name, compression
// method, sizes and where its local header is. Only what .npz files use is supported: stored and
// deflated members, no encryption, no multi-disk archives, no zip64 (an archive over 4 GiB is
// refused in one line). Every offset and size read from the file is checked against the file's
// length before use. Not here: what the members hold (NumpyFile).
import CoreSupport

/// One member of a zip archive.
public struct ZipEntry: Sendable {
    public var name: String
    /// 0 stored, 8 deflated.
    var method: Int
    var compressedSize: Int
    var size: Int
    var localHeader: Int
}

/// A zip archive's members, read from its bytes (`name` is blamed in errors).
public struct ZipArchive {
    public let entries: [ZipEntry]
    let bytes: [UInt8]
    let name: String

    public init(_ bytes: [UInt8], name: String) throws {
        self.bytes = bytes
        self.name = name
        // End of central directory: signature 0x06054b50, within the last 65 557 bytes (a comment).
        let n = bytes.count
        guard n >= 22, let end = stride(from: n - 22, through: max(0, n - 65_557), by: -1).first(where: { Self.u32(bytes, $0) == 0x0605_4b50 }) else {
            throw TrainerError("\(name): not a zip archive (.npz): no end-of-central-directory record")
        }
        let count = Int(Self.u16(bytes, end + 10)), size = Int(Self.u32(bytes, end + 12)), start = Int(Self.u32(bytes, end + 16))
        if count == 0xFFFF || size == 0xFFFF_FFFF || start == 0xFFFF_FFFF {
            throw TrainerError("\(name): a zip64 archive (over 4 GiB or 65 535 members), which this reader does not support")
        }
        guard start + size <= end else { throw TrainerError("\(name): zip central directory at \(start)+\(size) lies beyond its end record at \(end)") }
        var entries: [ZipEntry] = []
        var at = start
        for _ in 0..<count {
            guard at + 46 <= end, Self.u32(bytes, at) == 0x0201_4b50 else { throw TrainerError("\(name): corrupt zip central directory at byte \(at)") }
            let flags = Int(Self.u16(bytes, at + 8))
            let (nameLength, extra, comment) = (Int(Self.u16(bytes, at + 28)), Int(Self.u16(bytes, at + 30)), Int(Self.u16(bytes, at + 32)))
            guard at + 46 + nameLength <= end else { throw TrainerError("\(name): corrupt zip central directory at byte \(at)") }
            let entryName = String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            if flags & 1 != 0 { throw TrainerError("\(name): member \(entryName) is encrypted") }
            entries.append(ZipEntry(name: entryName, method: Int(Self.u16(bytes, at + 10)), compressedSize: Int(Self.u32(bytes, at + 20)),
                                    size: Int(Self.u32(bytes, at + 24)), localHeader: Int(Self.u32(bytes, at + 42))))
            at += 46 + nameLength + extra + comment
        }
        self.entries = entries
    }

    /// The contents of member `entry`.
    public func contents(of entry: ZipEntry) throws -> [UInt8] {
        let h = entry.localHeader
        guard h + 30 <= bytes.count, Self.u32(bytes, h) == 0x0403_4b50 else {
            throw TrainerError("\(name): member \(entry.name): no local header at byte \(h)")
        }
        let data = h + 30 + Int(Self.u16(bytes, h + 26)) + Int(Self.u16(bytes, h + 28))
        guard data + entry.compressedSize <= bytes.count else {
            throw TrainerError("\(name): member \(entry.name) runs past the end of the file (truncated archive)")
        }
        switch entry.method {
        case 0:
            guard entry.compressedSize == entry.size else { throw TrainerError("\(name): stored member \(entry.name) has two sizes") }
            return Array(bytes[data..<(data + entry.size)])
        case 8:
            return try bytes.withUnsafeBufferPointer {
                try inflateRaw(UnsafeBufferPointer(rebasing: $0[data..<(data + entry.compressedSize)]), size: entry.size, name: "\(name): \(entry.name)")
            }
        default:
            throw TrainerError("\(name): member \(entry.name) uses zip compression method \(entry.method); expected stored (0) or deflate (8)")
        }
    }

    static func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    static func u32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(u16(b, i)) | UInt32(u16(b, i + 2)) << 16 }
}
