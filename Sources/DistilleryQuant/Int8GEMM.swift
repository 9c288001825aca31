import Foundation
import CInt8
import DistilleryTensor

/// The int8 matrix-product kernels, chosen at run time from what the CPU supports.
public enum Int8Kernel: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case scalar = 0, avx2 = 1, avxVNNI = 2, avx512VLVNNI256 = 4, avx512VNNI = 3

    public static var available: [Int8Kernel] {
        let mask = distill_i8_available()
        return allCases.filter { mask & (1 << UInt32($0.rawValue)) != 0 }
    }

    /// The fastest available kernel, or the one named by $DISTILL_INT8_KERNEL.
    public static let best: Int8Kernel = {
        if let s = ProcessInfo.processInfo.environment["DISTILL_INT8_KERNEL"],
           let k = allCases.first(where: { $0.description == s }), available.contains(k) { return k }
        return available.last ?? .scalar
    }()

    public var description: String {
        switch self {
        case .scalar: return "scalar"
        case .avx2: return "avx2"
        case .avxVNNI: return "avx-vnni"
        case .avx512VNNI: return "avx512-vnni"
        case .avx512VLVNNI256: return "avx512vl-vnni-256"
        }
    }
}

/// Symmetric int8 quantization of the rows of a matrix: row r is q[r] · scale[r] with
///   scale = max |row| / 127,  q = round-to-nearest-even(x · 127 / max |row|)  ∈ [−127, 127].
/// An all-zero row gets scale 0 and q = 0.
public func quantizeRowsSymmetric(_ x: UnsafePointer<Float>, rows: Int, cols: Int) -> (q: [Int8], scales: [Float]) {
    var q = [Int8](repeating: 0, count: rows * cols), scales = [Float](repeating: 0, count: rows)
    for r in 0..<rows {
        let row = x + r * cols
        var amax: Float = 0
        for c in 0..<cols { amax = max(amax, abs(row[c])) }
        if amax == 0 { continue }
        let inv = 127 / amax
        scales[r] = amax / 127
        for c in 0..<cols { q[r * cols + c] = Int8(clamping: Int((row[c] * inv).rounded(.toNearestOrEven))) }
    }
    return (q, scales)
}

/// A linear layer's weights [N×K] quantized per output channel and packed for the kernels:
/// blocks of 16 channels, [⌈N/16⌉][Kp/4][16][4] int8, with the column sums that cancel the
/// activations' +128 offset.
public final class PackedInt8Weights: @unchecked Sendable {
    public let N: Int, K: Int, Kp: Int
    public let packed: AlignedBuffer<Int8>     // [⌈N/16⌉·Kp·16]
    public let scales: FloatBuffer             // [⌈N/16⌉·16]
    public let wsum: AlignedBuffer<Int32>      // [⌈N/16⌉·16]

    /// From int8 weights [N×K] (row-major) and their per-channel scales.
    public init(q: UnsafePointer<Int8>, scales s: UnsafePointer<Float>, N: Int, K: Int) {
        self.N = N; self.K = K
        Kp = (K + 3) & ~3
        let Np = (N + 15) & ~15
        packed = AlignedBuffer<Int8>(count: Np * Kp)
        scales = FloatBuffer(count: Np)
        wsum = AlignedBuffer<Int32>(count: Np)
        let K4 = Kp / 4
        for n in 0..<N {
            let blk = (n / 16) * K4 * 64 + (n % 16) * 4
            var sum: Int32 = 0
            for k in 0..<K {
                let v = q[n * K + k]
                packed.base[blk + (k / 4) * 64 + k % 4] = v
                sum += Int32(v)
            }
            wsum.base[n] = 128 * sum
            scales.base[n] = s[n]
        }
    }

    /// Row n's int8 values, read back from the packed layout (for embedding lookups).
    @inline(__always)
    public func row(_ n: Int, into out: UnsafeMutablePointer<Float>) {
        let K4 = Kp / 4
        let blk = packed.base + (n / 16) * K4 * 64 + (n % 16) * 4
        let s = scales.base[n]
        for k in 0..<K { out[k] = Float(blk[(k / 4) * 64 + k % 4]) * s }
    }

    public var bytes: Int { packed.count + scales.count * 4 + wsum.count * 4 }
}

/// Activations quantized per row for the kernels: u8 = round(x · 127 / max|row|) + 128 in
/// [1, 255], [M×Kp] with padding 128 (zero); scale = max|row| / 127 per row.
public final class QuantizedActivations: @unchecked Sendable {
    public let capacity: Int
    public let Kp: Int
    public let q: AlignedBuffer<UInt8>
    public let scales: FloatBuffer

    public init(maxRows: Int, K: Int) {
        capacity = maxRows
        Kp = (K + 3) & ~3
        q = AlignedBuffer<UInt8>(count: maxRows * Kp)
        scales = FloatBuffer(count: maxRows)
    }

