import CKernels
import CDNNL
import Synchronization

// bfloat16: the top 16 bits of an IEEE float (8-bit exponent, 7-bit mantissa).
//
//   bf16(x) = round-to-nearest-even of x to 7 mantissa bits (NaN stays NaN, quietened)
//
// bf16 matrices hold weights rounded so; products take bf16 operands and accumulate in fp32,
// as PyTorch's autocast does. Where the backend has no bf16 product (OpenBLAS, or a CPU without
// AVX512-BF16 / AMX), the same numbers are obtained by rounding the operands to bf16 and
// multiplying them in fp32: every bf16 value is an fp32 value and every product of two is exact
// in fp32, so only the order of the fp32 additions can differ.

/// x rounded to bf16, as its 16 bits.
@inline(__always)
public func bf16Bits(_ x: Float) -> UInt16 {
    let u = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
    let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
}

@inline(__always)
public func float(bf16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// x rounded to bf16 precision, as a float.
@inline(__always)
public func roundedToBF16(_ x: Float) -> Float { float(bf16: bf16Bits(x)) }

/// out[i] = bf16(x[i]) over `count` floats (out may be x).
public func roundToBF16(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
    let o = SendablePointer(out)
    Parallel.forEachChunk(count, minPerChunk: 16384) { _, r in
        distill_round_bf16(x + r.lowerBound, o.p + r.lowerBound, r.count)
    }
}

/// Rows of a strided matrix rounded to bf16 into a packed one: out [N × K] from x [N × K] (ld).
public func roundRowsToBF16(_ x: UnsafePointer<Float>, ld: Int, N: Int, K: Int, into out: UnsafeMutablePointer<Float>) {
    if ld == K { roundToBF16(x, count: N * K, into: out); return }
    let o = SendablePointer(out)
    Parallel.forEachChunk(N, minPerChunk: 16) { _, rows in
        for n in rows { distill_round_bf16(x + n * ld, o.p + n * K, K) }
    }
}

/// bf16 bits of `count` floats: out[i] = bf16(x[i]).
public func bf16Bits(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt16>) {
    let o = SendablePointer(out)
    Parallel.forEachChunk(count, minPerChunk: 16384) { _, r in
        distill_bf16_bits(x + r.lowerBound, o.p + r.lowerBound, r.count)
    }
}

/// bf16 bits of the rows of a strided matrix, packed: out [N × K] from x [N × K] (ld).
public func bf16BitsRows(_ x: UnsafePointer<Float>, ld: Int, N: Int, K: Int, into out: UnsafeMutablePointer<UInt16>) {
    if ld == K { bf16Bits(x, count: N * K, into: out); return }
    let o = SendablePointer(out)
    Parallel.forEachChunk(N, minPerChunk: 16) { _, rows in
        for n in rows { distill_bf16_bits(x + n * ld, o.p + n * K, K) }
    }
}

/// A matrix in bf16: weights rounded to bf16 once (and again by `refresh()` after each
/// optimizer step when made from trainable fp32 master weights), operands rounded to bf16 as
/// the products run, fp32 accumulation. Trainable: gradients flow to the fp32 master's slots.
///
/// With oneDNN's bf16 kernels (AMX, AVX512-BF16) the operands are bf16 in memory and oneDNN
/// multiplies them; elsewhere they are floats holding bf16 values, multiplied in fp32 (the same
/// products, exact, summed in another order).
public final class BF16Matrix: WeightMatrix {
    public let rows: Int, cols: Int
    /// How the products run: operands rounded to bf16 and multiplied in fp32 by `sgemm`; bf16
    /// operands through oneDNN's bf16 kernels; or rounded fp32 operands through oneDNN's fp32
    /// matmul (the bf16 call sites, for tests on CPUs without bf16 kernels).
    package enum Path: Sendable { case rounded, onednnBF16, onednnF32 }
    let path: Path
    /// The weights rounded to bf16, as floats [rows × cols] (rounded and onednnF32 paths).
    var rounded: FloatBuffer?
    /// The weights as bf16 bits [rows × cols] (onednnBF16 path).
    let bits: AlignedBuffer<UInt16>?
    /// The fp32 weights this is a copy of.
    let master: FP32Matrix
    public var format: WeightFormat { .bf16 }
    public var bytes: Int { rows * cols * 2 }
    public var trainable: Bool { true }
    public var implementation: String { path == .onednnBF16 ? "onednn" : "" }

    /// Tests set the path of matrices made from then on: `.rounded` for the portable reference
    /// whatever the CPU, a oneDNN path to check its call sites against it. nil: the fastest here.
    package nonisolated(unsafe) static var testPath: Path? = nil
    /// Products oneDNN ran, and products it refused (then run by `sgemm`), over all matrices.
    package static let oneDNNRan = Atomic<Int>(0), oneDNNRefused = Atomic<Int>(0)

    /// A copy of `master`'s weights, refreshed by `refresh()`.
    public init(master: FP32Matrix) {
        rows = master.rows; cols = master.cols; self.master = master
        path = Self.testPath ?? (OneDNN.bf16 ? .onednnBF16 : .rounded)
        bits = path == .onednnBF16 ? AlignedBuffer<UInt16>(count: rows * cols) : nil
        rounded = path == .onednnBF16 ? nil : FloatBuffer(count: rows * cols)
        refresh()
    }

    public func refresh() {
        if let bits { bf16Bits(master.base, count: rows * cols, into: bits.base) }
        if let rounded { roundToBF16(master.base, count: rows * cols, into: rounded.base) }
    }

    /// Operands in scratch: floats for the fp32 paths, bf16 bits (half the floats) otherwise.
    public func scratchFloats(maxRows: Int) -> Int { maxRows * cols }
    public func backwardScratchFloats(maxRows: Int) -> Int { maxRows * (rows + cols) }

    /// The weights as floats, made from the bits if oneDNN ever refuses a product.
    func roundedWeights() -> UnsafeMutablePointer<Float> {
        if let rounded { return rounded.base }
        let r = FloatBuffer(count: rows * cols)
        roundToBF16(master.base, count: rows * cols, into: r.base)
        rounded = r
        return r.base
    }

    /// C [M × N] (ldc) = A · B (+ bias [N]) (+ C) through oneDNN, A logically [M × K] with
    /// strides (am, ak), B logically [K × N] with strides (bk, bn), operands already bf16 (bits or
    /// rounded floats). The bias is added to each fp32 sum, as `addBiasRows` would.
    func onednn(_ M: Int, _ N: Int, _ K: Int, _ a: UnsafeRawPointer, _ am: Int, _ ak: Int, _ b: UnsafeRawPointer, _ bk: Int, _ bn: Int,
                bias: UnsafePointer<Float>? = nil, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, accumulate: Bool) -> Bool {
        let types = path == .onednnBF16 ? Int32(DISTILL_DNNL_BF16) : Int32(DISTILL_DNNL_F32)
        let ran = distill_dnnl_matmul(types, M, N, K, a, am, ak, b, bk, bn, bias, c, ldc, accumulate ? 1 : 0) == 0
        if M * N * K > 0 {   // an empty product is not a refusal (the shim declines it)
            if ran { Self.oneDNNRan.add(1, ordering: .relaxed) } else { Self.oneDNNRefused.add(1, ordering: .relaxed) }
        }
        return ran
    }

    public func forward(_ out: UnsafeMutablePointer<Float>, ldOut: Int, _ inp: UnsafePointer<Float>, ldInp: Int, N: Int,
                        bias: UnsafePointer<Float>?, scratch: UnsafeMutablePointer<Float>) {
        var done = false
        switch path {
        case .onednnBF16:
            let x16 = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt16.self)
            bf16BitsRows(inp, ld: ldInp, N: N, K: cols, into: x16)
            done = onednn(N, rows, cols, x16, cols, 1, bits!.base, 1, cols, bias: bias, out, ldOut, accumulate: false)
            if !done { roundRowsToBF16(inp, ld: ldInp, N: N, K: cols, into: scratch) }
        case .onednnF32:
            roundRowsToBF16(inp, ld: ldInp, N: N, K: cols, into: scratch)
            done = onednn(N, rows, cols, scratch, cols, 1, rounded!.base, 1, cols, bias: bias, out, ldOut, accumulate: false)
        case .rounded:
            roundRowsToBF16(inp, ld: ldInp, N: N, K: cols, into: scratch)
        }
        // oneDNN added the bias in the product; the fallback adds it after.
        if done { return }
        sgemm(.no, .yes, m: N, n: rows, k: cols, scratch, lda: cols, roundedWeights(), ldb: cols, out, ldc: ldOut)
        if let bias { addBiasRows(out, bias: bias, N: N, C: rows, ld: ldOut) }
    }

    public func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, N: Int, overwriteInput: Bool,
                         scratch: UnsafeMutablePointer<Float>) {
        if let dbias { addColumnSums(dbias, dout, N: N, C: rows) }
        // Operands rounded to bf16: bits for oneDNN's bf16 kernels, floats otherwise.
        let d: UnsafeRawPointer, x: UnsafeRawPointer, w: UnsafeRawPointer
        if path == .onednnBF16 {
            let d16 = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt16.self), x16 = d16 + N * rows
            bf16Bits(dout, count: N * rows, into: d16)
            bf16Bits(inp, count: N * cols, into: x16)
            (d, x, w) = (UnsafeRawPointer(d16), UnsafeRawPointer(x16), UnsafeRawPointer(bits!.base))
        } else {
            roundToBF16(dout, count: N * rows, into: scratch)
            roundToBF16(inp, count: N * cols, into: scratch + N * rows)
            (d, x, w) = (UnsafeRawPointer(scratch), UnsafeRawPointer(scratch + N * rows), UnsafeRawPointer(roundedWeights()))
        }
        // dweight [rows × cols] += doutᵀ · x: doutᵀ is [rows × N] with strides (1, rows);
        // dinp [N × cols] (+)= dout · W, W [rows × cols] with strides (cols, 1).
        let native = path != .rounded
        if !(native && onednn(rows, cols, N, d, 1, rows, x, cols, 1, dweight, cols, accumulate: true)) {
            withRoundedOperands(d, x, N: N) { d, x in
                sgemm(.yes, .no, m: rows, n: cols, k: N, d, lda: rows, x, ldb: cols, beta: 1, dweight, ldc: cols)
            }
        }
        guard let dinp else { return }
        if !(native && onednn(N, cols, rows, d, rows, 1, w, cols, 1, dinp, cols, accumulate: !overwriteInput)) {
            withRoundedOperands(d, x, N: N) { d, _ in
                sgemm(.no, .no, m: N, n: cols, k: rows, d, lda: rows, roundedWeights(), ldb: cols, beta: overwriteInput ? 0 : 1, dinp, ldc: cols)
            }
        }
    }

    /// Calls `body` with the operands as floats: as they are on the fp32 paths, converted from
    /// bf16 bits (into temporary memory: only when oneDNN refused a product) otherwise.
    func withRoundedOperands(_ d: UnsafeRawPointer, _ x: UnsafeRawPointer, N: Int,
                             _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> Void) {
        guard path == .onednnBF16 else {
            body(d.assumingMemoryBound(to: Float.self), x.assumingMemoryBound(to: Float.self))
            return
        }
        let df = FloatBuffer(count: N * rows), xf = FloatBuffer(count: N * cols)
        let d16 = d.assumingMemoryBound(to: UInt16.self), x16 = x.assumingMemoryBound(to: UInt16.self)
        for i in 0..<(N * rows) { df.base[i] = float(bf16: d16[i]) }
        for i in 0..<(N * cols) { xf.base[i] = float(bf16: x16[i]) }
        body(df.base, xf.base)
    }

    public func gatherRows(_ ids: UnsafePointer<Int32>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        // Lookups read the fp32 master (autocast leaves embeddings in fp32).
        master.gatherRows(ids, count: count, into: out, accumulate: accumulate)
    }
}
