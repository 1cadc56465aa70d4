// GradientCheckTests: the analytic gradients of every layer kernel and of whole networks against
// central finite differences.
//
// Forward passes run in Float32 (the code under test); losses are accumulated in Double and the
// difference quotient uses the step actually taken in Float ((x+h) − (x−h)). A check passes when
// max |analytic − numeric| / max |numeric| over the checked coordinates is below a tolerance that a
// wrong formula (a missing term, a wrong scale, a transposed product) exceeds by orders of magnitude.
// Whole-network checks skip coordinates whose ±h forwards flip a ReLU (a kink makes the finite
// difference meaningless) and require that almost all coordinates are checked.
@testable import Collectives
import Foundation
@testable import Kernels
@testable import Model
import TestSupport
import Training
import XCTest


final class GradientCheckTests: XCTestCase {

    // MARK: - Helpers

    /// Central difference of `loss` with respect to p[i], using the step actually representable in
    /// Float. Restores p[i].
    static func centralDifference(_ p: UnsafeMutablePointer<Float>, _ i: Int, h: Float, _ loss: () -> Double) -> Double {
        let x = p[i]
        let (xp, xm) = (x + h, x - h)
        p[i] = xp
        let lp = loss()
        p[i] = xm
        let lm = loss()
        p[i] = x
        return (lp - lm) / (Double(xp) - Double(xm))
    }

    /// Relative error max|a − n| / max(max|n|, floor); also fails if the numeric gradient is ~0
    /// (which would make the comparison vacuous).
    static func relativeError(_ analytic: [Double], _ numeric: [Double], floor: Double = 1e-6) -> (rel: Double, maxNumeric: Double) {
        precondition(analytic.count == numeric.count && !numeric.isEmpty)
        let maxNumeric = numeric.map(abs).max()!
        let maxDiff = zip(analytic, numeric).map { abs($0 - $1) }.max()!
        return (maxDiff / max(maxNumeric, floor), maxNumeric)
    }

    func assertGradient(
        _ analytic: [Double], _ numeric: [Double], tolerance: Double, _ what: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let (rel, maxNumeric) = Self.relativeError(analytic, numeric)
        XCTAssertGreaterThan(maxNumeric, 1e-5, "\(what): numeric gradient is ~0, check would be vacuous", file: file, line: line)
        XCTAssertLessThan(rel, tolerance, "\(what): relative gradient error \(rel) (max |numeric| \(maxNumeric))", file: file, line: line)
    }

    static func weightedSum(_ y: UnsafePointer<Float>, _ c: [Float]) -> Double {
        var s = 0.0
        for i in 0..<c.count { s += Double(c[i]) * Double(y[i]) }
        return s
    }

    // MARK: - Dense

    func testDenseGradients() {
        var rng = SplitMix64(1)
        let (n, fanIn, fanOut) = (5, 4, 3)
        let x = Buffer(rng.normals(n * fanIn))
        let w = Buffer(rng.normals(fanIn * fanOut, scale: 0.7))
        let b = Buffer(rng.normals(fanOut, scale: 0.5))
        let c = rng.normals(n * fanOut)
        let y = Buffer<Float>(count: n * fanOut)
        let loss = { () -> Double in
            denseForward(x: x.pointer, rows: n, weight: w.pointer, bias: b.pointer, fanIn: fanIn, fanOut: fanOut, y: y.pointer)
            return Self.weightedSum(y.pointer, c)
        }
        let dy = Buffer(c)
        let (dW, dx) = (Buffer<Float>(count: fanIn * fanOut), Buffer<Float>(count: n * fanIn))
        let db = Buffer<Double>(count: fanOut)
        denseBackward(x: x.pointer, dy: dy.pointer, rows: n, weight: w.pointer, fanIn: fanIn, fanOut: fanOut,
                      dWeight: dW.pointer, dx: dx.pointer)
        columnSums(dy.pointer, rows: n, width: fanOut, into: db.pointer)
        for (name, param, grad) in [("x", x, dx.array.map(Double.init)), ("W", w, dW.array.map(Double.init)), ("b", b, db.array)] {
            let numeric = (0..<param.count).map { Self.centralDifference(param.pointer, $0, h: 1e-2, loss) }
            assertGradient(grad, numeric, tolerance: 1e-3, "dense d\(name)")
        }
        // Without dx (first layer) the weight gradient is the same.
        let dW2 = Buffer<Float>(count: fanIn * fanOut)
        denseBackward(x: x.pointer, dy: dy.pointer, rows: n, weight: w.pointer, fanIn: fanIn, fanOut: fanOut,
                      dWeight: dW2.pointer, dx: nil)
        XCTAssertEqual(dW2.array, dW.array)
    }