    /// Quantizes x [M×K] (leading dimension ldx) on all cores.
    public func quantize(_ x: UnsafePointer<Float>, M: Int, K: Int, ldx: Int? = nil) {
        precondition(M <= capacity && (K + 3) & ~3 <= Kp)
        let ld = ldx ?? K, Kp = self.Kp
        let qp = SendablePointer(q.base), sp = SendablePointer(scales.base)
        Parallel.forEachChunk(M, minPerChunk: 16) { _, rows in
            for m in rows { quantizeRow(x + m * ld, K: K, out: qp.p + m * Kp, Kp: Kp, scale: sp.p + m) }
        }
    }
}

/// One row: max |x|, then x · (127 / max) rounded to nearest even with the 1.5·2²³ trick,
/// offset by 128 and narrowed to bytes.
@inline(__always)
func quantizeRow(_ x: UnsafePointer<Float>, K: Int, out: UnsafeMutablePointer<UInt8>, Kp: Int, scale: UnsafeMutablePointer<Float>) {
    let K8 = K & ~7
    var m8 = F8()
    var k = 0
    while k < K8 { let a = abs8(x.load8(k)); m8 = m8.replacing(with: a, where: a .> m8); k += 8 }
    var amax = m8.max()
    while k < K { amax = max(amax, abs(x[k])); k += 1 }
    if amax == 0 {
        scale.pointee = 0
        out.update(repeating: 128, count: Kp)
        return
    }
    scale.pointee = amax / 127
    let inv = 127 / amax
    let inv8 = F8(repeating: inv), magic = F8(repeating: 12_582_912 + 128)
    k = 0
    while k < K8 {
        let t = unsafeBitCast(x.load8(k) * inv8 + magic, to: SIMD8<UInt32>.self)
        UnsafeMutableRawPointer(out + k).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: t), as: SIMD8<UInt8>.self)
        k += 8
    }
    while k < K {
        out[k] = UInt8(Int((x[k] * inv).rounded(.toNearestOrEven)) + 128)
        k += 1
    }
    while k < Kp { out[k] = 128; k += 1 }
}

@inline(__always) func abs8(_ v: F8) -> F8 { v.replacing(with: -v, where: v .< 0) }

/// The scalar definition `quantizeRow` must match (for tests).
public func quantizeRowReference(_ x: [Float]) -> (q: [UInt8], scale: Float) {
    let amax = x.reduce(0) { max($0, abs($1)) }
    if amax == 0 { return ([UInt8](repeating: 128, count: x.count), 0) }
    let inv = 127 / amax
    return (x.map { UInt8(Int(($0 * inv).rounded(.toNearestOrEven)) + 128) }, amax / 127)
}

/// Quantizes one row with the vectorised path (for tests).
public func quantizeRowVectorised(_ x: [Float]) -> (q: [UInt8], scale: Float) {
    let Kp = (x.count + 3) & ~3
    var out = [UInt8](repeating: 0, count: Kp)
    var s: Float = 0
    x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in
        quantizeRow(xp.baseAddress!, K: x.count, out: op.baseAddress!, Kp: Kp, scale: &s)
    } }
    return (Array(out.prefix(x.count)), s)
}

/// y [M×N] (leading dimension ldy) = dequantize(xq · Wᵀ) + bias, split across threads by rows
/// (or by column blocks when there are few rows).
public func int8Linear(_ y: UnsafeMutablePointer<Float>, ldy: Int? = nil, _ x: QuantizedActivations, M: Int,
                       _ w: PackedInt8Weights, bias: UnsafePointer<Float>?, kernel: Int8Kernel = .best) {
    precondition(x.Kp == w.Kp, "activation and weight widths differ")
    let ld = ldy ?? w.N, Kp = w.Kp, N = w.N
    let yp = SendablePointer(y)
    let k = kernel.rawValue
    let rowsPerTile = 6
    if M >= 2 * rowsPerTile * Parallel.threads || N <= 64 {
        let tiles = (M + rowsPerTile - 1) / rowsPerTile
        Parallel.forEachChunk(tiles) { _, range in
            let m0 = range.lowerBound * rowsPerTile, m1 = min(M, range.upperBound * rowsPerTile)
            distill_i8_gemm(k, Int32(m1 - m0), Int32(N), Int32(Kp), x.q.base + m0 * Kp, w.packed.base, w.wsum.base,
                            x.scales.base + m0, w.scales.base, bias, yp.p + m0 * ld, Int32(ld))
        }
    } else {
        let groups = (N + 63) / 64
        Parallel.forEachChunk(groups) { _, range in
            let n0 = range.lowerBound * 64, n1 = min(N, range.upperBound * 64)
            distill_i8_gemm(k, Int32(M), Int32(n1 - n0), Int32(Kp), x.q.base, w.packed.base + (n0 / 16) * (Kp / 4) * 64,
                            w.wsum.base + n0, x.scales.base, w.scales.base + n0, bias.map { $0 + n0 }, yp.p + n0, Int32(ld))
        }
    }
}
