// DataParallelOptimizerTests: the optimizer steps of data-parallel training on 1 to 8 in-process
// ranks. ShardedAdam (reduce-scatter, Adam on this rank's part, allgather) must equal one plain
// AdamState.update of the whole gradient, bit for bit, since the ThreadCollective adds the ranks'
// shares in rank order and Adam is elementwise; ReplicatedAdam (the 16-bit ring, then Adam on every
// rank) must use the 16-bit-rounded weight gradients — hand-rounded here — and the exact per-feature
// gradients.
@testable import Collectives
@testable import Model
import TestSupport
@testable import Training
import XCTest

final class DataParallelOptimizerTests: XCTestCase {
    /// 214 parameters: parts of multiples of 16, uneven on most rank counts, and weight-decayed
    /// ranges that cross part boundaries.
    static let arch = Architecture(inputWidth: 12, hidden: [8, 6], dropoutAfter: [true, false], classCount: 4)

    /// What every rank holds before one optimizer step: its local weight gradients, and the global
    /// per-feature sums (after the Double allreduce, the same on every rank).
    struct StepInput {
        var local: [[Float]]  // [rank][parameter]
        var exact: [Double]   // ExactSumsLayout order

        init(ranks: Int, step: Int, net: Network) {
            local = (0..<ranks).map { r in
                var rng = SplitMix64(UInt64(1000 * step + r))
                return rng.normals(net.layout.count, scale: 0.1)
            }
            var rng = SplitMix64(UInt64(77 + step))
            exact = (0..<net.exactLayout.count).map { _ in Double(rng.normal()) * 0.1 }
        }

        func load(into net: Network, rank: Int) {
            net.gradients.load(local[rank])
            net.exactSums.load(exact)
        }

        /// The whole-batch gradient as one process holds it: the ranks' weight gradients added in
        /// rank order (after `round`ing, for the 16-bit path), the per-feature slots from `exact`.
        func whole(_ layout: ParameterLayout, _ exactLayout: ExactSumsLayout, weights: ([[Float]], Int) -> Float) -> [Float] {
            var g = (0..<layout.count).map { weights(local, $0) }
            for (l, slot) in layout.allDense.enumerated() {
                for j in 0..<slot.fanOut { g[slot.bias + j] = Float(exact[exactLayout.bias[l] + j]) }
            }
            for (l, slot) in layout.norm.enumerated() {
                for j in 0..<slot.width {
                    g[slot.scale + j] = Float(exact[exactLayout.scale[l] + j])
                    g[slot.shift + j] = Float(exact[exactLayout.shift[l] + j])
                }
            }
            return g
        }
    }

    /// Parameters and Adam's moments of one rank after its steps.
    struct Outcome: Equatable {
        var parameters: [Float], m: [Float], v: [Float]
    }

    static func initialParameters(_ net: Network) -> [Float] {
        var rng = SplitMix64(5)
        return rng.normals(net.layout.count, scale: 0.5)
    }

    /// Three steps of `optimizer(rank's collective)` with weight decay on `n` ranks.
    func steps(_ n: Int, _ make: (Collective, Int) -> DataParallelOptimizer) throws -> [Outcome] {
        try runRanks(n) { c in
            let net = Network(architecture: Self.arch, capacity: 1)
            net.parameters.load(Self.initialParameters(net))
            let optimizer = make(c, net.layout.count)
            for step in 0..<3 {
                StepInput(ranks: n, step: step, net: net).load(into: net, rank: c.rank)
                try optimizer.step(net, collective: c, lr: 0.01, weightDecay: 0.1)
            }
            try optimizer.gatherMoments(collective: c)
            return Outcome(parameters: net.parameters.array, m: optimizer.adam.m.array, v: optimizer.adam.v.array)
        }
    }

    /// The same three steps of a plain AdamState on the whole gradients `weights` makes.
    func plainSteps(_ n: Int, variant: AdamVariant, weights: ([[Float]], Int) -> Float) -> Outcome {
        let net = Network(architecture: Self.arch, capacity: 1)
        var params = Self.initialParameters(net)
        let adam = AdamState(parameterCount: net.layout.count, variant: variant)
        for step in 0..<3 {
            let g = StepInput(ranks: n, step: step, net: net).whole(net.layout, net.exactLayout, weights: weights)
            adam.update(params: &params, grads: g, lr: 0.01, weightDecay: 0.1, decayed: net.layout.denseWeights)
        }
        return Outcome(parameters: params, m: adam.m.array, v: adam.v.array)
    }