    // MARK: - ReLU

    /// Dense → ReLU, the ReLU fused into the product (oneDNN post-op): forward equals max(0, x·W + b)
    /// exactly, and reluBackward then denseBackward give the finite-difference gradients.
    func testDenseReluGradient() {
        var rng = SplitMix64(2)
        let (n, fanIn, fanOut) = (6, 5, 7)
        // Draw until every pre-activation is at least 0.2 away from the kink (h = 1e-2 never crosses it).
        var x = Buffer<Float>(count: 0), w = x, b = x
        let z = Buffer<Float>(count: n * fanOut)
        repeat {
            (x, w, b) = (Buffer(rng.normals(n * fanIn)), Buffer(rng.normals(fanIn * fanOut, scale: 0.7)), Buffer(rng.normals(fanOut, scale: 0.5)))
            denseForward(x: x.pointer, rows: n, weight: w.pointer, bias: b.pointer, fanIn: fanIn, fanOut: fanOut, relu: false, y: z.pointer)
        } while z.array.contains { abs($0) < 0.2 } || !z.array.contains { $0 < 0 }
        let c = rng.normals(n * fanOut)
        let a = Buffer<Float>(count: n * fanOut)
        let loss = { () -> Double in
            denseForward(x: x.pointer, rows: n, weight: w.pointer, bias: b.pointer, fanIn: fanIn, fanOut: fanOut, relu: true, y: a.pointer)
            return Self.weightedSum(a.pointer, c)
        }
        _ = loss()
        for i in 0..<(n * fanOut) { XCTAssertEqual(a.pointer[i], max(0, z.pointer[i]), "fused ReLU at \(i)") }
        let grad = Buffer(c)
        for i in 0..<(n * fanOut) where a.pointer[i] <= 0 { grad.pointer[i] = 0 }
        for i in 0..<(n * fanOut) { XCTAssertEqual(grad.pointer[i], z.pointer[i] > 0 ? c[i] : 0) }
        let (dW, dx) = (Buffer<Float>(count: fanIn * fanOut), Buffer<Float>(count: n * fanIn))
        let db = Buffer<Double>(count: fanOut)
        denseBackward(x: x.pointer, dy: grad.pointer, rows: n, weight: w.pointer, fanIn: fanIn, fanOut: fanOut, dWeight: dW.pointer, dx: dx.pointer)
        columnSums(grad.pointer, rows: n, width: fanOut, into: db.pointer)
        for (name, param, g) in [("x", x, dx.array.map(Double.init)), ("W", w, dW.array.map(Double.init)), ("b", b, db.array)] {
            let numeric = (0..<param.count).map { Self.centralDifference(param.pointer, $0, h: 1e-2, loss) }
            assertGradient(g, numeric, tolerance: 1e-3, "dense+relu d\(name)")
        }
    }

    // MARK: - BatchNorm (training mode)

    /// Training-mode BatchNorm over `rows` rows with loss Σ c·y; returns the loss and leaves x̂,
    /// invStd in the given buffers.
    struct BatchNormProblem {
        let rows: Int, width: Int
        let a: Buffer<Float>, scale: Buffer<Float>, shift: Buffer<Float>
        let c: [Float]
        let sums: Buffer<Double>, mean: Buffer<Float>, variance: Buffer<Float>, invStd: Buffer<Float>
        let xhat: Buffer<Float>, y: Buffer<Float>

        init(rows: Int, width: Int, rng: inout SplitMix64) {
            self.rows = rows
            self.width = width
            a = Buffer(rng.normals(rows * width, scale: 1.5, offset: 0.5))
            // Scales of both signs and away from 0; arbitrary shifts.
            scale = Buffer((0..<width).map { j in (j % 3 == 2 ? -1 : 1) * rng.uniform(0.5, 1.5) })
            shift = Buffer(rng.normals(width, scale: 0.5))
            c = rng.normals(rows * width)
            sums = Buffer(count: 2 * width)
            (mean, variance, invStd) = (Buffer(count: width), Buffer(count: width), Buffer(count: width))
            (xhat, y) = (Buffer(count: rows * width), Buffer(count: rows * width))
        }

