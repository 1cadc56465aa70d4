// Roofline: `dist-trainer roofline`, the fastest an epoch could be on this machine.
//
// Times exactly the matrix products of one training step of the model (forward, weight gradients,
// input gradients, through oneDNN as training runs them) on a shard of the global batch, with the
// threads a rank would use, and scales to an epoch. Everything else a step does (BatchNorm, dropout, Adam, communication) is
// overhead on top of this bound; scripts/bench.sh reports epoch times as a fraction of it.
import CoreSupport
import Kernels
import Model
import Datasets
import ArgumentParser
import Foundation

struct RooflineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roofline",
        abstract: "Time the model's matrix products alone: the lower bound of an epoch on this machine.")

    @Option(help: "The seed's model preset (1, 2, 3).") var model: Int = 2
    @Option(help: "Global minibatch size.") var batchSize: Int = 128
    @Option(help: "Ranks sharing the batch (each computes batch/ranks rows on its own core).") var ranks: Int = 1
    @Option(help: "Threads of the products.") var threads: Int = 1
    @Option(help: "Training samples per epoch.") var samples: Int = 48_000
    @Option(help: "Pixels per image.") var inputWidth: Int = 784
    @Option(help: "Number format of the products: fp32, or bf16 (the conversions to bf16 a step needs are timed too).")
    var precision: ProductPrecision = .fp32

    func run() throws {
        guard let preset = ModelPreset(rawValue: model) else { throw ValidationError("--model: expected 1, 2 or 3, found \(model)") }
        do { try precision.checkSupported() } catch let e as TrainerError { throw ValidationError(e.message) }
        setComputeThreads(threads)
        let arch = preset.architecture(inputWidth: inputWidth, classCount: FashionMNIST.classCount)
        let rows = (batchSize + ranks - 1) / ranks
        let layout = ParameterLayout(arch)
        let params = Buffer<Float>(count: layout.count), grads = Buffer<Float>(count: layout.count)
        initializeParameters(params.all, layout: layout, seed: 1)
        let widths = [arch.inputWidth] + arch.hidden + [arch.classCount]
        let acts = widths.map { Buffer<Float>(count: rows * $0) }
        let deltas = widths.map { Buffer<Float>(count: rows * $0) }
        for b in acts { for i in 0..<b.count { b.pointer[i] = Float(i % 17) * 0.01 } }
        // bf16 copies of the weights, activations and deltas (refreshed every step, as training does).
        let (params16, acts16, deltas16) = (Buffer<UInt16>(count: layout.count), widths.map { Buffer<UInt16>(count: rows * $0) },
                                            widths.map { Buffer<UInt16>(count: rows * $0) })
        // One step's products exactly as training runs them (bias and ReLU fused in the forward).
        func step() {
            let bf16 = precision == .bf16
            if bf16 { convertToBF16(params.pointer, count: layout.count, into: params16.pointer) }
            for (l, slot) in layout.allDense.enumerated() {
                let (w, b, y, relu) = (slot.weight, params.pointer + slot.bias, acts[l + 1].pointer, l < arch.blockCount)
                if bf16 {
                    convertToBF16(acts[l].pointer, count: rows * slot.fanIn, into: acts16[l].pointer)
                    denseForward(x: acts16[l].pointer, rows: rows, weight: params16.pointer + w, bias: b, fanIn: slot.fanIn, fanOut: slot.fanOut, relu: relu, y: y)
                } else {
                    denseForward(x: acts[l].pointer, rows: rows, weight: params.pointer + w, bias: b, fanIn: slot.fanIn, fanOut: slot.fanOut, relu: relu, y: y)
                }
            }
            for (l, slot) in layout.allDense.enumerated().reversed() {
                let (dW, dx) = (grads.pointer + slot.weight, l > 0 ? deltas[l].pointer : nil)
                if bf16 {
                    convertToBF16(deltas[l + 1].pointer, count: rows * slot.fanOut, into: deltas16[l + 1].pointer)
                    denseBackward(x: acts16[l].pointer, dy: deltas16[l + 1].pointer, rows: rows, weight: params16.pointer + slot.weight,
                                  fanIn: slot.fanIn, fanOut: slot.fanOut, dWeight: dW, dx: dx)
                } else {
                    denseBackward(x: acts[l].pointer, dy: deltas[l + 1].pointer, rows: rows, weight: params.pointer + slot.weight,
                                  fanIn: slot.fanIn, fanOut: slot.fanOut, dWeight: dW, dx: dx)
                }
            }
        }
        let steps = samples / batchSize
        for _ in 0..<20 { step() }
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<50 { step() }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / 50)
        }
        let flops = layout.allDense.enumerated().reduce(0.0) { total, e in
            let (l, s) = e
            return total + 2 * Double(rows * s.fanIn * s.fanOut) * (l > 0 ? 3 : 2)
        }
        print(String(format: "roofline model %@ shard %d rows x %d threads, %@ (%@): %.3f ms/step, %.1f GFLOP/s, %.3f s/epoch (%d steps)",
                     arch.widthsDescription, rows, threads, precision.rawValue, matrixLibraryDescription(), best * 1e3, flops / best / 1e9,
                     best * Double(steps), steps))
    }
}
