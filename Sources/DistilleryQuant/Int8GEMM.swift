import Foundation
import CInt8
import CDNNL
import DistilleryTensor

/// The int8 matrix-product kernels, chosen at run time from what the CPU supports.
public enum Int8Kernel: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case scalar = 0, avx2 = 1, avxVNNI = 2, avx512VLVNNI256 = 4, avx512VNNI = 3
    /// oneDNN's u8 × s8 → s32 products (AMX or VNNI), where they are exact; our dequantization.
    case onednn = 5

    public static var available: [Int8Kernel] {
        let mask = distill_i8_available()
        return allCases.filter { $0 == .onednn ? OneDNN.int8 : mask & (1 << UInt32($0.rawValue)) != 0 }
    }

    /// The fastest available kernel, or the one named by $DISTILL_INT8_KERNEL. oneDNN's
    /// products are the default only where it runs AMX (tile products at several times the
    /// VNNI rate, which pays for their extra pass over int32 products); with VNNI alone it runs
    /// the same vpdpbusd as our kernels, which dequantize in registers instead. (Measured on an
    /// AMD Zen 5, AVX-512 VNNI, 2 threads, all-MiniLM-L6-v2: 22.3 against 25.2 ms a pass at
    /// 8 × 128, 2.9 against 4.2 ms at 1 × 128. AMX not yet measured: DISTILL_INT8_KERNEL=onednn
    /// compares them there.)
    public static let best: Int8Kernel = {
        if let s = ProcessInfo.processInfo.environment["DISTILL_INT8_KERNEL"],
           let k = allCases.first(where: { $0.description == s }), available.contains(k) { return k }
        return available.last(where: { $0 != .onednn || OneDNN.amx }) ?? .scalar
    }()

    /// The fastest of our own kernels that multiplies codes up to `levels` exactly.
    package static func own(levels: Int) -> Int8Kernel {
        available.last(where: { $0 != .onednn && $0.activationLevels >= levels }) ?? .scalar
    }

    /// The largest activation code the kernel multiplies exactly: 255 (8-bit activations),
    /// or 127 for AVX2 without VNNI, whose vpmaddubsw saturates 16-bit pair sums of 8-bit
    /// inputs. There activations are quantized to 7 bits, which keeps the products exact and
    /// runs ~1.5× the 16-bit products a full 8 bits would need (ONNX Runtime reduces the weights'
    /// range instead; here the weights come quantized from the file, and 7-bit activations
    /// cost all-MiniLM-L6-v2 less fidelity: sentence cosine 0.9990 against 0.9978).
    public var activationLevels: Int { self == .avx2 ? 127 : 255 }

    /// Rows of the kernel's register tile (int8_gemm.c): 6 where the registers allow
    /// (AVX-512 VNNI; AVX-VNNI's 6 × 16-column tile), 4 in the others.
    var rowsPerTile: Int { self == .avx512VNNI || self == .avxVNNI ? 6 : 4 }

    public var description: String {
        switch self {
        case .scalar: return "scalar"
        case .avx2: return "avx2"
        case .avxVNNI: return "avx-vnni"
        case .avx512VNNI: return "avx512-vnni"
        case .avx512VLVNNI256: return "avx512vl-vnni-256"
        case .onednn: return "onednn"
        }
    }
}

/// Symmetric int8 quantization of the rows of a matrix: row r is q[r] · scale[r] with
///   scale = max |row| / 127,  q = round-to-nearest-even(x · 127 / max |row|)  ∈ [−127, 127].
/// An all-zero row gets scale 0 and q = 0; a row holding NaN or ±∞ gets scale NaN and q = 0
/// (callers refuse such weights first; this only keeps the arithmetic from trapping).
public func quantizeRowsSymmetric(_ x: UnsafePointer<Float>, rows: Int, cols: Int) -> (q: [Int8], scales: [Float]) {
    var q = [Int8](repeating: 0, count: rows * cols), scales = [Float](repeating: 0, count: rows)
    for r in 0..<rows {
        let row = x + r * cols
        var amax: Float = 0
        for c in 0..<cols { amax = max(amax, abs(row[c])) }
        if amax == 0 { continue }
        if !amax.isFinite { scales[r] = .nan; continue }
        let inv = 127 / amax
        scales[r] = amax / 127
        for c in 0..<cols { q[r * cols + c] = Int8(clamping: Int((row[c] * inv).rounded(.toNearestOrEven))) }
    }
    return (q, scales)
}

