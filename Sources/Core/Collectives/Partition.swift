// Partition: a flat buffer split into one contiguous part per rank.
//
// The sharded optimizer step (reduce-scatter of gradients, Adam on this rank's part, allgather of
// parameters) needs every rank to agree on the parts; they are computed once, here, with part
// boundaries on 16-element (64-byte) multiples so each part's loops start cache-line aligned.

/// One contiguous part of a buffer of `count` elements per rank.
public struct Partition: Equatable, Sendable {
    /// Elements in each rank's part.
    public let counts: [Int32]
    /// Offset of each rank's part.
    public let offsets: [Int32]

    public init(count: Int, parts: Int, alignment: Int = 16) {
        precondition(parts > 0 && count >= 0 && count < Int(Int32.max))
        var bounds = (0...parts).map { p -> Int in
            p == parts ? count : (p * count / parts) / alignment * alignment
        }
        for p in 1..<bounds.count { bounds[p] = max(bounds[p], bounds[p - 1]) }
        counts = (0..<parts).map { Int32(bounds[$0 + 1] - bounds[$0]) }
        offsets = (0..<parts).map { Int32(bounds[$0]) }
    }

    /// Rank `r`'s part.
    public func range(_ r: Int) -> Range<Int> { Int(offsets[r])..<(Int(offsets[r]) + Int(counts[r])) }
}