        func loss() -> Double {
            batchNormSums(a.pointer, rows: rows, width: width, into: sums.pointer)
            batchNormMoments(sums: sums.pointer, count: rows, width: width,
                             mean: mean.pointer, variance: variance.pointer, invStd: invStd.pointer)
            batchNormNormalize(a.pointer, rows: rows, width: width, mean: mean.pointer, invStd: invStd.pointer,
                               scale: scale.pointer, shift: shift.pointer, xhat: xhat.pointer, y: y.pointer)
            return GradientCheckTests.weightedSum(y.pointer, c)
        }

        /// Analytic (da, dscale, dshift) from the backward kernels.
        func analytic() -> (da: [Float], dScale: [Float], dShift: [Float]) {
            _ = loss()
            let grad = Buffer(c)
            let gradSums = Buffer<Double>(count: 2 * width)
            batchNormGradientSums(grad.pointer, xhat: xhat.pointer, rows: rows, width: width, into: gradSums.pointer)
            let dShift = (0..<width).map { Float(gradSums.pointer[$0]) }
            let dScale = (0..<width).map { Float(gradSums.pointer[width + $0]) }
            let coefficients = Buffer<Float>(count: 3 * width)
            batchNormBackwardInput(grad.pointer, xhat: xhat.pointer, rows: rows, width: width, scale: scale.pointer,
                                   invStd: invStd.pointer, sums: gradSums.pointer, count: rows,
                                   coefficients: coefficients.pointer)
            return (grad.array, dScale, dShift)
        }
    }

    func testBatchNormTrainingGradients() {
        var rng = SplitMix64(3)
        let bn = BatchNormProblem(rows: 8, width: 5, rng: &rng)
        let (da, dScale, dShift) = bn.analytic()
        let numA = (0..<bn.a.count).map { Self.centralDifference(bn.a.pointer, $0, h: 1e-2, bn.loss) }
        assertGradient(da.map(Double.init), numA, tolerance: 1e-2, "batchnorm da")
        let numScale = (0..<bn.width).map { Self.centralDifference(bn.scale.pointer, $0, h: 1e-2, bn.loss) }
        assertGradient(dScale.map(Double.init), numScale, tolerance: 1e-3, "batchnorm dscale")
        let numShift = (0..<bn.width).map { Self.centralDifference(bn.shift.pointer, $0, h: 1e-2, bn.loss) }
        assertGradient(dShift.map(Double.init), numShift, tolerance: 1e-3, "batchnorm dshift")
        // The input gradient of a batch-normalised column sums to zero over the batch (shifting a
        // whole column by a constant changes nothing).
        for j in 0..<bn.width {
            let s = (0..<bn.rows).reduce(0.0) { $0 + Double(da[$1 * bn.width + j]) }
            XCTAssertEqual(s, 0, accuracy: 1e-5)
        }
    }

    /// SyncBatchNorm at kernel level: two parts of a batch, forward sums and backward sums added
    /// and normalised with the total count, give the full batch's outputs and input gradient.
    func testBatchNormSplitSumsMatchFullBatch() {
        var rng = SplitMix64(4)
        let bn = BatchNormProblem(rows: 8, width: 5, rng: &rng)
        let (fullDa, fullScale, fullShift) = bn.analytic()
        let fullY = bn.y.array
        let (w, split) = (bn.width, 3)
        let parts = [0..<split, split..<bn.rows]
        // Forward: per-part sums, then added ("allreduce").
        let total = Buffer<Double>(count: 2 * w)
        for r in parts {
            let s = Buffer<Double>(count: 2 * w)
            batchNormSums(bn.a.pointer + r.lowerBound * w, rows: r.count, width: w, into: s.pointer)
            for j in 0..<(2 * w) { total.pointer[j] += s.pointer[j] }
        }
        let (mean, variance, invStd) = (Buffer<Float>(count: w), Buffer<Float>(count: w), Buffer<Float>(count: w))
        batchNormMoments(sums: total.pointer, count: bn.rows, width: w, mean: mean.pointer, variance: variance.pointer, invStd: invStd.pointer)
        let (xhat, y) = (Buffer<Float>(count: bn.rows * w), Buffer<Float>(count: bn.rows * w))
        for r in parts {
            batchNormNormalize(bn.a.pointer + r.lowerBound * w, rows: r.count, width: w, mean: mean.pointer, invStd: invStd.pointer,
                               scale: bn.scale.pointer, shift: bn.shift.pointer,
                               xhat: xhat.pointer + r.lowerBound * w, y: y.pointer + r.lowerBound * w)
        }
        for i in 0..<fullY.count { XCTAssertEqual(y.pointer[i], fullY[i], accuracy: 1e-5) }
        // Backward: per-part gradient sums, added, then each part's input gradient with count = N.
        let grad = Buffer(bn.c)
        let gradTotal = Buffer<Double>(count: 2 * w)
        for r in parts {
            let s = Buffer<Double>(count: 2 * w)
            batchNormGradientSums(grad.pointer + r.lowerBound * w, xhat: xhat.pointer + r.lowerBound * w, rows: r.count, width: w, into: s.pointer)
            for j in 0..<(2 * w) { gradTotal.pointer[j] += s.pointer[j] }
        }
        for j in 0..<w {
            XCTAssertEqual(Float(gradTotal.pointer[j]), fullShift[j], accuracy: 1e-4)
            XCTAssertEqual(Float(gradTotal.pointer[w + j]), fullScale[j], accuracy: 1e-4)
        }
        let coefficients = Buffer<Float>(count: 3 * w)
        for r in parts {
            batchNormBackwardInput(grad.pointer + r.lowerBound * w, xhat: xhat.pointer + r.lowerBound * w, rows: r.count, width: w,
                                   scale: bn.scale.pointer, invStd: invStd.pointer, sums: gradTotal.pointer, count: bn.rows,
                                   coefficients: coefficients.pointer)
        }
        for i in 0..<fullDa.count { XCTAssertEqual(grad.pointer[i], fullDa[i], accuracy: 1e-4) }
    }

