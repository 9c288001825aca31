import Foundation

/// Deterministic randomness.
///
/// Dropout masks and MLM masks are drawn from a counter-based hash of (seed, stream, index),
/// not from a sequential generator: any thread can compute any element's draw, the result does
/// not depend on how work was split across cores, and resuming at step k needs only k.

/// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche.
@inlinable @inline(__always)
public func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A key for one stream of draws, derived from a seed and any number of stream identifiers.
@inlinable
public func streamKey(_ seed: UInt64, _ parts: UInt64...) -> UInt64 {
    var k = mix64(seed)
    for p in parts { k = mix64(k ^ p) }
    return k
}

/// The index-th uniform draw in [0, 1) of stream `key` (24-bit resolution, exact in Float).
@inlinable @inline(__always)
public func uniform(_ key: UInt64, _ index: Int) -> Float {
    Float(mix64(key ^ (UInt64(truncatingIfNeeded: index) &* 0xD6E8_FEB8_6659_FD93)) >> 40) * (1.0 / 16_777_216.0)
}

/// A small sequential generator (SplitMix64) whose whole state is one UInt64, so it can be
/// saved in a checkpoint and restored exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
    /// Standard normal (Box–Muller).
    public mutating func nextGaussian() -> Float {
        var u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
