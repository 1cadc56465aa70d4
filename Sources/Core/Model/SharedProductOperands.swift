// SharedProductOperands: the weight-gradient products' rounded operands of a whole global batch, in
// bfloat16, in memory the ranks of one node share.
//
// With them each rank computes the weight gradients of the parameters it updates (its part of the
// sharded Adam step) over every rank's rows, instead of its own rows' gradients of every parameter
// followed by a reduce-scatter that adds the ranks' parts up: the sum over the ranks happens inside
// the product's accumulation, and no gradient is written twice or read from another rank. The bits
// cannot change: the operands are rounded so that every product and partial sum is exact (see
// ExactSum.swift), so one product over all the rows equals the sum of the ranks' products.
//
// A rank's part of a weight matrix is a range of its rows (a row cut by the part's ends counts
// whole), which come from a range of the layer input's columns; each rank's columns are kept in a
// dense block of their own, since oneDNN's brgemm products read only dense operands (a column
// range read in place took its gemm path: as fast here, but 3-5 MB more memory). The output gradients
// are read whole, as they are. Storage and layout only; Network writes this rank's rows of every
// block (`computeWeightGradients`) and reads its own blocks (`computeSharedWeightGradients`).
import Collectives
import Kernels

public struct SharedProductOperands {
    /// Rows the storage holds: the global batch of a step.
    public let rows: Int
    /// This rank's first row of the global batch.
    public let firstRow: Int
    /// The parameters' split among the ranks (ShardedAdam's), which the blocks follow.
    public let partition: Partition
    /// Dense layer l's input: every rank's block of columns, based at this rank's first row (what
    /// this rank writes).
    let inputWrites: [[ColumnBlock]]
    /// Dense layer l's input: this rank's block of columns (whole rows; empty when its part has
    /// none of layer l's weights).
    let inputs: [ColumnBlock]
    /// The gradient of dense layer l's output [rows × fanOut], every rank's rows.
    let gradients: [UnsafeMutablePointer<UInt16>]

    /// Each rank's columns of each dense layer's input: the rows of the layer's weight that the
    /// rank's part of `partition` holds (a cut row whole).
    static func columns(layout: ParameterLayout, partition: Partition) -> [[Range<Int>]] {
        layout.allDense.map { slot in
            partition.counts.indices.map { q in
                let part = partition.range(q)
                let (first, end) = (max(part.lowerBound, slot.weight), min(part.upperBound, slot.weight + slot.fanIn * slot.fanOut))
                guard first < end else { return 0..<0 }
                return ((first - slot.weight) / slot.fanOut)..<((end - slot.weight + slot.fanOut - 1) / slot.fanOut)
            }
        }
    }

    /// The bfloat16 values the operands take at `rows` rows.
    public static func count(layout: ParameterLayout, partition: Partition, rows: Int) -> Int {
        zip(layout.allDense, columns(layout: layout, partition: partition)).reduce(0) { total, layer in
            total + rows * (layer.1.reduce(0) { $0 + $1.count } + layer.0.fanOut)
        }
    }

    /// Lays the operands out in `storage` (`count` values, the same memory on every rank, kept alive
    /// by the caller) for the rank whose shard of the batch starts at `firstRow` and who updates
    /// `partition.range(rank)`.
    public init(storage: UnsafeMutablePointer<UInt16>, layout: ParameterLayout, partition: Partition, rank: Int, rows: Int, firstRow: Int) {
        (self.rows, self.firstRow, self.partition) = (rows, firstRow, partition)
        var next = storage
        var (writes, inputs, gradients) = ([[ColumnBlock]](), [ColumnBlock](), [UnsafeMutablePointer<UInt16>]())
        for (slot, columns) in zip(layout.allDense, SharedProductOperands.columns(layout: layout, partition: partition)) {
            var blocks = [ColumnBlock]()
            for (q, c) in columns.enumerated() {
                blocks.append(ColumnBlock(columns: c, base: next + firstRow * c.count))
                if q == rank { inputs.append(ColumnBlock(columns: c, base: next)) }
                next += rows * c.count
            }
            writes.append(blocks.filter { !$0.columns.isEmpty })
            gradients.append(next)
            next += rows * slot.fanOut
        }
        (inputWrites, self.inputs, self.gradients) = (writes, inputs, gradients)
    }
}
