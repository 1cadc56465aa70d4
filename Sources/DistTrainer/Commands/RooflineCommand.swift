// Roofline: `dist-trainer roofline`, the fastest an epoch could be on this machine.
//
// Times exactly the matrix products of one training step of the model (forward, weight gradients,
// input gradients: Network.stepProducts, the calls training makes) on a shard of the global batch, with the
// threads a rank would use, and scales to an epoch. Everything else a step does (BatchNorm, dropout, Adam, communication) is
// overhead on top of this bound; scripts/bench.sh reports epoch times as a fraction of it.
// By default every product is in the precision's own format (fp32: all float32, the bound of a
// trainer made of float32 products); `--as-trained` times the weight gradients as training
// computes them (from bf16 copies of their exactly rounded operands where the CPU has bf16
// arithmetic), the bound of this trainer's own products.
import ArgumentParser
import CoreSupport
import Foundation
import Kernels
import Model

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
    @Option(help: "Classes (the head's outputs).") var classes: Int = 10
    @Option(help: "Number format of the products: fp32, or bf16 (the conversions of activations to bf16 a step needs are timed too).")
    var precision: ProductPrecision = .fp32
    @Flag(help: "Time the weight-gradient products as training computes them (bf16 copies of exact operands where the CPU has bf16 arithmetic).")
    var asTrained = false

    func run() throws {
        guard let preset = ModelPreset(rawValue: model) else { throw ValidationError("--model: expected 1, 2 or 3, found \(model)") }
        do { try precision.checkSupported() } catch let e as SettingError { throw ValidationError(e.presented { "--" + $0 }) }
        setComputeThreads(threads)
        let arch = preset.architecture(inputWidth: inputWidth, classCount: classes)
        let rows = (batchSize + ranks - 1) / ranks
        // The network training would build, products only: the same calls in the same precision.
        let network = Network(architecture: arch, capacity: rows, precision: precision)
        network.reset(seed: 1)
        for i in 0..<(rows * arch.inputWidth) { network.input.pointer[i] = Float(i % 17) * 0.01 }
        let steps = samples / batchSize
        for _ in 0..<20 { network.stepProducts(rows: rows, asTrained: asTrained) }
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<50 { network.stepProducts(rows: rows, asTrained: asTrained) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / 50)
        }
        let flops = network.layout.allDense.enumerated().reduce(0.0) { total, e in
            let (l, s) = e
            return total + 2 * Double(rows * s.fanIn * s.fanOut) * (l > 0 ? 3 : 2)
        }
        let format = asTrained && network.exactProductsInBF16 && precision == .fp32 ? "fp32, weight gradients bf16 (exact)" : precision.rawValue
        print(String(format: "roofline model %@ shard %d rows x %d threads, %@ (%@): %.3f ms/step, %.1f GFLOP/s, %.3f s/epoch (%d steps)",
                     arch.widthsDescription, rows, threads, format, matrixLibraryDescription(), best * 1e3, flops / best / 1e9,
                     best * Double(steps), steps))
    }
}
