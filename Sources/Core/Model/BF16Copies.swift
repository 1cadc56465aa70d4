// BF16Copies: the bfloat16 copies of what a Network's products read — in bf16 precision the weights,
// each layer's input and each layer's output gradient; in fp32 precision, on a CPU with bf16
// arithmetic, only the weight-gradient products' operands (exact either way, see ExactSum.swift).
//
// The float32 values stay the masters (parameters, activations and gradients everywhere else, Adam
// and the reductions all in float32 or Double); only the products see bf16, as in PyTorch's CPU
// autocast. Storage only; the Network decides when to convert.
import Kernels

final class BF16Copies {
    /// All parameters (only the Dense weights are read); nil when only the weight gradients use the copies.
    let parameters: Buffer<UInt16>?
    /// The input of dense layer l (l = 0: the images; l > 0: hidden block l − 1's output).
    let inputs: [Buffer<UInt16>]
    /// The gradient with respect to dense layer l's output (pre-activation of a block, logits of the head).
    let gradients: [Buffer<UInt16>]

    /// `weights`: whether the forward and input-gradient products read bf16 too (bf16 precision);
    /// `weightStorage`: memory for the parameters' copy that the caller keeps alive (one copy the
    /// ranks of a node share, see Network), by default the copies' own.
    init(layout: ParameterLayout, capacity: Int, weights: Bool, weightStorage: UnsafeMutablePointer<UInt16>? = nil) {
        parameters = !weights ? nil : weightStorage.map { Buffer(borrowing: $0, count: layout.count) } ?? Buffer(count: layout.count)
        inputs = layout.allDense.map { Buffer(count: capacity * $0.fanIn) }
        gradients = layout.allDense.map { Buffer(count: capacity * $0.fanOut) }
    }
}
