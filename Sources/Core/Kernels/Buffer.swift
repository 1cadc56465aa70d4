// Buffer: a fixed-size, 64-byte aligned array of numbers that lives as long as its owner.
//
// The training step works on raw pointers into buffers allocated once at set-up, so the hot
// loops never allocate, never copy-on-write and never check uniqueness. This is not a tensor
// type: it has no shape; callers keep the shapes (see ParameterLayout and BlockBuffers).

/// An owned, zero-initialised, 64-byte aligned block of `count` elements.
public final class Buffer<Element: Numeric>: @unchecked Sendable {
    /// Start of the storage; valid for `count` elements until the buffer is released.
    public let pointer: UnsafeMutablePointer<Element>
    /// Number of elements.
    public let count: Int
    /// Whether this buffer allocated its memory (and frees it).
    private let owned: Bool

    public init(count: Int) {
        precondition(count >= 0)
        self.count = count
        owned = true
        // Cache-line alignment keeps vector loads aligned and stops two buffers sharing a line.
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Element>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// A buffer holding a copy of `values`.
    public convenience init(_ values: [Element]) {
        self.init(count: values.count)
        load(values)
    }

    /// A buffer over `count` elements of memory someone else owns and keeps alive for as long as
    /// this buffer (memory shared with other processes, say), zeroed here.
    public init(borrowing memory: UnsafeMutablePointer<Element>, count: Int) {
        precondition(count >= 0)
        self.count = count
        pointer = memory
        owned = false
        pointer.update(repeating: 0, count: count)
    }

    deinit { if owned { pointer.deallocate() } }

    /// The whole buffer as a buffer pointer (for collectives and bulk copies).
    public var all: UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }

    /// A copy of the contents as an array (for tests, checkpoints and reports; not for hot loops).
    public var array: [Element] { Array(all) }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// Copies `values` (same count) into this buffer.
    public func load(_ values: [Element]) {
        precondition(values.count == count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// Copies all of `other` (same count) into this buffer.
    public func copy(from other: Buffer<Element>) {
        precondition(other.count == count)
        pointer.update(from: other.pointer, count: count)
    }
}