/// A linear layer's weights [N×K] quantized per output channel and packed for the kernels:
/// blocks of 16 channels, [⌈N/16⌉][Kp/4][16][4] int8, with each channel's Σ_k w (which
/// cancels the activations' zero points); and the input's outlier channels, if any, with their
/// fp32 weight columns.
public final class PackedInt8Weights: @unchecked Sendable {
    public let N: Int, K: Int, Kp: Int
    public let packed: AlignedBuffer<Int8>     // [⌈N/16⌉·Kp·16]
    public let scales: FloatBuffer             // [⌈N/16⌉·16]
    public let colsum: AlignedBuffer<Int32>    // [⌈N/16⌉·16]
    /// What the activations are multiplied by, column by column, before quantization [K]:
    /// 1 / s_k where the weights were smoothed (multiplied column by column by s_k), and 0 at
    /// the outlier channels, whose codes are then the zero point and add nothing. nil: all 1.
    public let quantizationScale: FloatBuffer?
    /// The outlier channels of the input, ascending [k], and their weight columns as rows,
    /// fp32 and unsmoothed: [k × N].
    public let outlierChannels: AlignedBuffer<Int32>
    public let outlierWeights: FloatBuffer

    /// From int8 weights [N×K] (row-major) and their per-channel scales; `outliers` gives the
    /// outlier channels [k] and their fp32 columns [N × k] (the int8 weights there are ignored).
    public init(q: UnsafePointer<Int8>, scales s: UnsafePointer<Float>, N: Int, K: Int, smoothing: [Float]? = nil,
                outliers: (channels: [Int32], columns: [Float])? = nil) {
        self.N = N; self.K = K
        let channels = outliers?.channels ?? [], k = channels.count
        precondition(channels.allSatisfy { $0 >= 0 && Int($0) < K } && outliers.map { $0.columns.count == N * k } ?? true,
                     "outlier channels outside the matrix")
        if smoothing != nil || k > 0 {
            var c = smoothing.map { $0.map { 1 / $0 } } ?? [Float](repeating: 1, count: K)
            for j in channels { c[Int(j)] = 0 }
            quantizationScale = FloatBuffer(c)
        } else {
            quantizationScale = nil
        }
        outlierChannels = AlignedBuffer<Int32>(count: k)
        outlierWeights = FloatBuffer(count: k * N)
        for (i, j) in channels.enumerated() {
            outlierChannels.base[i] = j
            for n in 0..<N { outlierWeights.base[i * N + n] = outliers!.columns[n * k + i] }
        }
        Kp = (K + 3) & ~3
        let Np = (N + 15) & ~15
        packed = AlignedBuffer<Int8>(count: Np * Kp)
        scales = FloatBuffer(count: Np)
        colsum = AlignedBuffer<Int32>(count: Np)
        let K4 = Kp / 4
        var outlier = [Bool](repeating: false, count: K)
        for j in channels { outlier[Int(j)] = true }
        for n in 0..<N {
            let blk = (n / 16) * K4 * 64 + (n % 16) * 4
            var sum: Int32 = 0
            for k in 0..<K {
                let v = outlier[k] ? 0 : q[n * K + k]
                packed.base[blk + (k / 4) * 64 + k % 4] = v
                sum += Int32(v)
            }
            colsum.base[n] = sum
            scales.base[n] = s[n]
        }
    }

