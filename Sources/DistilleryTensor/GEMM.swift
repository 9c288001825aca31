import CBLAS

/// Whether a matrix operand is used as stored or transposed.
public enum Transpose: Sendable {
    case no, yes
    @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .no ? CblasNoTrans : CblasTrans }
}

/// The one matrix product of Distillery, row-major:
///   C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C
/// op(A) is A (stored M×K, leading dimension lda ≥ K) or Aᵀ (stored K×M, lda ≥ M); likewise B.
/// Every matrix product in the package goes through here, so threading and accounting stay in
/// one place.
@inlinable
public func sgemm(_ transA: Transpose, _ transB: Transpose,
                  m: Int, n: Int, k: Int,
                  alpha: Float = 1,
                  _ a: UnsafePointer<Float>, lda: Int,
                  _ b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0,
                  _ c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C·beta; make the k = 0 case explicit rather than rely on it.
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