    // MARK: - Dropout

    func testDropoutGradientWithFixedMask() {
        var rng = SplitMix64(5)
        let (rows, width) = (6, 7)
        let mask = Buffer<Float>(count: rows * width)
        dropoutMask(mask.pointer, rows: rows, width: width, firstRow: 0, key: RandomKey(seed: 7, .dropout).with(3), keep: 0.5)
        XCTAssertTrue(mask.array.contains(0) && mask.array.contains(2), "mask should both drop and keep")
        let x = Buffer(rng.normals(rows * width))
        let c = rng.normals(rows * width)
        let y = Buffer<Float>(count: rows * width)
        let loss = { () -> Double in
            y.copy(from: x)
            applyMask(y.pointer, mask: mask.pointer, count: rows * width)
            return Self.weightedSum(y.pointer, c)
        }
        let grad = Buffer(c)
        applyMask(grad.pointer, mask: mask.pointer, count: rows * width)
        let numeric = (0..<x.count).map { Self.centralDifference(x.pointer, $0, h: 1e-2, loss) }
        assertGradient(grad.array.map(Double.init), numeric, tolerance: 1e-3, "dropout dx")
    }

    // MARK: - Softmax cross-entropy

    func testSoftmaxCrossEntropyGradient() {
        var rng = SplitMix64(6)
        let (rows, classes) = (6, 5)
        let logits = Buffer(rng.normals(rows * classes, scale: 2))
        let labels = Buffer<Int32>((0..<rows).map { Int32($0 * 3 % classes) })
        let loss = { () -> Double in
            softmaxCrossEntropy(logits: logits.pointer, labels: labels.pointer, rows: rows, classes: classes,
                                gradScale: 0, dLogits: nil, predictions: nil).lossSum / Double(rows)
        }
        let d = Buffer<Float>(count: rows * classes)
        _ = softmaxCrossEntropy(logits: logits.pointer, labels: labels.pointer, rows: rows, classes: classes,
                                gradScale: 1 / Float(rows), dLogits: d.pointer, predictions: nil)
        let numeric = (0..<logits.count).map { Self.centralDifference(logits.pointer, $0, h: 1e-2, loss) }
        assertGradient(d.array.map(Double.init), numeric, tolerance: 1e-3, "softmax cross-entropy dlogits")
    }

    // MARK: - Whole network

    static let dropoutKey = RandomKey(seed: 99, .dropout).with(2).with(17)

    /// A network with He-initialised weights and random biases, BN scales and shifts (so that no
    /// gradient is special because a parameter sits at its initial value).
    static func makeNetwork(_ arch: Architecture, capacity: Int, rng: inout SplitMix64) -> Network {
        let net = Network(architecture: arch, capacity: capacity)
        net.reset(seed: 5)
        let p = net.parameters.pointer
        for slot in net.layout.allDense {
            for j in 0..<slot.fanOut { p[slot.bias + j] = rng.normal() * 0.2 + 0.1 }
        }
        for slot in net.layout.norm {
            for j in 0..<slot.width {
                p[slot.scale + j] = rng.uniform(0.6, 1.4)
                p[slot.shift + j] = rng.normal() * 0.3
            }
        }
        return net
    }