    static func rankOrderSum(_ local: [[Float]], _ i: Int) -> Float {
        local.dropFirst().reduce(local[0][i]) { $0 + $1[i] }
    }

    func testShardedAdamEqualsPlainAdamOnTheWholeGradient() throws {
        for variant in AdamVariant.allCases {
            for n in 1...8 {
                let expected = plainSteps(n, variant: variant, weights: Self.rankOrderSum)
                let ranks = try steps(n) { c, count in ShardedAdam(adam: AdamState(parameterCount: count, variant: variant), collective: c) }
                for (r, got) in ranks.enumerated() { XCTAssertEqual(got, expected, "\(variant) on \(n) ranks: rank \(r)") }
            }
        }
    }

    func testReplicatedAdamUsesTheRingsRoundedSums() throws {
        for format in [GradientCompression.bf16, .fp16] {
            for n in 1...8 {
                let round = format == .bf16 ? Self.bf16 : { Float(Float16($0)) }
                let expected = plainSteps(n, variant: .adam) { Self.ringSum($0, $1, round: round) }
                let exact = plainSteps(n, variant: .adam, weights: Self.rankOrderSum)
                XCTAssertNotEqual(expected.parameters, exact.parameters, "\(format): the rounding must show")
                let ranks = try steps(n) { _, count in ReplicatedAdam(adam: AdamState(parameterCount: count, variant: .adam), compression: format) }
                for (r, got) in ranks.enumerated() { XCTAssertEqual(got, expected, "\(format) on \(n) ranks: rank \(r)") }
            }
        }
    }

    /// Two ranks, every weight gradient 1 on rank 0 and 3/4 of a 16-bit step at 1 on rank 1: the sum
    /// rounds up to 1 + one step (bf16: 1 + 2^-7; fp16: 1 + 2^-10) whichever way round the ring adds.
    /// The per-feature gradients (1/3, not a 16-bit value) stay exact.
    func testReplicatedAdamGradientsHandRounded() throws {
        for (format, unit) in [(GradientCompression.bf16, Float(0x1p-7)), (.fp16, Float(0x1p-10))] {
            let grads = try runRanks(2) { c -> [Float] in
                let net = Network(architecture: Self.arch, capacity: 1)
                net.gradients.load([Float](repeating: c.rank == 0 ? 1 : 0.75 * unit, count: net.layout.count))
                net.exactSums.load([Double](repeating: 1.0 / 3, count: net.exactLayout.count))
                try ReplicatedAdam(adam: AdamState(parameterCount: net.layout.count, variant: .adam), compression: format)
                    .step(net, collective: c, lr: 0.01, weightDecay: 0)
                return net.gradients.array
            }
            let net = Network(architecture: Self.arch, capacity: 1)
            let perFeature = Set(net.layout.allDense.flatMap { $0.bias..<($0.bias + $0.fanOut) }
                + net.layout.norm.flatMap { ($0.scale..<($0.scale + $0.width)).map { $0 } + ($0.shift..<($0.shift + $0.width)).map { $0 } })
            let expected = (0..<net.layout.count).map { perFeature.contains($0) ? Float(1.0 / 3) : 1 + unit }
            for (r, g) in grads.enumerated() { XCTAssertEqual(g, expected, "\(format) rank \(r)") }
        }
    }

    // MARK: - References

    /// MPICollective's 16-bit ring (part p starts at rank p+1 and ends at its owner p, each hop adding
    /// in float32 and rounding to 16 bits), element i of the ranks' values `local`.
    static func ringSum(_ local: [[Float]], _ i: Int, round: (Float) -> Float) -> Float {
        let n = local.count
        let partition = Partition(count: local[0].count, parts: n)
        let owner = (0..<n).first { partition.range($0).contains(i) }!
        var partial = round(local[(owner + 1) % n][i])
        for hop in stride(from: 2, through: n, by: 1) { partial = round(local[(owner + hop) % n][i] + partial) }
        return partial
    }

    /// x rounded to bfloat16, nearest with ties to even, found by comparing the two neighbours (not
    /// with the production code's bit trick).
    static func bf16(_ x: Float) -> Float {
        let truncated = x.bitPattern & 0xFFFF_0000
        let (low, high) = (Float(bitPattern: truncated), Float(bitPattern: truncated + 0x1_0000))
        let (dl, dh) = (abs(Double(x) - Double(low)), abs(Double(high) - Double(x)))
        if dl != dh { return dl < dh ? low : high }
        return (truncated >> 16) & 1 == 0 ? low : high
    }
}