    /// The matrices of one schedule site (query, key and value: one matrix), rows concatenated.
    /// They share one input, so one smoothing and one set of outlier channels (the first part's).
    public convenience init(_ parts: [QuantizedSlot], N: Int, K: Int) {
        let q = parts.flatMap(\.q), s = parts.flatMap(\.scales)
        let channels = parts[0].outlierChannels
        let outliers = channels.isEmpty ? nil : (channels, parts.flatMap(\.outlierColumns))
        self.init(q: q, scales: s, N: N, K: K, smoothing: parts[0].smoothing, outliers: outliers)
    }

    /// x's values at the outlier channels: out [M × k] from x [M × K] (leading dimension ldx).
    public func gatherOutliers(_ x: UnsafePointer<Float>, ldx: Int, M: Int, into out: UnsafeMutablePointer<Float>) {
        let k = outlierChannels.count, c = outlierChannels.base
        for m in 0..<M { for j in 0..<k { out[m * k + j] = x[m * ldx + Int(c[j])] } }
    }

    /// Row n dequantized from the packed layout (for embedding lookups): out [K] = scale · q[n]
    /// (out += that when accumulating). The row's values sit in 4-byte groups 64 bytes apart.
    @inline(__always)
    public func row(_ n: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        let src = packed.base + (n / 16) * (Kp / 4) * 64 + (n % 16) * 4
        let s = scales.base[n], groups = K / 4
        // Whole groups with a fixed body (the compiler unrolls it), then the last few values.
        if accumulate {
            for g in 0..<groups {
                let q = src + 64 * g, o = out + 4 * g
                o[0] += Float(q[0]) * s; o[1] += Float(q[1]) * s; o[2] += Float(q[2]) * s; o[3] += Float(q[3]) * s
            }
        } else {
            for g in 0..<groups {
                let q = src + 64 * g, o = out + 4 * g
                o[0] = Float(q[0]) * s; o[1] = Float(q[1]) * s; o[2] = Float(q[2]) * s; o[3] = Float(q[3]) * s
            }
        }
        for k in (4 * groups)..<K {
            let v = Float(src[64 * groups + k - 4 * groups]) * s
            if accumulate { out[k] += v } else { out[k] = v }
        }
    }

    /// The weights as plain rows [N × Kp] int8 (padding zero), for oneDNN. Made on first use.
    public var plain: AlignedBuffer<Int8> {
        plainLock.lock(); defer { plainLock.unlock() }
        if let p = _plain { return p }
        let p = AlignedBuffer<Int8>(count: N * Kp), K4 = Kp / 4
        for n in 0..<N {
            let src = packed.base + (n / 16) * K4 * 64 + (n % 16) * 4
            for k in 0..<K { p.base[n * Kp + k] = src[(k / 4) * 64 + k % 4] }
        }
        _plain = p
        return p
    }
    private var _plain: AlignedBuffer<Int8>?
    private let plainLock = NSLock()

    public var bytes: Int {
        packed.count + scales.count * 4 + colsum.count * 4 + (_plain?.count ?? 0) + outlierWeights.count * 4 + outlierChannels.count * 4
    }
}

/// Activations quantized per row for the kernels, asymmetrically: row m is
///   x ≈ scale[m] · (q − zero[m]),  q ∈ [0, L],
/// over the row's range [min(x, 0), max(x, 0)] (0 exactly representable):
///   scale = (hi − lo) / L,  zero = round(−lo / scale),  q = clamp(round(x · L / (hi − lo)) + zero),
/// with L = `levels`, 255, or 127 for a kernel that multiplies 7-bit activations
/// (`Int8Kernel.activationLevels`). [M×Kp] uint8, the padding holding the zero point. An
/// all-zero row gets scale 0, zero 0.
public final class QuantizedActivations: @unchecked Sendable {
    public let capacity: Int
    public let maxK: Int
    /// Row stride of the current contents: K rounded up to a multiple of 4.
    public private(set) var Kp: Int
    public let q: AlignedBuffer<UInt8>
    public let scales: FloatBuffer
    public let zeros: AlignedBuffer<Int32>
    /// The largest code, L: 255 or 127.
    public let levels: Int

