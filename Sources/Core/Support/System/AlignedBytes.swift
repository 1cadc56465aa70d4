// AlignedBytes: a page-aligned byte buffer that is allocated once and reused — the image of a file
// written with O_DIRECT (see AtomicFile), which must come from aligned memory in whole blocks.
// Not a general container: it grows by reallocating (its contents are not kept) and is freed with
// its owner.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class AlignedBytes {
    /// The alignment of the start and of the capacity (a page: what O_DIRECT needs on Linux's file
    /// systems, which ask for at most the logical block size).
    public static let alignment = 4096
    public private(set) var pointer: UnsafeMutableRawPointer
    public private(set) var capacity: Int

    public init(capacity: Int = alignment) {
        self.capacity = 0
        pointer = UnsafeMutableRawPointer(bitPattern: AlignedBytes.alignment)!
        reserve(capacity)
    }

    deinit { if capacity > 0 { free(pointer) } }

    /// `count` bytes rounded up to whole blocks of `alignment` (what an O_DIRECT write takes).
    public static func wholeBlocks(_ count: Int) -> Int { (count + alignment - 1) / alignment * alignment }

    /// Makes room for at least `count` bytes (a whole number of pages); the contents are not kept.
    public func reserve(_ count: Int) {
        guard count > capacity else { return }
        let size = Self.wholeBlocks(count)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, Self.alignment, size) == 0, let raw else { fatalError("out of memory: \(size) aligned bytes") }
        if capacity > 0 { free(pointer) }
        // Zeroed once: the padding after a file's last byte is written out (then cut off), never read.
        memset(raw, 0, size)
        (pointer, capacity) = (raw, size)
    }
}
