// Linear layer in PyTorch's layout (weight stored [out × in]).
//
//   inp [N×K], weight [M×K], bias [M], out [N×M]
//   out = inp · weightᵀ + bias
//
// Backward (adds):  dweight += doutᵀ · inp,  dbias += Σ_n dout,  dinp += dout · weight
// (with `overwriteInput`, dinp = dout · weight instead; dinp may then be the memory of inp,
// which is read before it is overwritten).

/// out = inp · weightᵀ (+ bias when given).
public func linearForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          N: Int, K: Int, M: Int, ldInp: Int? = nil) {
    sgemm(.no, .yes, m: N, n: M, k: K, inp, lda: ldInp ?? K, weight, ldb: K, out, ldc: M)
    if let bias { addBiasRows(out, bias: bias, N: N, C: M) }
}

public func linearBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                           dbias: UnsafeMutablePointer<Float>?,
                           dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                           weight: UnsafePointer<Float>, N: Int, K: Int, M: Int, overwriteInput: Bool = false) {
    sgemm(.yes, .no, m: M, n: K, k: N, dout, lda: M, inp, ldb: K, beta: 1, dweight, ldc: K)
    if let dbias { addColumnSums(dbias, dout, N: N, C: M) }
    if let dinp { sgemm(.no, .no, m: N, n: K, k: M, dout, lda: M, weight, ldb: K, beta: overwriteInput ? 0 : 1, dinp, ldc: K) }
}
