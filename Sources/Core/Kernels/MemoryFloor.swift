// MemoryFloor: the fastest this machine moves the optimizer's bytes of one step, the roofline of the
// step's memory-bound part (`dist-trainer roofline --memory`), as the products' roofline bounds
// its matrix products.
//
// Adam reads the parameters, their gradients and both moments of its part and writes three of them
// back (in bf16 precision also the weights' bfloat16 copy): 28 (30) bytes per parameter, more than
// a core's own cache keeps from one step to the next while the step's products stream weights and
// activations through it. So Adam's bound is where its arrays come from: the last-level cache,
// which the ranks of a node share (and on a VM, the other tenants of the same chip), or memory.
// This streams arrays of the same size in the parts Adam's threads take, with an add in place of
// Adam's arithmetic, each time after reading enough other bytes to push them out to one of the
// two; it times the memory system and nothing of Adam's. A measurement only: training never uses it.
import Foundation

/// The bytes one optimizer step moves for `parameters` parameters (a rank's part of the update).
public struct OptimizerTraffic: Equatable, Sendable {
    public let parameters: Int
    /// Whether the step also writes the weights' bfloat16 copy (bf16 precision).
    public let bf16Copy: Bool

    public init(parameters: Int, bf16Copy: Bool) { (self.parameters, self.bf16Copy) = (parameters, bf16Copy) }

    /// Parameters, gradients and both moments, 4 bytes each.
    public var bytesRead: Int { 16 * parameters }
    /// Parameters and both moments, 4 bytes each, and a bfloat16 copy's 2.
    public var bytesWritten: Int { (bf16Copy ? 14 : 12) * parameters }
    public var bytes: Int { bytesRead + bytesWritten }
}

/// Where the optimizer's arrays come from at the start of a step.
public enum MemoryLevel: String, CaseIterable, Sendable {
    /// The last-level cache: pushed out of the cores' own caches only (by reading 4 times their
    /// size per thread), as a step's products push them when that cache is the job's alone.
    case lastLevelCache = "last-level cache"
    /// Main memory: pushed out of the last-level cache too (by reading twice its size).
    case memory

    /// "from the last-level cache", "from memory".
    public var source: String { self == .memory ? "from memory" : "from the last-level cache" }
}

/// Arrays the size of an optimizer step's, and the stream that moves its bytes.
public final class MemoryFloor {
    public let traffic: OptimizerTraffic
    let threads: Int
    let parameters, gradients, first, second: Buffer<Float>
    let copy: Buffer<UInt16>?
    let sink = Buffer<Float>(count: 16)

    public init(_ traffic: OptimizerTraffic, threads: Int) {
        (self.traffic, self.threads) = (traffic, max(1, threads))
        let n = traffic.parameters
        // Buffers start zeroed, so every page is touched before a stream, as training's are.
        (parameters, gradients, first, second) = (Buffer(count: n), Buffer(count: n), Buffer(count: n), Buffer(count: n))
        copy = traffic.bf16Copy ? Buffer(count: n) : nil
    }

    /// One step's traffic: each parameter, first and second moment gains its gradient (and the
    /// parameter's bfloat16 bits go to the copy, block by block while they are in the nearest
    /// cache, as Adam writes them), in the parts Adam's `parallelFor` makes.
    public func stream() {
        let (p, g, m, v, copy) = (parameters.pointer, gradients.pointer, first.pointer, second.pointer, copy?.pointer)
        let n = traffic.parameters
        parallelFor(n, work: 4 * n) { part in
            forEachBlock(of: part) { block in
                for i in block {
                    let gi = g[i]
                    m[i] += gi
                    v[i] += gi
                    p[i] += gi
                }
                if let copy { for i in block { copy[i] = bf16Bits(p[i]) } }
            }
        }
    }

    /// Seconds per step with the arrays coming from `level`: the best over `rounds` of the mean
    /// of `repetitions` streams, each after an untimed read of other bytes that puts them there.
    public func seconds(from level: MemoryLevel, repetitions: Int = 50, rounds: Int = 5) -> Double {
        let evictionBytes = switch level {
        case .lastLevelCache: 4 * CacheSizes.current.core * threads
        case .memory: 2 * CacheSizes.current.lastLevel
        }
        let eviction = Buffer<Float>(count: max(16, evictionBytes / MemoryLayout<Float>.stride))
        for _ in 0..<3 { evict(eviction); stream() }
        var best = Double.infinity
        for _ in 0..<rounds {
            var total: UInt64 = 0
            for _ in 0..<repetitions {
                evict(eviction)
                let start = DispatchTime.now().uptimeNanoseconds
                stream()
                total += DispatchTime.now().uptimeNanoseconds - start
            }
            best = min(best, Double(total) / 1e9 / Double(repetitions))
        }
        return best
    }

    /// Reads one value per cache line of `buffer`, on the same threads as the stream.
    func evict(_ buffer: Buffer<Float>) {
        let (e, lines, s) = (buffer.pointer, buffer.count / 16, sink.pointer)
        parallelFor(lines, work: 16 * lines) { part in
            var total: Float = 0
            for line in part { total += e[16 * line] }
            if total != 0 { s[0] = total }
        }
    }
}

/// The sizes of this CPU's caches that MemoryFloor pushes its arrays out of.
public struct CacheSizes: Equatable, Sendable {
    /// The largest cache private to a core (its L2 on current x86-64 and Arm servers).
    public let core: Int
    /// The last-level cache of the chip (or of the core complex that shares one).
    public let lastLevel: Int

    public init(core: Int, lastLevel: Int) { (self.core, self.lastLevel) = (core, lastLevel) }

    /// From cpu0's caches in sysfs (Linux), else 1 MB and 32 MB.
    public static let current = CacheSizes(sysfs: "/sys/devices/system/cpu/cpu0/cache")

    /// The data or unified caches listed under `directory` (index0, index1, ...: files `level`,
    /// `type` and `size`, as "32768K"): level 2's size and the highest level's.
    public init(sysfs directory: String) {
        var sizes = [Int: Int]()
        for index in 0..<8 {
            let path = "\(directory)/index\(index)"
            func read(_ name: String) -> String? {
                (try? String(contentsOfFile: "\(path)/\(name)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let level = read("level").flatMap(Int.init), let type = read("type"), type != "Instruction",
                  let size = read("size").flatMap(CacheSizes.bytes) else { continue }
            sizes[level] = size
        }
        core = sizes[2] ?? 1 << 20
        lastLevel = sizes.keys.max().flatMap { $0 > 2 ? sizes[$0] : nil } ?? 32 << 20
    }

    /// "32768K", "1M" or "512" as bytes.
    static func bytes(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let unit = text.last.flatMap({ units[$0] }) { return Int(text.dropLast()).map { $0 * unit } }
        return Int(text)
    }
}
