// MatrixProductTests: the oneDNN products against plain Double arithmetic, the property that makes
// results independent of how a batch is split and of the thread count (a row comes out bitwise the
// same in a call of any row count, with 1 or 2 threads), and the bf16 path: rounding to bfloat16
// by hand-computed cases, bf16 products equal to float products of the rounded operands, and the
// exact weight-gradient products giving float32's bits from bf16 copies.
@testable import Kernels
import TestSupport
import XCTest

final class MatrixProductTests: XCTestCase {
    /// y = x·W + b in Double, for checking.
    func reference(_ x: [Float], _ w: [Float], _ b: [Float], rows: Int, fanIn: Int, fanOut: Int) -> [Double] {
        (0..<(rows * fanOut)).map { e in
            let (i, j) = (e / fanOut, e % fanOut)
            return (0..<fanIn).reduce(Double(b[j])) { $0 + Double(x[i * fanIn + $1]) * Double(w[$1 * fanOut + j]) }
        }
    }

    func testProductsAgainstDouble() {
        var rng = SplitMix64(11)
        let (n, fanIn, fanOut) = (37, 50, 23)
        let (x, w, b) = (rng.normals(n * fanIn), rng.normals(fanIn * fanOut), rng.normals(fanOut))
        // Buffers bound to names: a temporary's storage may be freed as soon as its pointer is read.
        let (xb, wb, bb) = (Buffer(x), Buffer(w), Buffer(b))
        let y = Buffer<Float>(count: n * fanOut)
        denseForward(x: xb.pointer, rows: n, weight: wb.pointer, bias: bb.pointer, fanIn: fanIn, fanOut: fanOut, y: y.pointer)
        for (got, want) in zip(y.array, reference(x, w, b, rows: n, fanIn: fanIn, fanOut: fanOut)) {
            XCTAssertEqual(Double(got), want, accuracy: 1e-4 * max(1, abs(want)))
        }
        // dW = xᵀ·dy and dx = dy·Wᵀ against the same sums.
        let dy = rng.normals(n * fanOut)
        let dyb = Buffer(dy)
        let (dW, dx) = (Buffer<Float>(count: fanIn * fanOut), Buffer<Float>(count: n * fanIn))
        denseBackward(x: xb.pointer, dy: dyb.pointer, rows: n, weight: wb.pointer, fanIn: fanIn, fanOut: fanOut,
                      dWeight: dW.pointer, dx: dx.pointer)
        for k in 0..<fanIn {
            for j in 0..<fanOut {
                let want = (0..<n).reduce(0.0) { $0 + Double(x[$1 * fanIn + k]) * Double(dy[$1 * fanOut + j]) }
                XCTAssertEqual(Double(dW.pointer[k * fanOut + j]), want, accuracy: 1e-4 * max(1, abs(want)))
            }
        }
        for i in 0..<n {
            for k in 0..<fanIn {
                let want = (0..<fanOut).reduce(0.0) { $0 + Double(dy[i * fanOut + $1]) * Double(w[k * fanOut + $1]) }
                XCTAssertEqual(Double(dx.pointer[i * fanIn + k]), want, accuracy: 1e-4 * max(1, abs(want)))
            }
        }
    }

