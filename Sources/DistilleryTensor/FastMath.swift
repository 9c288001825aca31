import CKernels

/// Eight-lane float vectors and their helpers for the Swift kernels that need no exponentials or
/// fused multiply-adds (those live in CKernels, compiled for AVX-512 and for AVX2 + FMA with a
/// portable copy, chosen at run time).

public typealias F8 = SIMD8<Float>

/// Which compiled copy of the C kernels runs: "avx512", "avx2+fma" or "generic".
public enum SIMDKernels {
    public static var name: String { String(cString: distill_simd_name()) }
    /// The copy that runs: 0 generic, 1 AVX2 + FMA, 2 AVX-512.
    public static var level: Int { Int(distill_simd_level()) }
    /// True where a vector copy (AVX2 + FMA or AVX-512) runs.
    @inline(__always) public static var fast: Bool { distill_simd_level() >= 1 }
    /// The best copy this CPU runs, whatever DISTILL_SIMD says.
    public static var best: Int { Int(distill_simd_best()) }
    /// The copies this CPU can run, the portable one first: 0 generic, 1 AVX2 + FMA, 2 AVX-512.
    public static var levels: [Int] { Array(0...best) }
    /// Runs copy `level` from now on (tests of every copy), or the best the CPU has (nil).
    public static func force(_ level: Int?) { _ = distill_simd_force(Int32(level ?? best)) }
    /// Forces the generic copy (true) or the best the CPU has (false), for tests of the fallback.
    public static func forceGeneric(_ generic: Bool) { force(generic ? 0 : nil) }
}

/// tanh of one float (the pooler's few values; vector work goes through CKernels).
@inline(__always)
public func tanhScalar(_ x: Float) -> Float {
    var x = x, y: Float = 0
    distill_tanh(&x, &y, 1)
    return y
}

/// Horizontal maximum and sum of eight lanes. The standard library's `max()`/`sum()` on SIMD
/// vectors are generic and are not always specialised into shuffles.
@inlinable @inline(__always)
public func hmax(_ v: F8) -> Float {
    let a = v.lowHalf, b = v.highHalf
    let m4 = a.replacing(with: b, where: b .> a)
    let m2 = m4.lowHalf.replacing(with: m4.highHalf, where: m4.highHalf .> m4.lowHalf)
    return Swift.max(m2[0], m2[1])
}

@inlinable @inline(__always)
public func hsum(_ v: F8) -> Float {
    let s4 = v.lowHalf + v.highHalf
    let s2 = s4.lowHalf + s4.highHalf
    return s2[0] + s2[1]
}

extension UnsafeMutablePointer where Pointee == Float {
    @inlinable @inline(__always)
    public func load8(_ i: Int) -> F8 {
        UnsafeMutableRawPointer(self + i).loadUnaligned(as: F8.self)
    }
    @inlinable @inline(__always)
    public func store8(_ v: F8, _ i: Int) {
        UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: F8.self)
    }
}

extension UnsafePointer where Pointee == Float {
    @inlinable @inline(__always)
    public func load8(_ i: Int) -> F8 {
        UnsafeRawPointer(self + i).loadUnaligned(as: F8.self)
    }
}
