// GradientCompressionTests: the 16-bit formats of --grad-compression on hand-picked values (exact,
// round to nearest even, fp16's overflow and underflow), the adding decode the ring uses, and the
// single-process rounding that keeps np=1 in step with np=N. The ring itself runs under MPI
// (`dist-trainer check`, DistributedTests).
@testable import Collectives
@testable import Kernels
import XCTest

final class GradientCompressionTests: XCTestCase {
    func roundTrip(_ format: GradientCompression, _ values: [Float]) -> (bits: [UInt16], back: [Float]) {
        var bits = [UInt16](repeating: 0, count: values.count)
        var back = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { format.encode($0.baseAddress!, count: values.count, into: &bits) }
        bits.withUnsafeBufferPointer { format.decode($0.baseAddress!, count: values.count, into: &back) }
        return (bits, back)
    }

    func testBF16() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even pattern (1.0);
        // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: the even one is 1 + 2^-6.
        let (bits, back) = roundTrip(.bf16, [1, -2, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, 3e38, 1e-30])
        XCTAssertEqual(Array(bits[0..<2]), [0x3F80, 0xC000])
        XCTAssertEqual(Array(back[0..<5]), [1, -2, 1, 1 + 0x1p-6, 1 + 0x1p-7])
        // float32's range is kept: no overflow or flush to zero.
        XCTAssertEqual(back[5] / 3e38, 1, accuracy: 0x1p-8)
        XCTAssertEqual(back[6] / 1e-30, 1, accuracy: 0x1p-8)
    }

    func testFP16() {
        let (bits, back) = roundTrip(.fp16, [1, -2, 65504, 1 + 0x1p-11, 1 + 3 * 0x1p-11, 70000, 1e-8, 0x1p-24])
        XCTAssertEqual(Array(bits[0..<3]), [0x3C00, 0xC000, 0x7BFF])
        XCTAssertEqual(Array(back[0..<5]), [1, -2, 65504, 1, 1 + 0x1p-9])
        XCTAssertEqual(back[5], .infinity)  // above 65504 overflows: why bf16 is the safer default
        XCTAssertEqual(back[6], 0)  // below half of fp16's smallest subnormal flushes to zero
        XCTAssertEqual(back[7], 0x1p-24)  // the smallest subnormal is kept
    }

    func testDecodeAddingAndSingleProcessRounding() throws {
        for format in [GradientCompression.bf16, .fp16] {
            let values: [Float] = [0.1, -0.3, 2.5, 1e-3]
            let (bits, back) = roundTrip(format, values)
            var sums: [Float] = [1, 1, 1, 1]
            bits.withUnsafeBufferPointer { format.decodeAdding($0.baseAddress!, count: 4, into: &sums) }
            XCTAssertEqual(sums, back.map { 1 + $0 })
            // One process rounds its gradient through the format, as a ring of one would.
            let buffer = Buffer<Float>(count: 4)
            for i in 0..<4 { buffer.pointer[i] = values[i] }
            try SingleProcess().allreduceSumCompressed(buffer.all, format: format)
            XCTAssertEqual(Array(buffer.all), back)
            XCTAssertNotEqual(back, values, "0.1 is not exact in \(format)")
        }
    }
}