    /// Each output row of the forward and input-gradient products is bitwise the same whether it is
    /// computed in a call of 128 rows or of fewer (a shard of 64, 43, 42, 21, 1), with 1 or 2 threads.
    func testRowsAreInvariantToCallSizeAndThreads() {
        var rng = SplitMix64(12)
        let (rows, fanIn, fanOut) = (128, 784, 512)
        let (x, w, b) = (Buffer(rng.normals(rows * fanIn)), Buffer(rng.normals(fanIn * fanOut, scale: 0.05)), Buffer(rng.normals(fanOut)))
        let whole = Buffer<Float>(count: rows * fanOut)
        let saved = computeThreads()
        defer { setComputeThreads(saved) }
        setComputeThreads(1)
        denseForward(x: x.pointer, rows: rows, weight: w.pointer, bias: b.pointer, fanIn: fanIn, fanOut: fanOut, relu: true, y: whole.pointer)
        let dy = Buffer(rng.normals(rows * fanOut))
        let dxWhole = Buffer<Float>(count: rows * fanIn)
        let scratch = Buffer<Float>(count: fanIn * fanOut)
        denseBackward(x: x.pointer, dy: dy.pointer, rows: rows, weight: w.pointer, fanIn: fanIn, fanOut: fanOut, dWeight: scratch.pointer, dx: dxWhole.pointer)
        for threads in [1, 2] {
            setComputeThreads(threads)
            for part in [128, 64, 43, 42, 21, 1] {
                let first = rows - part  // the last `part` rows
                let y = Buffer<Float>(count: part * fanOut), dx = Buffer<Float>(count: part * fanIn)
                denseForward(x: x.pointer + first * fanIn, rows: part, weight: w.pointer, bias: b.pointer, fanIn: fanIn, fanOut: fanOut,
                             relu: true, y: y.pointer)
                denseBackward(x: x.pointer + first * fanIn, dy: dy.pointer + first * fanOut, rows: part, weight: w.pointer, fanIn: fanIn,
                              fanOut: fanOut, dWeight: scratch.pointer, dx: dx.pointer)
                XCTAssertEqual(y.array, Array(whole.all[(first * fanOut)...]), "forward, \(part) rows, \(threads) threads")
                XCTAssertEqual(dx.array, Array(dxWhole.all[(first * fanIn)...]), "input gradient, \(part) rows, \(threads) threads")
            }
        }
    }

    /// Round to nearest, ties to even, on the 16 bits bfloat16 keeps.
    func testBF16Rounding() {
        let cases: [(Float, UInt16)] = [
            (1, 0x3F80), (-2, 0xC000), (0, 0), (Float(bitPattern: 0x3F80_8000), 0x3F80),  // tie: even stays
            (Float(bitPattern: 0x3F81_8000), 0x3F82),  // tie: odd rounds up to even
            (Float(bitPattern: 0x3F80_8001), 0x3F81), (Float(bitPattern: 0x3F80_7FFF), 0x3F80), (.infinity, 0x7F80),
        ]
        let source = Buffer(cases.map(\.0)), target = Buffer<UInt16>(count: cases.count)
        convertToBF16(source.pointer, count: cases.count, into: target.pointer)
        for (i, (value, bits)) in cases.enumerated() {
            XCTAssertEqual(target.pointer[i], bits, "\(value)")
        }
        XCTAssertEqual(floatFromBF16(0x3F80), 1)
        XCTAssertEqual(floatFromBF16(0xC0A0), -5)
    }

    /// bf16 products (where the CPU has them) equal float products of the bf16-rounded operands up to
    /// float accumulation order: the only loss is the rounding of the inputs.
    func testBF16ProductsEqualFloatProductsOfRoundedOperands() throws {
        guard cpuHasBF16 else {
            XCTAssertThrowsError(try ProductPrecision.bf16.checkSupported()) { XCTAssertTrue("\($0)".contains("--precision bf16"), "\($0)") }
            throw XCTSkip("this CPU has no bf16 arithmetic (oneDNN: \(cpuInstructionSet()))")
        }
        var rng = SplitMix64(13)
        let (n, fanIn, fanOut) = (40, 96, 48)
        let (x, w, b) = (Buffer(rng.normals(n * fanIn)), Buffer(rng.normals(fanIn * fanOut)), Buffer(rng.normals(fanOut)))
        let (x16, w16) = (Buffer<UInt16>(count: x.count), Buffer<UInt16>(count: w.count))
        convertToBF16(x.pointer, count: x.count, into: x16.pointer)
        convertToBF16(w.pointer, count: w.count, into: w16.pointer)
        let rounded = { (b: Buffer<UInt16>) in Buffer((0..<b.count).map { floatFromBF16(b.pointer[$0]) }) }
        let (xr, wr) = (rounded(x16), rounded(w16))
        let (y16, y32) = (Buffer<Float>(count: n * fanOut), Buffer<Float>(count: n * fanOut))
        denseForward(x: x16.pointer, rows: n, weight: w16.pointer, bias: b.pointer, fanIn: fanIn, fanOut: fanOut, relu: false, y: y16.pointer)
        denseForward(x: xr.pointer, rows: n, weight: wr.pointer, bias: b.pointer, fanIn: fanIn, fanOut: fanOut, relu: false, y: y32.pointer)
        for (a, c) in zip(y16.array, y32.array) { XCTAssertEqual(a, c, accuracy: 1e-4 * max(1, abs(c))) }
        // And against unrounded fp32: the bf16 error is of the order of bf16's 2^-8 relative precision.
        let exact = reference(x.array, w.array, b.array, rows: n, fanIn: fanIn, fanOut: fanOut)
        let worst = zip(y16.array, exact).map { abs(Double($0) - $1) / (abs($1) + 1) }.max() ?? 0
        XCTAssertLessThan(worst, 0.05)
        XCTAssertGreaterThan(worst, 1e-5, "bf16 results should differ from fp32")
    }