    /// Room for up to `maxRows` rows of up to `K` values, codes 0…`levels`.
    public init(maxRows: Int, K: Int, levels: Int = 255) {
        precondition(levels == 255 || levels == 127, "activation levels are 255 or 127")
        self.levels = levels
        capacity = maxRows
        maxK = (K + 3) & ~3
        Kp = maxK
        q = AlignedBuffer<UInt8>(count: maxRows * maxK)
        scales = FloatBuffer(count: maxRows)
        zeros = AlignedBuffer<Int32>(count: maxRows)
    }

    /// Floats of scratch a view for `maxRows` rows of up to `K` values takes.
    public static func scratchFloats(maxRows: Int, K: Int) -> Int {
        let qFloats = (maxRows * ((K + 3) & ~3) + 3) / 4
        return ((qFloats + 15) & ~15) + 2 * ((maxRows + 15) & ~15)
    }

    /// The same over `scratchFloats(maxRows:K:)` floats of memory owned elsewhere.
    public init(scratch: UnsafeMutablePointer<Float>, maxRows: Int, K: Int, levels: Int = 255) {
        precondition(levels == 255 || levels == 127, "activation levels are 255 or 127")
        self.levels = levels
        capacity = maxRows
        maxK = (K + 3) & ~3
        Kp = maxK
        let qFloats = ((maxRows * maxK + 3) / 4 + 15) & ~15, rows = (maxRows + 15) & ~15
        q = AlignedBuffer(borrowing: UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt8.self), count: maxRows * maxK)
        scales = FloatBuffer(borrowing: scratch + qFloats, count: maxRows)
        zeros = AlignedBuffer(borrowing: UnsafeMutableRawPointer(scratch + qFloats + rows).assumingMemoryBound(to: Int32.self), count: maxRows)
    }

    /// Quantizes x [M×K] (leading dimension ldx) on all cores, each column first multiplied
    /// by `columnScale` when given (activation smoothing). The rows run in CInt8 (AVX-512 or
    /// AVX2 where the CPU has it; the portable loop under the scalar product kernel).
    public func quantize(_ x: UnsafePointer<Float>, M: Int, K: Int, ldx: Int? = nil, columnScale: UnsafePointer<Float>? = nil) {
        precondition(M <= capacity && (K + 3) & ~3 <= maxK, "activations larger than the buffer")
        Kp = (K + 3) & ~3
        let ld = ldx ?? K, Kp = self.Kp
        let qp = SendablePointer(q.base), sp = SendablePointer(scales.base), zp = SendablePointer(zeros.base)
        let levels = Int32(self.levels), kernel = Int32(Int8Kernel.best.rawValue)
        Parallel.forEachChunk(M, minPerChunk: 16) { _, rows in
            let m = rows.lowerBound
            distill_i8_quantize_rows(kernel, x + m * ld, ld, Int32(rows.count), Int32(K), columnScale,
                                     qp.p + m * Kp, Int32(Kp), sp.p + m, zp.p + m, levels)
        }
    }
}

