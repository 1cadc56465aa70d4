// SharedProductOperands: the weight-gradient products' rounded operands of a whole global batch, in
// bfloat16, in memory the ranks of one node share.
//
// With them each rank computes the weight gradients of the parameters it updates (its part of the
// sharded Adam step) over every rank's rows, instead of its own rows' gradients of every parameter
// followed by a reduce-scatter that adds the ranks' parts up: the sum over the ranks happens inside
// the product's accumulation, and no gradient is written twice or read from another rank. The bits
// cannot change: the operands are rounded so that every product and partial sum is exact (see
// ExactSum.swift), so one product over all the rows equals the sum of the ranks' products.
// Storage and layout only; Network writes this rank's rows (`computeWeightGradients`) and reads
// everyone's (`computeSharedWeightGradients`).
import Kernels

public struct SharedProductOperands {
    /// Rows the storage holds: the global batch of a step.
    public let rows: Int
    /// Dense layer l's input [rows × fanIn], every rank's shard in row order.
    let inputs: [UnsafeMutablePointer<UInt16>]
    /// The gradient of dense layer l's output [rows × fanOut], likewise.
    let gradients: [UnsafeMutablePointer<UInt16>]

    /// The bfloat16 values `layout`'s operands take at `rows` rows.
    public static func count(layout: ParameterLayout, rows: Int) -> Int {
        layout.allDense.reduce(0) { $0 + rows * ($1.fanIn + $1.fanOut) }
    }

    /// Lays the operands out in `storage` (`count(layout:rows:)` values that the caller keeps alive).
    public init(storage: UnsafeMutablePointer<UInt16>, layout: ParameterLayout, rows: Int) {
        self.rows = rows
        var next = storage
        var (inputs, gradients) = ([UnsafeMutablePointer<UInt16>](), [UnsafeMutablePointer<UInt16>]())
        for slot in layout.allDense {
            inputs.append(next)
            next += rows * slot.fanIn
            gradients.append(next)
            next += rows * slot.fanOut
        }
        (self.inputs, self.gradients) = (inputs, gradients)
    }
}
