// Sharding: which rows of a global minibatch (or of an evaluation split) each rank computes.
//
// Contiguous, in rank order, sizes differing by at most one; every rank computes every rank's range
// without communicating. Partition (Partition.swift) is the analogous split of a flat buffer.

/// The contiguous rows of a global batch of `batch` samples that rank `rank` of `size` trains on:
/// sizes differ by at most one, for any size ≤ batch.
public func shardRange(batch: Int, rank: Int, size: Int) -> Range<Int> {
    (rank * batch / size)..<((rank + 1) * batch / size)
}