    static func fillBatch(_ net: Network, rows: Int, rng: inout SplitMix64) -> (input: [Float], labels: [Int32]) {
        let width = net.architecture.inputWidth
        let input = (0..<(rows * width)).map { _ in rng.uniform(0, 1) }
        let labels = (0..<rows).map { _ in Int32.random(in: 0..<Int32(net.architecture.classCount), using: &rng) }
        load(net, input: input, labels: labels)
        return (input, labels)
    }

    static func load(_ net: Network, input: [Float], labels: [Int32]) {
        for (i, v) in input.enumerated() { net.input.pointer[i] = v }
        for (i, v) in labels.enumerated() { net.labels.pointer[i] = v }
    }

    /// Which ReLU outputs are positive, over all blocks (the network's kink pattern).
    static func reluPattern(_ net: Network, rows: Int) -> [Bool] {
        net.blocks.flatMap { b in (0..<(rows * b.width)).map { b.a.pointer[$0] > 0 } }
    }

    /// One replica's gradient of its shard (no reduction): forward, loss, backward, the end of the
    /// step on a single process, and the per-feature gradients (biases, BatchNorm scale and shift,
    /// summed in Double) moved into `gradients`. With `exactMath` (finite-difference checks of the
    /// math) the weight-gradient operands are not rounded to their grids.
    static func shardGradient(_ net: Network, _ ctx: StepContext, exactMath: Bool = true) throws -> [Float] {
        let single = SingleProcess()
        net.roundsProductOperands = !exactMath
        defer { net.roundsProductOperands = true }
        try net.forwardTrain(ctx, collective: single)
        net.lossAndGradient(ctx)
        try net.backward(ctx, collective: single)
        _ = try net.finishStep(ctx, collective: single)
        net.writeExactGradients(into: net.gradients.pointer, range: 0..<net.layout.count)
        return net.gradients.array
    }

    /// Named parameter groups of a layout: (name, offset, count).
    static func parameterGroups(_ layout: ParameterLayout) -> [(String, Int, Int)] {
        var groups: [(String, Int, Int)] = []
        for (l, d) in layout.dense.enumerated() {
            groups.append(("dense\(l).weight", d.weight, d.fanIn * d.fanOut))
            groups.append(("dense\(l).bias", d.bias, d.fanOut))
            groups.append(("norm\(l).scale", layout.norm[l].scale, layout.norm[l].width))
            groups.append(("norm\(l).shift", layout.norm[l].shift, layout.norm[l].width))
        }
        groups.append(("head.weight", layout.head.weight, layout.head.fanIn * layout.head.fanOut))
        groups.append(("head.bias", layout.head.bias, layout.head.fanOut))
        return groups
    }

    /// Checks every parameter group of one or more replicas (holding identical parameters, each on
    /// its own shard) against finite differences of Σ shard loss sums / globalBatch. At most
    /// `perGroup` coordinates per group are checked (all when the group is smaller).
    func checkNetworkGradients(
        _ replicas: [(net: Network, ctx: StepContext)], perGroup: Int, h: Float, tolerance: Double,
        rng: inout SplitMix64, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let single = SingleProcess()
        let globalBatch = replicas[0].ctx.globalBatch
        // Analytic: each replica's gradient, summed (what the fused allreduce would do).
        let count = replicas[0].net.layout.count
        var analytic = [Double](repeating: 0, count: count)
        for (net, ctx) in replicas {
            let g = try Self.shardGradient(net, ctx)
            for i in 0..<count { analytic[i] += Double(g[i]) }
        }
        let basePattern = replicas.map { Self.reluPattern($0.net, rows: $0.ctx.rows) }
        var kinked = false
        let loss = { () -> Double in
            var total = 0.0
            for (r, (net, ctx)) in replicas.enumerated() {
                try! net.forwardTrain(ctx, collective: single)
                total += net.lossAndGradient(ctx).lossSum
                if Self.reluPattern(net, rows: ctx.rows) != basePattern[r] { kinked = true }
            }
            return total / Double(globalBatch)
        }
        for (name, offset, n) in Self.parameterGroups(replicas[0].net.layout) {
            var coords = Array(0..<n)
            if n > perGroup { coords.shuffle(using: &rng); coords = Array(coords.prefix(perGroup)) }
            var (a, num) = ([Double](), [Double]())
            var skipped = 0
            for k in coords {
                let i = offset + k
                kinked = false
                // Perturb the parameter in every replica together.
                let x = replicas[0].net.parameters.pointer[i]
                let (xp, xm) = (x + h, x - h)
                for r in replicas { r.net.parameters.pointer[i] = xp }
                let lp = loss()
                for r in replicas { r.net.parameters.pointer[i] = xm }
                let lm = loss()
                for r in replicas { r.net.parameters.pointer[i] = x }
                if kinked { skipped += 1; continue }
                a.append(analytic[i])
                num.append((lp - lm) / (Double(xp) - Double(xm)))
            }
            XCTAssertLessThanOrEqual(skipped * 5, coords.count, "\(name): too many coordinates cross a ReLU kink (\(skipped)/\(coords.count))", file: file, line: line)
            guard !num.isEmpty else { continue }
            let (rel, maxNumeric) = Self.relativeError(a, num)
            XCTAssertGreaterThan(maxNumeric, 1e-6, "\(name): numeric gradient is ~0", file: file, line: line)
            XCTAssertLessThan(rel, tolerance, "\(name): relative gradient error \(rel) (max |numeric| \(maxNumeric), \(num.count) coordinates)", file: file, line: line)
        }
    }

