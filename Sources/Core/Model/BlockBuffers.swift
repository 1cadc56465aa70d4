// BlockBuffers: the activation and scratch buffers of one hidden block of a Network, allocated once
// for the network's row capacity and reused by every step and evaluation chunk.
//
// Storage only: the Network's forward and backward passes decide what goes in them.
import Kernels

/// Activation buffers of one hidden block (Dense → ReLU → BatchNorm → Dropout).
final class BlockBuffers {
    let width: Int
    /// ReLU output = BatchNorm input [rows × width].
    let a: Buffer<Float>
    /// Normalised activations x̂, kept for the backward pass.
    let xhat: Buffer<Float>
    /// Block output, after BatchNorm and dropout; the next layer's input.
    let out: Buffer<Float>
    /// Dropout mask (0 or 1/keep), if the block has dropout.
    let mask: Buffer<Float>?
    /// Gradient with respect to the block output, then (in place) to its pre-activation.
    let grad: Buffer<Float>
    /// Per-feature batch moments and backward coefficients.
    let mean: Buffer<Float>, variance: Buffer<Float>, invStd: Buffer<Float>, coefficients: Buffer<Float>
    /// Per-feature sums forward (Σa, Σa², count of a > 0) and backward (Σdy, Σdy·x̂), in Double.
    let sums: Buffer<Double>, gradSums: Buffer<Double>

    init(width: Int, capacity: Int, dropout: Bool) {
        self.width = width
        let n = capacity * width
        a = Buffer(count: n)
        xhat = Buffer(count: n)
        out = Buffer(count: n)
        mask = dropout ? Buffer(count: n) : nil
        grad = Buffer(count: n)
        mean = Buffer(count: width)
        variance = Buffer(count: width)
        invStd = Buffer(count: width)
        coefficients = Buffer(count: 3 * width)
        sums = Buffer(count: 3 * width)
        gradSums = Buffer(count: 2 * width)
    }
}