extension QuantizedActivations {
    /// Quantizes what `source` left over of x [M×K]: r = c ⊙ x − scale · (q − zero), per row
    /// again. A second product over r, accumulated onto the first, gives the layer
    /// activations of about 15 bits (13 from 7-bit codes) at twice the int8 cost.
    public func quantizeResidual(of x: UnsafePointer<Float>, M: Int, K: Int, ldx: Int? = nil, columnScale: UnsafePointer<Float>?,
                                 source: QuantizedActivations, scratch: UnsafeMutablePointer<Float>) {
        precondition(M <= capacity && (K + 3) & ~3 <= maxK && source.Kp == (K + 3) & ~3)
        let Kp = source.Kp
        let r = SendablePointer(scratch), q = SendablePointer(source.q.base), s = SendablePointer(source.scales.base)
        let z = SendablePointer(source.zeros.base)
        Parallel.forEachChunk(M, minPerChunk: 16) { _, rows in
            let K8 = K & ~7
            for m in rows {
                let xr = x + m * (ldx ?? K), rr = r.p + m * K, qr = q.p + m * Kp
                let sc = F8(repeating: s.p[m])
                var k = 0
                while k < K8 {
                    var v = xr.load8(k)
                    if let c = columnScale { v *= c.load8(k) }
                    // u8 → float without the generic conversion: the bits of 2²³ + u, minus 2²³ + 128.
                    let u = SIMD8<UInt32>(truncatingIfNeeded: UnsafeRawPointer(qr + k).loadUnaligned(as: SIMD8<UInt8>.self))
                    let qf = unsafeBitCast(u | 0x4B00_0000, to: F8.self) - F8(repeating: 8_388_608 + Float(z.p[m]))
                    rr.store8(v - sc * qf, k)
                    k += 8
                }
                while k < K {
                    let v = xr[k] * (columnScale?[k] ?? 1)
                    rr[k] = v - s.p[m] * Float(Int(qr[k]) - Int(z.p[m]))
                    k += 1
                }
            }
        }
        quantize(scratch, M: M, K: K)
    }
}

/// inv = L / (hi − lo), scale = (hi − lo) / L, zero = round(−lo · inv) for a range that
/// contains 0 (lo ≤ 0 ≤ hi, lo < hi), L = `levels`.
@inline(__always)
func asymmetricParameters(lo: Float, hi: Float, levels: Float) -> (inv: Float, scale: Float, zero: Int) {
    let inv = levels / (hi - lo)
    return (inv, (hi - lo) / levels, min(Int(levels), max(0, Int((-lo * inv).rounded(.toNearestOrEven)))))
}

@inline(__always)
func quantizeValue(_ v: Float, inv: Float, zero: Float, levels: Float) -> UInt8 {
    let t = v * inv + zero
    guard t > 0 else { return 0 }      // NaN lands here too
    return t < levels ? UInt8(t.rounded(.toNearestOrEven)) : UInt8(levels)
}

/// The scalar definition CInt8's quantization loops must match (for tests).
public func quantizeRowReference(_ x: [Float], levels: Int = 255) -> (q: [UInt8], scale: Float, zero: Int32) {
    let lo = min(0, x.min() ?? 0), hi = max(0, x.max() ?? 0)
    if hi == lo { return ([UInt8](repeating: 0, count: x.count), 0, 0) }
    let (inv, s, z) = asymmetricParameters(lo: lo, hi: hi, levels: Float(levels))
    return (x.map { quantizeValue($0, inv: inv, zero: Float(z), levels: Float(levels)) }, s, Int32(z))
}

/// Quantizes one row with the CInt8 loop that serves `kernel`: the portable one for `.scalar`,
/// the AVX-512 one for the 512-bit VNNI kernel and oneDNN where the CPU has AVX-512 BW, else AVX2
/// (for tests against `quantizeRowReference`).
public func quantizeRowVectorised(_ x: [Float], levels: Int = 255, kernel: Int8Kernel) -> (q: [UInt8], scale: Float, zero: Int32) {
    let Kp = (x.count + 3) & ~3
    var out = [UInt8](repeating: 0, count: Kp)
    var s: Float = 0, z: Int32 = 0
    distill_i8_quantize_rows(kernel.rawValue, x, x.count, 1, Int32(x.count), nil, &out, Int32(Kp), &s, &z, Int32(levels))
    return (Array(out.prefix(x.count)), s, z)
}

