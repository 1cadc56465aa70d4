// ConcurrentNetworkTests: what the in-process ranks rely on — Networks used from several threads at
// once (each thread its own Network) compute bit for bit what each computes alone. The layer kernels
// are pure functions of their buffers and the random numbers are counter-based; the one shared
// object is oneDNN's engine (MatrixEngine.shared: one stream, a cache of primitives whose memory
// objects are pointed at the caller's buffers), whose lock makes the products take turns. Threads
// that meet new product shapes at the same time exercise the cache under that lock.
@testable import Collectives
@testable import Kernels
@testable import Model
import TestSupport
import XCTest

final class ConcurrentNetworkTests: XCTestCase {
    /// Thread t's problem: its own widths and row count, so the threads create different primitives.
    struct Problem {
        let arch: Architecture
        let rows: Int

        init(_ t: Int) {
            arch = Architecture(inputWidth: 10 + t, hidden: [8 + 3 * t, 5 + t], dropoutAfter: [true, false], classCount: 4)
            rows = 6 + 5 * t
        }

        /// One training step's gradient and loss, and the inference logits, on a fresh network.
        func compute() throws -> [Float] {
            let net = Network(architecture: arch, capacity: rows)
            net.reset(seed: 3)
            var rng = SplitMix64(UInt64(rows))
            for i in 0..<(rows * arch.inputWidth) { net.input.pointer[i] = rng.uniform(0, 1) }
            for i in 0..<rows { net.labels.pointer[i] = Int32(i % arch.classCount) }
            let ctx = StepContext(globalBatch: rows, firstRow: 0, rows: rows, dropoutKey: RandomKey(seed: 1, .dropout).with(rows),
                                  keep: 0.5, batchNormMode: .sync)
            let tally = try net.computeGradients(ctx, collective: SingleProcess())
            net.forwardInference(rows: rows)
            return net.gradients.array + Array(net.logits.array[0..<(rows * arch.classCount)]) + [Float(tally.lossSum)]
        }
    }

    func testNetworksOnConcurrentThreadsComputeWhatTheyComputeAlone() throws {
        let threads = 8
        // The first round meets every shape for the first time on all threads at once.
        // (runRanks only for its threads: each works on its own network, without collectives.)
        let rounds = try (0..<4).map { _ in try runRanks(threads) { c in try Problem(c.rank).compute() } }
        let alone = try (0..<threads).map { try Problem($0).compute() }
        for (round, together) in rounds.enumerated() {
            for t in 0..<threads { XCTAssertEqual(together[t], alone[t], "round \(round): thread \(t)") }
        }
    }
}