    func testSmallNetworkGradientsAllParameters() throws {
        var rng = SplitMix64(7)
        let arch = Architecture(inputWidth: 12, hidden: [8, 6], dropoutAfter: [true, false], classCount: 4)
        let batch = 16
        let net = Self.makeNetwork(arch, capacity: batch, rng: &rng)
        _ = Self.fillBatch(net, rows: batch, rng: &rng)
        let ctx = StepContext(globalBatch: batch, firstRow: 0, rows: batch, dropoutKey: Self.dropoutKey, keep: 0.5, batchNormMode: .sync)
        // Every coordinate of every group (214 parameters).
        try checkNetworkGradients([(net, ctx)], perGroup: .max, h: 1e-3, tolerance: 1e-2, rng: &rng)
    }

    func testModel1PresetGradients() throws {
        var rng = SplitMix64(8)
        let arch = ModelPreset.model1.architecture(inputWidth: 12, classCount: 4)
        XCTAssertEqual(arch.hidden, [128, 64])
        XCTAssertEqual(arch.dropoutAfter, [true, false])
        let batch = 16
        let net = Self.makeNetwork(arch, capacity: batch, rng: &rng)
        _ = Self.fillBatch(net, rows: batch, rng: &rng)
        let ctx = StepContext(globalBatch: batch, firstRow: 0, rows: batch, dropoutKey: Self.dropoutKey, keep: 0.5, batchNormMode: .sync)
        try checkNetworkGradients([(net, ctx)], perGroup: 30, h: 1e-3, tolerance: 1e-2, rng: &rng)
    }

    /// In `local` mode each shard normalises with its own statistics; the shards' gradients then sum
    /// to the gradient of (Σ shard loss sums) / globalBatch, which is a well-defined function of the
    /// parameters. Uneven shards (7 and 9 of 16).
    func testLocalModeShardGradientsSumToGradientOfShardLosses() throws {
        var rng = SplitMix64(9)
        let arch = Architecture(inputWidth: 12, hidden: [8, 6], dropoutAfter: [true, false], classCount: 4)
        let (batch, k) = (16, 7)
        let first = Self.makeNetwork(arch, capacity: batch, rng: &rng)
        let (input, labels) = Self.fillBatch(first, rows: batch, rng: &rng)
        let second = Network(architecture: arch, capacity: batch)
        second.parameters.copy(from: first.parameters)
        let w = arch.inputWidth
        Self.load(second, input: Array(input[(k * w)...]), labels: Array(labels[k...]))
        let ctx1 = StepContext(globalBatch: batch, firstRow: 0, rows: k, dropoutKey: Self.dropoutKey, keep: 0.5, batchNormMode: .local)
        let ctx2 = StepContext(globalBatch: batch, firstRow: k, rows: batch - k, dropoutKey: Self.dropoutKey, keep: 0.5, batchNormMode: .local)
        try checkNetworkGradients([(first, ctx1), (second, ctx2)], perGroup: .max, h: 1e-3, tolerance: 1e-2, rng: &rng)
    }