/// y [M×N] (leading dimension ldy) = dequantize(xq · Wᵀ) + bias, split across threads by rows
/// (or by column blocks when there are few rows).
/// With `accumulate`, y += dequantize(xq · Wᵀ) instead (bias ignored). Where w has outlier
/// channels, the first pass adds their fp32 products (`outliers`: x's values there [M × k]) to
/// the bias before the int8 product, in the kernels' dequantization.
public func int8Linear(_ y: UnsafeMutablePointer<Float>, ldy: Int? = nil, _ x: QuantizedActivations, M: Int,
                       _ w: PackedInt8Weights, bias: UnsafePointer<Float>?, kernel: Int8Kernel = .best,
                       accumulate: Bool = false, outliers: UnsafePointer<Float>? = nil) {
    precondition(x.levels <= kernel.activationLevels, "\(kernel) multiplies activations of at most \(kernel.activationLevels) exactly")
    let N = w.N
    let product = Int8Product(y, ld: ldy ?? N, x, w, bias: bias, accumulate: accumulate, outliers: outliers)
    if kernel == .onednn {
        if OneDNNProducts.shared.run(product, M: M) { return }
        // oneDNN refused the shape (or its products there would saturate): our fastest kernel
        // for these codes gives the same numbers.
        int8Linear(y, ldy: ldy, x, M: M, w, bias: bias, kernel: Int8Kernel.own(levels: x.levels), accumulate: accumulate, outliers: outliers)
        return
    }
    // Eight chunks a thread, taken as threads finish: a rented core the host interrupts then
    // holds up one small chunk, not half the product (MiniLM int8 at 8 × 128 on 2 vCPUs shared
    // with another job: 141 → 135 ms; neutral on a quiet machine). Chunks hold whole row tiles
    // of the kernel (rowsPerTile), so none ends in a narrower, slower tile: 6-row chunks sent
    // a third of a 1 × 128 batch's rows through the AVX2 kernel's 2-row tile. At least eight
    // tiles a chunk (32 rows for the AVX2 kernel, its row block): a 1 × 128 batch cut into 16 chunks of 8 rows ran the AVX2 kernel at
    // 62-65 GMAC/s a core against 75-77 in 32-row chunks (a Zen 3 core, walking the rows of
    // all-MiniLM-L6-v2's products).
    let rowsPerTile = kernel.rowsPerTile, k = Int32(kernel.rawValue)
    func call(m0: Int, m1: Int, n0: Int, n1: Int) {
        var a = product.arguments(m0: m0, m1: m1, n0: n0, n1: n1)
        distill_i8_gemm(k, &a)
    }
    if M >= 2 * rowsPerTile * Parallel.threads || N <= 64 {
        let tiles = (M + rowsPerTile - 1) / rowsPerTile
        Parallel.forEachChunk(tiles, minPerChunk: 8, perThread: 8) { _, range in
            call(m0: range.lowerBound * rowsPerTile, m1: min(M, range.upperBound * rowsPerTile), n0: 0, n1: N)
        }
    } else {
        let groups = (N + 47) / 48
        Parallel.forEachChunk(groups, perThread: 8) { _, range in
            call(m0: 0, m1: M, n0: range.lowerBound * 48, n1: min(N, range.upperBound * 48))
        }
    }
}

/// Tests only: `int8Linear`'s product on one thread through the loops and tiles of the VNNI
/// kernel `layout` (.avxVNNI, .avx512VLVNNI256 or .avx512VNNI) with vpdpbusd written out in
/// AVX2 (and AVX-512's vectors as two AVX2 halves), so CPUs without VNNI or AVX-512 check those
/// kernels' tiles too. False where it cannot run (no AVX2).
package func int8LinearEmulatingVNNI(_ y: UnsafeMutablePointer<Float>, _ x: QuantizedActivations, M: Int, _ w: PackedInt8Weights,
                                     bias: UnsafePointer<Float>?, layout: Int8Kernel, accumulate: Bool = false,
                                     outliers: UnsafePointer<Float>? = nil) -> Bool {
    precondition([.avxVNNI, .avx512VLVNNI256, .avx512VNNI].contains(layout), "\(layout) is not a VNNI kernel")
    let product = Int8Product(y, ld: w.N, x, w, bias: bias, accumulate: accumulate, outliers: outliers)
    var a = product.arguments(m0: 0, m1: M, n0: 0, n1: w.N)
    return distill_i8_gemm_emulated(layout.rawValue, &a) == 0
}

