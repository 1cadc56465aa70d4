// CounterRandom: stateless, counter-based random numbers.
//
// Every random number in training is a pure function of a key built from where it is used:
// (seed, purpose, epoch, step, layer, sample position, unit). No generator state is carried from
// one call to the next, so a sample gets the same dropout mask on whichever rank holds it, every
// rank computes the same shuffle without communicating, and a resumed run continues exactly. This is
// the idea of Philox/Threefry (Salmon et al., 2011) with a cheaper mixer, the SplitMix64 finalizer,
// which is ample for dropout masks, shuffles and initial weights (not for cryptography).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Mixing

/// SplitMix64's finalizer: a bijective avalanche of 64 bits.
@inline(__always)
public func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Purposes separate the random streams, so that e.g. the shuffle of epoch 3 and the dropout
/// masks of epoch 3 never share numbers.
public enum RandomPurpose: UInt64, Sendable {
    case split = 1, shuffle = 2, initialization = 3, dropout = 4, augmentation = 5
}

/// A key for one random stream: a seed extended by any number of counters.
public struct RandomKey: Sendable, Equatable {
    public let value: UInt64

    public init(seed: UInt64, _ purpose: RandomPurpose) {
        value = mix64(mix64(seed) ^ purpose.rawValue)
    }

    init(value: UInt64) { self.value = value }

    /// The key extended by one more counter (epoch, step, layer, ...).
    public func with(_ counter: Int) -> RandomKey {
        RandomKey(value: mix64(value ^ (UInt64(bitPattern: Int64(counter)) &* 0xD6E8_FEB8_6659_FD93)))
    }

    /// The `index`-th 64 random bits of this stream.
    @inline(__always) public func bits(_ index: Int) -> UInt64 {
        mix64(value ^ (UInt64(bitPattern: Int64(index)) &* 0x9E37_79B9_7F4A_7C15))
    }
}

// MARK: - Distributions

/// A uniform Float in [0, 1) from 24 random bits (exactly representable, never 1).
@inline(__always)
public func unitFloat(_ bits24: UInt32) -> Float {
    Float(bits24 & 0xFF_FFFF) * (1.0 / 16_777_216.0)
}

/// A uniform Double in [0, 1) from the top 53 bits.
@inline(__always)
public func unitDouble(_ bits: UInt64) -> Double {
    Double(bits >> 11) * (1.0 / 9_007_199_254_740_992.0)
}

/// Standard normal number `index` of the stream (Box–Muller on two uniforms from one 64-bit draw
/// pair; uses the cosine branch only so that each index is independent of its neighbours).
public func standardNormal(_ key: RandomKey, _ index: Int) -> Double {
    let u1 = 1.0 - unitDouble(key.bits(2 * index))  // (0, 1]: log is finite
    let u2 = unitDouble(key.bits(2 * index + 1))
    return (-2.0 * log(u1)).squareRoot() * cos(2.0 * Double.pi * u2)
}

/// A uniformly random permutation of 0..<n (Fisher–Yates with Lemire's multiply-shift range
/// reduction; its bias, < n / 2^64, is far below anything measurable).
public func permutation(_ n: Int, key: RandomKey) -> [Int] {
    var p = Array(0..<n)
    if n < 2 { return p }
    for i in stride(from: n - 1, to: 0, by: -1) {
        let r = key.bits(i).multipliedFullWidth(by: UInt64(i + 1)).high
        p.swapAt(i, Int(r))
    }
    return p
}