    /// With a single shard holding the whole batch, `local` and `sync` are the same computation:
    /// identical gradients, loss and (after the merge) running statistics.
    func testLocalModeWithOneShardEqualsSync() throws {
        var rng = SplitMix64(10)
        let arch = Architecture(inputWidth: 12, hidden: [8, 6], dropoutAfter: [true, false], classCount: 4)
        let batch = 16
        let syncNet = Self.makeNetwork(arch, capacity: batch, rng: &rng)
        let (input, labels) = Self.fillBatch(syncNet, rows: batch, rng: &rng)
        let localNet = Network(architecture: arch, capacity: batch)
        localNet.parameters.copy(from: syncNet.parameters)
        Self.load(localNet, input: input, labels: labels)
        var results: [(LossTally, [Float], [Float])] = []
        for (net, mode) in [(syncNet, BatchNormMode.sync), (localNet, .local)] {
            let ctx = StepContext(globalBatch: batch, firstRow: 0, rows: batch, dropoutKey: Self.dropoutKey, keep: 0.5, batchNormMode: mode)
            let tally = try net.computeGradients(ctx, collective: SingleProcess())
            results.append((tally, Array(net.gradients.array[0..<net.layout.count]), net.runningStats.array))
        }
        // The same computation; only the sums' arithmetic differs (sync sums exactly on grids, local
        // in plain Double), which leaves differences far below float32's precision.
        for (s, l) in zip(results[0].1, results[1].1) { XCTAssertEqual(s, l, accuracy: 1e-6 * max(abs(s), 1e-3)) }
        XCTAssertEqual(results[0].0.correct, results[1].0.correct)
        XCTAssertEqual(results[0].0.lossSum, results[1].0.lossSum, accuracy: 1e-9 * results[0].0.lossSum)
        XCTAssertGreaterThan(results[0].1.map(abs).max()!, 0)
        // Running statistics moved away from (0, 1) and agree (the local path goes through Float sums).
        for (s, l) in zip(results[0].2, results[1].2) { XCTAssertEqual(s, l, accuracy: 1e-6) }
        XCTAssertGreaterThan(zip(results[0].2, Network(architecture: arch, capacity: 1).runningStats.array).map { abs($0 - $1) }.max()!, 1e-3)
    }

    /// A hidden unit active on every row feeds BatchNorm a column whose common shift BatchNorm
    /// removes, so its Dense bias gradient is exactly zero (not Float rounding noise), in both modes;
    /// units active on only some rows keep a nonzero bias gradient.
    func testAlwaysActiveUnitHasExactlyZeroBiasGradient() throws {
        var rng = SplitMix64(12)
        let arch = Architecture(inputWidth: 12, hidden: [8, 6], dropoutAfter: [true, false], classCount: 4)
        let batch = 16
        let net = Self.makeNetwork(arch, capacity: batch, rng: &rng)
        _ = Self.fillBatch(net, rows: batch, rng: &rng)
        let d0 = net.layout.dense[0]
        // Units 0–3: bias 5 (≥ 6σ above the input term: active on every row); units 4–7: bias 0.
        for j in 0..<8 { net.parameters.pointer[d0.bias + j] = j < 4 ? 5 : 0 }
        for mode in [BatchNormMode.sync, .local] {
            let ctx = StepContext(globalBatch: batch, firstRow: 0, rows: batch, dropoutKey: Self.dropoutKey, keep: 0.5, batchNormMode: mode)
            let g = try Self.shardGradient(net, ctx)
            let a = net.blocks[0].a
            for j in 0..<8 {
                let active = (0..<batch).filter { a.pointer[$0 * 8 + j] > 0 }.count
                if j < 4 {
                    XCTAssertEqual(active, batch, "unit \(j) should be active on every row")
                    XCTAssertEqual(g[d0.bias + j], 0, "\(mode): always-active unit \(j) bias gradient must be exactly 0")
                    // Its weights still learn.
                    XCTAssertGreaterThan((0..<12).map { abs(g[d0.weight + $0 * 8 + j]) }.max()!, 1e-4)
                } else if active > 0 && active < batch {
                    XCTAssertNotEqual(g[d0.bias + j], 0, "\(mode): partially active unit \(j) has a bias gradient")
                }
            }
            XCTAssertTrue((4..<8).contains { j in
                let active = (0..<batch).filter { a.pointer[$0 * 8 + j] > 0 }.count
                return active > 0 && active < batch
            }, "test needs a partially active unit")
        }
    }

    // MARK: - Sync mode across ranks (threads)

