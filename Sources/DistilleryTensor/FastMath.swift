/// Vectorised exp, erf and tanh for the kernels' hot loops.
///
/// glibc's scalar expf/erff cost 5–20 ns a call and do not vectorise; the softmax over a
/// 30,522-word vocabulary and GELU over every FFN activation call them hundreds of millions of
/// times a training step. These polynomial forms run eight lanes at a time and are accurate to
/// a few ulp (FastMathTests bounds them against Double references).

public typealias F8 = SIMD8<Float>

/// e^x. Cephes' range reduction x = n·ln2 + r, |r| ≤ ln2/2, and a degree-6 polynomial for e^r.
/// Inputs below −87.3 return 0, above 88.4 return a large finite value.
///
/// Written with element-wise selects and the 1.5·2²³ rounding trick because the generic SIMD
/// conversions and `rounded`/`clamped` are not vectorised by the compiler.
@inlinable @inline(__always)
public func vexp(_ x: F8) -> F8 {
    let hi: Float = 88.3762626647949, lo: Float = -87.3365447505531
    let input = x
    var x = x.replacing(with: hi, where: x .> hi)
    x = x.replacing(with: lo, where: x .< lo)
    // n = round(x / ln2): adding 1.5·2²³ leaves the rounded integer in the low mantissa bits.
    let magic: Float = 12_582_912
    let t = F8(repeating: magic).addingProduct(x, F8(repeating: 1.44269504088896341))
    let fx = t - magic
    x = x.addingProduct(fx, F8(repeating: -0.693359375))
    x = x.addingProduct(fx, F8(repeating: 2.12194440e-4))
    let z = x * x
    var y = F8(repeating: 1.9875691500e-4)
    y = F8(repeating: 1.3981999507e-3).addingProduct(y, x)
    y = F8(repeating: 8.3334519073e-3).addingProduct(y, x)
    y = F8(repeating: 4.1665795894e-2).addingProduct(y, x)
    y = F8(repeating: 1.6666665459e-1).addingProduct(y, x)
    y = F8(repeating: 5.0000001201e-1).addingProduct(y, x)
    y = (x + 1).addingProduct(y, z)
    // 2^n through the exponent bits (n ≥ −126 after the clamp).
    let n = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((n &+ 127) &<< 23, to: F8.self)
    // Below the clamp e^x is denormal or 0: return 0 (the right answer for a masked logit).
    return (y * scale).replacing(with: 0, where: input .< lo)
}

@inlinable @inline(__always)
public func vexp(_ x: Float) -> Float { vexp(F8(repeating: x))[0] }

/// erf(x): a rational minimax form on [−4, 4] (erf is ±1 to float precision outside).
@inlinable @inline(__always)
public func verf(_ x: F8) -> F8 {
    var x = x.replacing(with: 4, where: x .> 4)
    x = x.replacing(with: -4, where: x .< -4)
    let x2 = x * x
    var p = F8(repeating: -2.72614225801306e-10)
    p = F8(repeating: 2.77068142495902e-08).addingProduct(p, x2)
    p = F8(repeating: -2.10102402082508e-06).addingProduct(p, x2)
    p = F8(repeating: -5.69250639462346e-05).addingProduct(p, x2)
    p = F8(repeating: -7.34990630326855e-04).addingProduct(p, x2)
    p = F8(repeating: -2.95459980854025e-03).addingProduct(p, x2)
    p = F8(repeating: -1.60960333262415e-02).addingProduct(p, x2)
    p = p * x
    var q = F8(repeating: -1.45660718464996e-05)
    q = F8(repeating: -2.13374055278905e-04).addingProduct(q, x2)
    q = F8(repeating: -1.68282697438203e-03).addingProduct(q, x2)
    q = F8(repeating: -7.37332916720468e-03).addingProduct(q, x2)
    q = F8(repeating: -1.42647390514189e-02).addingProduct(q, x2)
    return p / q
}

@inlinable @inline(__always)
public func verf(_ x: Float) -> Float { verf(F8(repeating: x))[0] }

/// tanh(x) = 1 − 2 / (e^{2x} + 1), clamped where tanh is ±1 in float.
@inlinable @inline(__always)
public func vtanh(_ x: F8) -> F8 {
    var x = x.replacing(with: 9, where: x .> 9)
    x = x.replacing(with: -9, where: x .< -9)
    let e = vexp(x * 2)
    return 1 - 2 / (e + 1)
}

@inlinable @inline(__always)
public func vtanh(_ x: Float) -> Float { vtanh(F8(repeating: x))[0] }

public typealias D4 = SIMD4<Double>

/// e^x in double precision, four lanes: the same range reduction with a degree-12 Taylor
/// polynomial on |r| ≤ ln2/2 (relative error about 3e-16). For sums whose last digits matter:
/// the log-sum-exp of a row of logits.
@inlinable @inline(__always)
public func vexp(_ x: D4) -> D4 {
    var x = x.replacing(with: 708, where: x .> 708)
    x = x.replacing(with: -708, where: x .< -708)
    let magic = 6_755_399_441_055_744.0  // 1.5·2⁵²
    let t = D4(repeating: magic).addingProduct(x, D4(repeating: 1.4426950408889634))
    let n = t - magic
    var r = x.addingProduct(n, D4(repeating: -0.6931471803691238))
    r = r.addingProduct(n, D4(repeating: -1.9082149292705877e-10))
    var p = D4(repeating: 1.0 / 479_001_600)
    p = D4(repeating: 1.0 / 39_916_800).addingProduct(p, r)
    p = D4(repeating: 1.0 / 3_628_800).addingProduct(p, r)
    p = D4(repeating: 1.0 / 362_880).addingProduct(p, r)
    p = D4(repeating: 1.0 / 40320).addingProduct(p, r)
    p = D4(repeating: 1.0 / 5040).addingProduct(p, r)
    p = D4(repeating: 1.0 / 720).addingProduct(p, r)
    p = D4(repeating: 1.0 / 120).addingProduct(p, r)
    p = D4(repeating: 1.0 / 24).addingProduct(p, r)
    p = D4(repeating: 1.0 / 6).addingProduct(p, r)
    p = D4(repeating: 0.5).addingProduct(p, r)
    p = D4(repeating: 1).addingProduct(p, r)
    p = D4(repeating: 1).addingProduct(p, r)
    let bits = (unsafeBitCast(t, to: SIMD4<Int64>.self) &- 0x4338_0000_0000_0000 &+ 1023) &<< 52
    return p * unsafeBitCast(bits, to: D4.self)
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
