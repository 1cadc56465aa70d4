// MemoryFloorTests: the optimizer's memory floor (`roofline --memory`) counts the bytes Adam moves,
// its stream moves every one of them once on any number of threads, and the cache sizes it evicts
// by are read from sysfs as the kernel lists them.
//
// Not here: how fast the stream is (a figure for scripts/bench.sh, not a timed test).
import Foundation
@testable import Kernels
import XCTest

final class MemoryFloorTests: XCTestCase {
    /// Model 2 has 477 898 parameters: 16 bytes read and 12 written each, 2 more with a bf16 copy.
    func testTrafficIsAdamsBytes() {
        let fp32 = OptimizerTraffic(parameters: 477_898, bf16Copy: false)
        XCTAssertEqual(fp32.bytesRead, 7_646_368)
        XCTAssertEqual(fp32.bytesWritten, 5_734_776)
        XCTAssertEqual(fp32.bytes, 13_381_144)
        XCTAssertEqual(OptimizerTraffic(parameters: 477_898, bf16Copy: true).bytes, 14_336_940)
    }

    /// One stream adds each gradient once to its parameter and both moments (and writes the
    /// parameter's bf16 bits), whatever the thread count: a part skipped or done twice shows.
    func testStreamTouchesEveryElementOnce() {
        let saved = computeThreads()
        defer { setComputeThreads(saved) }
        for threads in [1, 2, 3] {
            setComputeThreads(threads)
            for bf16 in [false, true] {
                let n = 100_003
                let floor = MemoryFloor(OptimizerTraffic(parameters: n, bf16Copy: bf16), threads: threads)
                for i in 0..<n { floor.gradients.pointer[i] = Float(i % 1000) + 0.5 }
                floor.stream()
                for (name, buffer) in [("parameters", floor.parameters), ("first", floor.first), ("second", floor.second)] {
                    let wrong = (0..<n).first { buffer.pointer[$0] != floor.gradients.pointer[$0] }
                    XCTAssertNil(wrong, "\(threads) threads, bf16 \(bf16): \(name)[\(wrong ?? -1)]")
                }
                if let copy = floor.copy {
                    XCTAssertNil((0..<n).first { copy.pointer[$0] != bf16Bits(floor.gradients.pointer[$0]) }, "\(threads) threads: bf16 copy")
                }
            }
        }
    }

    /// The level-2 cache and the highest level, data and unified caches only, sizes with units.
    func testCacheSizesFromSysfs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let caches = [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"), (3, "Unified", "32M")]
        for (index, (level, type, size)) in caches.enumerated() {
            let path = "\(dir)/index\(index)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            for (name, text) in [("level", "\(level)\n"), ("type", type + "\n"), ("size", size + "\n")] {
                try text.write(toFile: "\(path)/\(name)", atomically: true, encoding: .utf8)
            }
        }
        XCTAssertEqual(CacheSizes(sysfs: dir), CacheSizes(core: 1 << 20, lastLevel: 32 << 20))
        // Only two levels: no last-level cache beyond the core's, so the default stands.
        try FileManager.default.removeItem(atPath: "\(dir)/index3")
        try "2M\n".write(toFile: "\(dir)/index2/size", atomically: true, encoding: .utf8)
        XCTAssertEqual(CacheSizes(sysfs: dir), CacheSizes(core: 2 << 20, lastLevel: 32 << 20))
        XCTAssertEqual(CacheSizes(sysfs: dir + "/missing"), CacheSizes(core: 1 << 20, lastLevel: 32 << 20))
        XCTAssertEqual(CacheSizes.bytes("512"), 512)
        XCTAssertNil(CacheSizes.bytes("lots"))
    }
}
