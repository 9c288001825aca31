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
        for i in r { o.p[i] = roundedToBF16(x[i]) }
    }
}

/// Rows of a strided matrix rounded to bf16 into a packed one: out [N × K] from x [N × K] (ld).
public func roundRowsToBF16(_ x: UnsafePointer<Float>, ld: Int, N: Int, K: Int, into out: UnsafeMutablePointer<Float>) {
    if ld == K { roundToBF16(x, count: N * K, into: out); return }
    let o = SendablePointer(out)
    Parallel.forEachChunk(N, minPerChunk: 16) { _, rows in
        for n in rows { for k in 0..<K { o.p[n * K + k] = roundedToBF16(x[n * ld + k]) } }
    }
}

/// A matrix in bf16: weights rounded to bf16 once (and again by `refresh()` after each
/// optimizer step when made from trainable fp32 master weights), operands rounded to bf16 as
/// the products run, fp32 accumulation. Trainable: gradients flow to the fp32 master's slots.
public final class BF16Matrix: WeightMatrix {
    public let rows: Int, cols: Int
    /// The weights rounded to bf16, held as floats for the fp32 product path [rows × cols].
    let rounded: FloatBuffer
    /// The fp32 weights this is a copy of (nil: a fixed copy).
    let master: FP32Matrix?
    public var format: WeightFormat { .bf16 }
    public var bytes: Int { rows * cols * 2 }
    public var trainable: Bool { master != nil }
    public var implementation: String { "" }

    /// A copy of `master`'s weights, refreshed by `refresh()`.
    public init(master: FP32Matrix) {
        rows = master.rows; cols = master.cols; self.master = master
        rounded = FloatBuffer(count: rows * cols)
        refresh()
    }

    public func refresh() {
        guard let master else { return }
        roundToBF16(master.base, count: rows * cols, into: rounded.base)
    }

    public func scratchFloats(maxRows: Int) -> Int { maxRows * cols }
    public func backwardScratchFloats(maxRows: Int) -> Int { maxRows * (rows + cols) }

    public func forward(_ out: UnsafeMutablePointer<Float>, ldOut: Int, _ inp: UnsafePointer<Float>, ldInp: Int, N: Int,
                        bias: UnsafePointer<Float>?, scratch: UnsafeMutablePointer<Float>) {
        roundRowsToBF16(inp, ld: ldInp, N: N, K: cols, into: scratch)
        sgemm(.no, .yes, m: N, n: rows, k: cols, scratch, lda: cols, rounded.base, ldb: cols, out, ldc: ldOut)
        if let bias { addBiasRows(out, bias: bias, N: N, C: rows, ld: ldOut) }
    }

    public func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, N: Int, overwriteInput: Bool,
                         scratch: UnsafeMutablePointer<Float>) {
        let d16 = scratch, x16 = scratch + N * rows
        roundToBF16(dout, count: N * rows, into: d16)
        roundToBF16(inp, count: N * cols, into: x16)
        // dweight += dout16ᵀ · x16 (fp32 accumulation), dbias from the fp32 gradient.
        sgemm(.yes, .no, m: rows, n: cols, k: N, d16, lda: rows, x16, ldb: cols, beta: 1, dweight, ldc: cols)
        if let dbias { addColumnSums(dbias, dout, N: N, C: rows) }
        if let dinp {
            sgemm(.no, .no, m: N, n: cols, k: rows, d16, lda: rows, rounded.base, ldb: cols, beta: overwriteInput ? 0 : 1, dinp, ldc: cols)
        }
    }

    public func gatherRows(_ ids: UnsafePointer<Int32>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        // Lookups read the fp32 master where there is one (autocast leaves embeddings in fp32).
        if let master { master.gatherRows(ids, count: count, into: out, accumulate: accumulate); return }
        let o = SendablePointer(out), w = SendablePointer(rounded.base), C = cols
        Parallel.forEachChunk(count, minPerChunk: 64) { _, range in
            for i in range {
                let src = w.p + Int(ids[i]) * C, dst = o.p + i * C
                if accumulate { for c in 0..<C { dst[c] += src[c] } } else { dst.update(from: src, count: C) }
            }
        }
    }
}
