// Weight matrices in the format they are stored and multiplied in.
//
// A model's layer schedule is written once; every linear layer and embedding table in it is a
// `WeightMatrix`, which knows how to multiply (and, if trainable, backpropagate) in its own
// format. fp32 matrices are views into the model's parameter buffer; other formats (bf16
// copies, packed int8 with scales) are made when a model is loaded or converted.
//
//   W [rows × cols] in PyTorch's layout (out features × in features)
//   forward:   out [N × rows] = inp [N × cols] · Wᵀ (+ bias [rows])
//   backward:  dweight [rows × cols] += doutᵀ · inp,  dbias += Σ_n dout,  dinp (+)= dout · W
//   gather:    out [n × cols] (+)= W[ids[i], :]        (embedding tables)

/// How a matrix is stored and multiplied.
public enum WeightFormat: String, Codable, Sendable, CaseIterable {
    case fp32, bf16, int8
}

public protocol WeightMatrix: AnyObject {
    var rows: Int { get }
    var cols: Int { get }
    var format: WeightFormat { get }
    /// Bytes of weight data held (for reports).
    var bytes: Int { get }
    /// Whether `backward` is available (training needs fp32 or bf16 operands).
    var trainable: Bool { get }
    /// What multiplies it ("openblas", "avx2", "onednn avx512_core_amx", …), for reports.
    var implementation: String { get }
    /// Floats of scratch `forward` needs for up to `maxRows` input rows.
    func scratchFloats(maxRows: Int) -> Int
    /// Floats of scratch `backward` needs for up to `maxRows` rows.
    func backwardScratchFloats(maxRows: Int) -> Int
    /// out [N × rows] (leading dimension ldOut) = inp [N × cols] (leading dimension ldInp) · Wᵀ + bias.
    func forward(_ out: UnsafeMutablePointer<Float>, ldOut: Int, _ inp: UnsafePointer<Float>, ldInp: Int, N: Int,
                 bias: UnsafePointer<Float>?, scratch: UnsafeMutablePointer<Float>)
    /// dweight += doutᵀ · inp, dbias += column sums of dout, and dinp += dout · W (dinp = dout · W
    /// with `overwriteInput`, where dinp may be inp's own memory).   dout [N × rows], inp [N × cols]
    func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                  dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, N: Int, overwriteInput: Bool,
                  scratch: UnsafeMutablePointer<Float>)
    /// out[i] = W[ids[i]] (or += with `accumulate`), out [count × cols]: embedding lookups.
    func gatherRows(_ ids: UnsafePointer<Int32>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool)
    /// Refreshes a copy from the fp32 master weights it was made from (bf16 training casts once
    /// per optimizer step); a no-op for views and fixed formats.
    func refresh()
}

extension WeightMatrix {
    public var trainable: Bool { false }
    public func backwardScratchFloats(maxRows: Int) -> Int { 0 }
    /// "int8 (avx2)": the format and what multiplies it.
    public var precision: String { implementation.isEmpty ? format.rawValue : "\(format.rawValue) (\(implementation))" }
    public func refresh() {}
    public func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, N: Int, overwriteInput: Bool,
                         scratch: UnsafeMutablePointer<Float>) {
        preconditionFailure("\(format.rawValue) weights are not trainable; callers check `trainable` first")
    }
}

/// An fp32 matrix: a view of `rows × cols` floats of a buffer (a model's parameters).
public final class FP32Matrix: WeightMatrix {
    public let rows: Int, cols: Int
    let storage: FloatBuffer
    let offset: Int
    public var format: WeightFormat { .fp32 }
    public var bytes: Int { rows * cols * 4 }
    public var trainable: Bool { true }
    /// The backend is reported once for the machine (`MachineReport`), not per matrix.
    public var implementation: String { "" }

    public init(_ storage: FloatBuffer, offset: Int, rows: Int, cols: Int) {
        precondition(offset >= 0 && offset + rows * cols <= storage.count, "FP32Matrix outside its buffer")
        self.storage = storage; self.offset = offset; self.rows = rows; self.cols = cols
    }

    /// W [rows × cols]
    public var base: UnsafeMutablePointer<Float> { storage.base + offset }

    public func scratchFloats(maxRows: Int) -> Int { 0 }

    public func forward(_ out: UnsafeMutablePointer<Float>, ldOut: Int, _ inp: UnsafePointer<Float>, ldInp: Int, N: Int,
                        bias: UnsafePointer<Float>?, scratch: UnsafeMutablePointer<Float>) {
        sgemm(.no, .yes, m: N, n: rows, k: cols, inp, lda: ldInp, base, ldb: cols, out, ldc: ldOut)
        if let bias { addBiasRows(out, bias: bias, N: N, C: rows, ld: ldOut) }
    }

    public func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, N: Int, overwriteInput: Bool,
                         scratch: UnsafeMutablePointer<Float>) {
        linearBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp, weight: base,
                       N: N, K: cols, M: rows, overwriteInput: overwriteInput)
    }

    public func gatherRows(_ ids: UnsafePointer<Int32>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let o = SendablePointer(out), w = SendablePointer(base), C = cols
        Parallel.forEachChunk(count, minPerChunk: 64) { _, range in
            for i in range {
                let src = w.p + Int(ids[i]) * C, dst = o.p + i * C
                if accumulate { for c in 0..<C { dst[c] += src[c] } } else { dst.update(from: src, count: C) }
            }
        }
    }
}