    /// A training step's weight-gradient operands, rounded to 8 bits below their columns' maxima
    /// (ExactSum.swift), give float32's bits from bf16 copies (what training uses where the CPU has
    /// bf16 arithmetic), whole and as row parts summed afterwards, with 1 and 2 threads, for columns
    /// of every scale down to the smallest kept (2^-56). The rule that zeroes smaller columns is
    /// what keeps it so: below it, the bf16 product flushes what float32 keeps.
    func testExactWeightGradientsHaveFloat32BitsFromBF16Copies() throws {
        try XCTSkipUnless(cpuHasBF16, "this CPU has no bf16 arithmetic (oneDNN finds \(cpuInstructionSet()))")
        var rng = SplitMix64(21)
        let (rows, fanIn, fanOut, bits) = (128, 80, 48, productBits(rows: 128))
        // Column j of x scaled by 2^-(7·(j mod 9)) (down to 2^-56), of dy by 2^-(8·(j mod 8)) (to
        // 2^-56); two columns of each just above and just below the smallest kept maximum.
        let x = Buffer(rng.normals(rows * fanIn)), dy = Buffer(rng.normals(rows * fanOut))
        func scaleColumns(_ m: Buffer<Float>, width: Int, step: Int, period: Int) {
            for i in 0..<rows {
                for j in 0..<width {
                    let e = j == width - 1 ? -58 : j == width - 2 ? -55 : -step * (j % period)
                    m.pointer[i * width + j] *= Float(sign: .plus, exponent: e, significand: 1)
                }
            }
        }
        scaleColumns(x, width: fanIn, step: 7, period: 9)
        scaleColumns(dy, width: fanOut, step: 8, period: 8)
        let scratch = Buffer<Float>(count: 2 * max(fanIn, fanOut))
        func rounded(_ m: Buffer<Float>, width: Int) -> (Buffer<Float>, Buffer<UInt16>) {
            let maxima = Buffer<Double>(count: width)
            columnMaxima(m.pointer, rows: rows, width: width, into: maxima.pointer, scratch: scratch.pointer)
            let (floats, copy) = (Buffer(m.array), Buffer<UInt16>(count: m.count))
            roundColumns(floats.pointer, rows: rows, width: width, maxima: maxima.pointer, bits: bits, scratch: scratch.pointer)
            roundColumns(m.pointer, rows: rows, width: width, maxima: maxima.pointer, bits: bits, scratch: scratch.pointer, bf16: copy.pointer)
            return (floats, copy)
        }
        let ((x32, x16), (dy32, dy16)) = (rounded(x, width: fanIn), rounded(dy, width: fanOut))
        // The same rounding into blocks of columns (a column in two blocks goes to both), as the
        // ranks of a node share the operands: each block is those columns of the whole copy.
        do {
            let maxima = Buffer<Double>(count: fanIn)
            columnMaxima(x.pointer, rows: rows, width: fanIn, into: maxima.pointer, scratch: scratch.pointer)
            let storage = Buffer<UInt16>(count: rows * (37 + 44 + 1))
            let blocks = [ColumnBlock(columns: 0..<37, base: storage.pointer), ColumnBlock(columns: 36..<80, base: storage.pointer + rows * 37),
                          ColumnBlock(columns: 79..<80, base: storage.pointer + rows * 81)]
            roundColumns(x.pointer, rows: rows, width: fanIn, maxima: maxima.pointer, bits: bits, scratch: scratch.pointer, bf16Blocks: blocks)
            for block in blocks {
                let values = (0..<rows).flatMap { i in block.columns.map { x16.pointer[i * fanIn + $0] } }
                XCTAssertEqual(Array(UnsafeBufferPointer(start: block.base, count: rows * block.columns.count)), values, "block \(block.columns)")
            }
        }
        XCTAssertTrue((0..<rows).allSatisfy { x32.pointer[$0 * fanIn + fanIn - 1] == 0 }, "a column below 2^-56 must become zeros")
        let saved = computeThreads()
        defer { setComputeThreads(saved) }
        func product32(first: Int, count: Int) -> [Float] {
            let dW = Buffer<Float>(count: fanIn * fanOut)
            MatrixEngine.shared.weightGradient(x: x32.pointer + first * fanIn, dy: dy32.pointer + first * fanOut, rows: count,
                                               fanIn: fanIn, fanOut: fanOut, dWeight: dW.pointer)
            return dW.array
        }
        func product16(first: Int, count: Int) -> [Float] {
            let dW = Buffer<Float>(count: fanIn * fanOut)
            MatrixEngine.shared.weightGradient(x: x16.pointer + first * fanIn, dy: dy16.pointer + first * fanOut, rows: count,
                                               fanIn: fanIn, fanOut: fanOut, dWeight: dW.pointer)
            return dW.array
        }
        setComputeThreads(1)
        let whole = product32(first: 0, count: rows)
        // Not vacuous: products of the smallest kept columns are far below 2^-100, and not zero.
        XCTAssertTrue(whole.contains { $0 != 0 && abs($0) < 0x1p-100 }, "no product of the smallest columns")
        for threads in [1, 2] {
            setComputeThreads(threads)
            XCTAssertEqual(product16(first: 0, count: rows), whole, "bf16 copies, \(threads) threads")
            // Three row parts (43, 43, 42), each in bf16, added in float32 in another order.
            let parts = [(85, 43), (0, 43), (43, 42)].map { product16(first: $0.0, count: $0.1) }
            XCTAssertEqual((0..<whole.count).map { parts[0][$0] + parts[1][$0] + parts[2][$0] }, whole, "row parts, \(threads) threads")
        }
        // Below the rule: two operands of 2^-64 make 2^-128, which float32 keeps (subnormal) and
        // the bf16 instructions flush to zero.
        let tiny: UInt16 = 0x1F80  // 2^-64 in bfloat16
        XCTAssertEqual(floatFromBF16(tiny), 0x1p-64)
        let (a32, a16) = (Buffer<Float>([0x1p-64]), Buffer<UInt16>([tiny]))
        let (c32, c16) = (Buffer<Float>(count: 1), Buffer<Float>(count: 1))
        MatrixEngine.shared.weightGradient(x: a32.pointer, dy: a32.pointer, rows: 1, fanIn: 1, fanOut: 1, dWeight: c32.pointer)
        MatrixEngine.shared.weightGradient(x: a16.pointer, dy: a16.pointer, rows: 1, fanIn: 1, fanOut: 1, dWeight: c16.pointer)
        XCTAssertEqual(c32.pointer[0], 0x1p-128)
        XCTAssertEqual(c16.pointer[0], 0, "the bf16 product kept a subnormal: the 2^-56 rule would not be needed")
    }
}
