// Roofline: `dist-trainer roofline`, the fastest an epoch could be on this machine.
//
// Times exactly the matrix products of one training step of the model (forward, weight gradients,
// input gradients) on a shard of the global batch, with the BLAS threads a rank would use, and
// scales to an epoch. Everything else a step does (BatchNorm, dropout, Adam, communication) is
// overhead on top of this bound; scripts/bench.sh reports epoch times as a fraction of it.
import ArgumentParser
import Core
import Foundation

struct RooflineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roofline",
        abstract: "Time the model's matrix products alone: the lower bound of an epoch on this machine.")

    @Option(help: "The seed's model preset (1, 2, 3).") var model: Int = 2
    @Option(help: "Global minibatch size.") var batchSize: Int = 128
    @Option(help: "Ranks sharing the batch (each computes batch/ranks rows on its own core).") var ranks: Int = 1
    @Option(help: "BLAS threads.") var threads: Int = 1
    @Option(help: "Training samples per epoch.") var samples: Int = 48_000
    @Option(help: "Pixels per image.") var inputWidth: Int = 784

    func run() throws {
        guard let preset = ModelPreset(rawValue: model) else { throw ValidationError("--model: expected 1, 2 or 3, found \(model)") }
        setBlasThreads(threads)
        let arch = preset.architecture(inputWidth: inputWidth, classCount: FashionMNIST.classCount)
        let rows = (batchSize + ranks - 1) / ranks
        let layout = ParameterLayout(arch)
        let params = Buffer<Float>(count: layout.count), grads = Buffer<Float>(count: layout.count)
        initializeParameters(params.all, layout: layout, seed: 1)
        let widths = [arch.inputWidth] + arch.hidden + [arch.classCount]
        let acts = widths.map { Buffer<Float>(count: rows * $0) }
        let deltas = widths.map { Buffer<Float>(count: rows * $0) }
        for b in acts { for i in 0..<b.count { b.pointer[i] = Float(i % 17) * 0.01 } }
        func step() {
            for (l, slot) in layout.allDense.enumerated() {
                sgemm(transA: false, transB: false, m: rows, n: slot.fanOut, k: slot.fanIn, alpha: 1,
                      a: acts[l].pointer, lda: slot.fanIn, b: params.pointer + slot.weight, ldb: slot.fanOut,
                      beta: 0, c: acts[l + 1].pointer, ldc: slot.fanOut)
            }
            for (l, slot) in layout.allDense.enumerated().reversed() {
                sgemm(transA: true, transB: false, m: slot.fanIn, n: slot.fanOut, k: rows, alpha: 1,
                      a: acts[l].pointer, lda: slot.fanIn, b: deltas[l + 1].pointer, ldb: slot.fanOut,
                      beta: 0, c: grads.pointer + slot.weight, ldc: slot.fanOut)
                if l > 0 {
                    sgemm(transA: false, transB: true, m: rows, n: slot.fanIn, k: slot.fanOut, alpha: 1,
                          a: deltas[l + 1].pointer, lda: slot.fanOut, b: params.pointer + slot.weight, ldb: slot.fanOut,
                          beta: 0, c: deltas[l].pointer, ldc: slot.fanIn)
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
        print(String(format: "roofline model %@ shard %d rows x %d threads: %.3f ms/step, %.1f GFLOP/s, %.3f s/epoch (%d steps)",
                     arch.widthsDescription, rows, threads, best * 1e3, flops / best / 1e9, best * Double(steps), steps))
    }
}
