// Roofline: `dist-trainer roofline`, the fastest an epoch could be on this machine.
//
// Times exactly the matrix products of one training step of the model (forward, weight gradients,
// input gradients: Network.stepProducts, the calls training makes) on a shard of the global batch, with the
// threads a rank would use, and scales to an epoch. Everything else a step does (BatchNorm, dropout, Adam, communication) is
// overhead on top of this bound; scripts/bench.sh reports epoch times as a fraction of it.
// By default every product is in the precision's own format (fp32: all float32, the bound of a
// trainer made of float32 products); `--as-trained` times the weight gradients as training
// computes them (from bf16 copies of their exactly rounded operands where the CPU has bf16
// arithmetic), the bound of this trainer's own products. `--memory` times instead the step's
// memory-bound part, the optimizer's traffic of this rank's part (Kernels/MemoryFloor.swift): the
// products' bound plus this one is the bound of a step.
import ArgumentParser
import Collectives
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
    @Flag(help: "Time instead the optimizer's memory traffic of a step (this rank's part of the parameters, gradients and both moments read and written back; the weights' bf16 copy too in bf16), streamed by the rank's threads from the last-level cache and from memory.")
    var memory = false

    func validate() throws {
        guard ModelPreset(rawValue: model) != nil else { throw ValidationError("--model: expected 1, 2 or 3, found \(model)") }
        for (flag, value) in [("--batch-size", batchSize), ("--ranks", ranks), ("--threads", threads), ("--input-width", inputWidth)] where value < 1 {
            throw ValidationError("\(flag): expected at least 1, found \(value)")
        }
        if classes < 2 { throw ValidationError("--classes: expected at least 2, found \(classes)") }
        // Every rank computes at least one row, and an epoch has at least one step.
        if ranks > batchSize { throw ValidationError("--ranks: \(ranks) is more than the batch's \(batchSize) rows (--batch-size)") }
        if samples < batchSize { throw ValidationError("--samples: \(samples) is fewer than one batch of \(batchSize) (--batch-size)") }
        // What the network of one rank holds, roughly (parameters with their gradients and copies,
        // a shard's activations in several arrays each), against the machine's memory.
        let parameters = Double(ParameterLayout(architecture).count)
        let units = Double(inputWidth + architecture.hidden.reduce(0, +) + classes)
        let bytes = 4 * (4 * parameters + 8 * Double(shardRows) * units)
        let available = Double(ProcessInfo.processInfo.physicalMemory)
        if bytes > available / 2 {
            throw ValidationError(String(format: "--batch-size %d, --input-width %d: one rank's step needs about %.1f GB, more than half of this machine's %.1f GB",
                                         batchSize, inputWidth, bytes / 1e9, available / 1e9))
        }
    }

    /// The model of the flags (`validate` checked the preset).
    var architecture: Architecture { ModelPreset(rawValue: model)!.architecture(inputWidth: inputWidth, classCount: classes) }
    /// Rows of a rank's shard of the batch.
    var shardRows: Int { (batchSize + ranks - 1) / ranks }

    func run() throws {
        do { try precision.checkSupported() } catch let e as SettingError { throw ValidationError(e.presented { "--" + $0 }) }
        setComputeThreads(threads)
        let (arch, rows, steps) = (architecture, shardRows, samples / batchSize)
        if memory { return reportMemoryFloor(arch) }
        // The network training would build, products only: the same calls in the same precision.
        let network = Network(architecture: arch, capacity: rows, precision: precision)
        network.reset(seed: 1)
        for i in 0..<(rows * arch.inputWidth) { network.input.pointer[i] = Float(i % 17) * 0.01 }
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

    /// `--memory`: the optimizer's bytes of the largest rank's part, streamed from each level.
    func reportMemoryFloor(_ arch: Architecture) {
        // The largest part of ShardedAdam's split: the rank every other rank waits for.
        let part = Partition(count: ParameterLayout(arch).count, parts: ranks).counts.map(Int.init).max() ?? 0
        let floor = MemoryFloor(OptimizerTraffic(parameters: part, bf16Copy: precision == .bf16), threads: threads)
        let megabytes = Double(floor.traffic.bytes) / 1e6
        let figures = MemoryLevel.allCases.map { level in
            let seconds = floor.seconds(from: level)
            return String(format: "%@ %.3f ms/step (%.0f GB/s)", level.source, seconds * 1e3, megabytes / seconds / 1e3)
        }
        print(String(format: "memory floor model %@ optimizer part %d parameters x %d threads, %@: %.2f MB per step (%.2f read, %.2f written); %@",
                     arch.widthsDescription, part, threads, precision.rawValue, megabytes, Double(floor.traffic.bytesRead) / 1e6,
                     Double(floor.traffic.bytesWritten) / 1e6, figures.joined(separator: ", ")))
    }
}
