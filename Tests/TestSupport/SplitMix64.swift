// SplitMix64: a small seeded generator for test data (independent of Core's counter-based
// generators), with the uniform and normal draws the tests fill their inputs and parameters with.
import Foundation

public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(_ seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { Float.random(in: lo..<hi, using: &self) }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = 1 - Double.random(in: 0..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// `n` draws of normal() · scale + offset.
    public mutating func normals(_ n: Int, scale: Float = 1, offset: Float = 0) -> [Float] {
        (0..<n).map { _ in normal() * scale + offset }
    }
}
