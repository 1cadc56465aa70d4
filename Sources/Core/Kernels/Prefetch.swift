// Prefetch: asking the memory system for bytes before a loop reads them. A hint only: no result
// depends on it, and an address that is not mapped is ignored.
//
// Why: a minibatch's samples lie at random places in a data set far larger than the caches, and
// a sample (784 bytes of an image) ends before the hardware's stream prefetcher has learned it, so
// the gather waited on memory for most of its time. Asked for one step ahead, the samples arrive
// (in the outer caches) while the step's products run; asked for again two rows ahead within the
// gather, they are in the nearest cache when their row is converted.
import CDNNL

/// The size of a cache line on the CPUs this runs on (x86-64 and Arm64 servers).
@usableFromInline let cacheLineBytes = 64

/// Asks for the `count` bytes at `p` to be brought into the caches. (Inlinable: called per sample
/// from other modules, where a call per image cost more than the hint.)
@inlinable @inline(__always)
public func prefetch(_ p: UnsafeRawPointer, bytes count: Int) {
    var offset = 0
    while offset < count {
        dist_trainer_prefetch(p + offset)
        offset += cacheLineBytes
    }
}