    /// SyncBatchNorm's promise: ranks with uneven shards (7 + 9 on two ranks, and shardRange's split
    /// of the batch on 1 to 8 ranks) produce, after the fused allreduce, the same gradient, loss and
    /// running statistics as one process on the whole batch, identical on every rank.
    func testSyncModeRanksEqualSingleProcess() throws {
        var rng = SplitMix64(11)
        let arch = Architecture(inputWidth: 12, hidden: [8, 6], dropoutAfter: [true, true], classCount: 4)
        let batch = 16
        let whole = Self.makeNetwork(arch, capacity: batch, rng: &rng)
        let (input, labels) = Self.fillBatch(whole, rows: batch, rng: &rng)
        let step = ShardedStep(whole: whole, input: input, labels: labels, batch: batch)
        let expected = try whole.computeGradients(step.context(0..<batch), collective: SingleProcess())
        XCTAssertGreaterThan(whole.gradients.array.map(abs).max()!, 0)
        let splits = [[0..<7, 7..<batch]] + (1...8).map { n in (0..<n).map { shardRange(batch: batch, rank: $0, size: n) } }
        for shards in splits {
            let ranks = try step.run(shards)
            let what = "shards \(shards.map(\.count))"
            // Every rank holds the same reduced gradient, bit for bit.
            for (net, _) in ranks.dropFirst() { XCTAssertEqual(net.gradients.array, ranks[0].net.gradients.array, what) }
            let (got, tally) = (ranks[0].net.gradients.array, ranks[0].tally)
            // Sharing the operands, each rank computes its part from every rank's rows and the
            // parts are gathered: the same bits as the reduction of the ranks' partial gradients.
            if Network.usesBF16Products(precision: .fp32) && shards.count > 1 {
                let sharing = try step.run(shards, sharingOperands: true)
                for (net, _) in sharing { XCTAssertEqual(net.gradients.array, got, "\(what), shared operands") }
            }
            XCTAssertEqual(tally.correct, expected.correct, what)
            XCTAssertEqual(tally.lossSum, expected.lossSum, accuracy: 1e-4 * abs(expected.lossSum), what)
            for (name, offset, count) in Self.parameterGroups(whole.layout) {
                let a = (0..<count).map { Double(got[offset + $0]) }
                let e = (0..<count).map { Double(whole.gradients.pointer[offset + $0]) }
                let (rel, _) = Self.relativeError(a, e)
                XCTAssertLessThan(rel, 1e-4, "\(what) \(name): sync gradient differs from single-process gradient by \(rel)")
            }
            for (net, _) in ranks {
                for (r, e) in zip(net.runningStats.array, whole.runningStats.array) { XCTAssertEqual(r, e, accuracy: 1e-6, what) }
            }
        }
    }

    /// One sync-mode gradient computation of a global batch, split into shards that run as the
    /// ranks of an in-process job.
    struct ShardedStep {
        let whole: Network
        let input: [Float], labels: [Int32]
        let batch: Int

        func context(_ rows: Range<Int>) -> StepContext {
            StepContext(globalBatch: batch, firstRow: rows.lowerBound, rows: rows.count,
                        dropoutKey: GradientCheckTests.dropoutKey, keep: 0.5, batchNormMode: .sync)
        }

        /// Rank r computes `shards[r]` (fresh running statistics, the whole network's parameters);
        /// with `sharingOperands` the ranks share the weight-gradient operands, as a node's do
        /// (bf16 copies: only on a CPU with bf16 arithmetic), and each computes its part from them.
        func run(_ shards: [Range<Int>], sharingOperands: Bool = false) throws -> [(net: Network, tally: LossTally)] {
            let w = whole.architecture.inputWidth
            return try runRanks(shards.count, sharedMemory: sharingOperands) { c in
                let rows = shards[c.rank]
                var operands: SharedProductOperands?
                if sharingOperands {
                    let (layout, partition) = (whole.layout, ShardedAdam.partition(count: whole.layout.count, collective: c))
                    let values = SharedProductOperands.count(layout: layout, partition: partition, rows: batch)
                    let storage = try c.sharedCopy(count: (values + 1) / 2)!
                    operands = SharedProductOperands(storage: UnsafeMutableRawPointer(storage).bindMemory(to: UInt16.self, capacity: values),
                                                     layout: layout, partition: partition, rank: c.rank, rows: batch, firstRow: rows.lowerBound)
                }
                let net = Network(architecture: whole.architecture, capacity: batch, sharedOperands: operands)
                net.parameters.copy(from: whole.parameters)
                GradientCheckTests.load(net, input: Array(input[(rows.lowerBound * w)..<(rows.upperBound * w)]), labels: Array(labels[rows]))
                return (net, try net.computeGradients(context(rows), collective: c))
            }
        }
    }
}