/// One call of `int8Linear`: y [M × N] (row stride ld) = dequantize(xq · Wᵀ) + bias, with the
/// outlier channels' activations [M × ko] where there are any.
struct Int8Product: Sendable {
    let y: SendablePointer<Float>, ld: Int
    let x: QuantizedActivations, w: PackedInt8Weights
    let bias: SendablePointer<Float>?, outliers: SendablePointer<Float>?, ko: Int
    let accumulate: Bool

    /// `int8Linear`'s arguments, checked: the accumulating pass takes no outlier channels.
    init(_ y: UnsafeMutablePointer<Float>, ld: Int, _ x: QuantizedActivations, _ w: PackedInt8Weights,
         bias: UnsafePointer<Float>?, accumulate: Bool, outliers: UnsafePointer<Float>?) {
        precondition(x.Kp == w.Kp, "activation and weight widths differ")
        ko = accumulate ? 0 : w.outlierChannels.count
        precondition(ko == 0 || outliers != nil, "the outlier channels' activations are missing")
        self.y = SendablePointer(y); self.ld = ld; self.x = x; self.w = w; self.accumulate = accumulate
        self.bias = bias.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
        self.outliers = outliers.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
    }

    /// The C kernels' arguments for the block of rows m0..<m1 and columns n0..<n1 (n0 a
    /// multiple of 16, where the packed weights' blocks start).
    func arguments(m0: Int, m1: Int, n0: Int, n1: Int) -> distill_i8_args {
        let Kp = w.Kp
        return distill_i8_args(M: Int32(m1 - m0), N: Int32(n1 - n0), Kp: Int32(Kp),
                               xq: x.q.base + m0 * Kp, xzero: x.zeros.base + m0, xs: x.scales.base + m0,
                               wp: w.packed.base + (n0 / 16) * (Kp / 4) * 64,
                               colsum: w.colsum.base + n0, ws: w.scales.base + n0,
                               bias: bias.map { UnsafePointer($0.p + n0) }, y: y.p + m0 * ld + n0, ldy: Int32(ld),
                               accumulate: accumulate ? 1 : 0, xo: outliers.map { UnsafePointer($0.p + m0 * ko) },
                               wo: w.outlierWeights.base + n0, ko: Int32(ko), ldwo: Int32(w.N))
    }
}

/// oneDNN's int8 products: int32 sums into a buffer kept between calls, then our
/// dequantization, split across threads by rows. One product at a time (a lock covers the
/// buffer from the product to the end of the dequantization).
package final class OneDNNProducts: @unchecked Sendable {
    package static let shared = OneDNNProducts()
    private let lock = NSLock()
    private var storage = AlignedBuffer<Int32>(count: 0)   // [M × N] products of the current call
    /// Products oneDNN ran (tests check the path was taken).
    private var ran = 0
    package var calls: Int { lock.withLock { ran } }

    /// `p` for rows 0..<M through oneDNN; false, with y untouched, when oneDNN cannot run the
    /// shape exactly.
    func run(_ p: Int8Product, M: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let N = p.w.N, Kp = p.w.Kp
        if storage.count < M * N { storage = AlignedBuffer<Int32>(count: M * N) }
        let products = SendablePointer(storage.base)
        guard distill_dnnl_matmul(Int32(DISTILL_DNNL_U8S8), M, N, Kp, p.x.q.base, Kp, 1, p.w.plain.base, 1, Kp, nil, products.p, N, 0) == 0 else {
            return false
        }
        Parallel.forEachChunk(M, minPerChunk: 16) { _, rows in
            var a = p.arguments(m0: rows.lowerBound, m1: rows.upperBound, n0: 0, n1: N)
            distill_i8_dequantize(&a, products.p + rows.lowerBound * N, N)
        }
        ran += 1
        return true
    }
}
