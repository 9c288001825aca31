import CBLAS

public enum LinearAlgebraError: Error, CustomStringConvertible, Equatable {
    case svdFailed(info: Int32)
    public var description: String { "singular value decomposition failed (LAPACK sgesdd info \(info))" }
    var info: Int32 { if case let .svdFailed(i) = self { return i }; return 0 }
}

/// Truncated SVD of a row-major matrix a [M×N]: the best rank-k approximation
///   a ≈ u · diag(s) · vᵀ,   u [M×k], s [k], vᵀ [k×N]  (row-major)
/// computed with LAPACK's sgesdd (divide and conquer) from OpenBLAS.
public func truncatedSVD(_ a: UnsafePointer<Float>, M: Int, N: Int, k: Int) throws -> (u: [Float], s: [Float], vt: [Float]) {
    precondition(k > 0 && k <= min(M, N))
    // Row-major a [M×N] is column-major aᵀ [N×M]: decompose that, then transpose the factors.
    var m = Int32(N), n = Int32(M)
    let mn = Int(min(m, n))
    var lda = m, ldu = m, ldvt = Int32(mn)
    var work = [Float](repeating: 0, count: 1)
    var iwork = [Int32](repeating: 0, count: 8 * mn)
    var s = [Float](repeating: 0, count: mn)
    var uc = [Float](repeating: 0, count: Int(m) * mn)     // column-major [N×mn]
    var vtc = [Float](repeating: 0, count: mn * Int(n))    // column-major [mn×M]
    var copy = [Float](UnsafeBufferPointer(start: a, count: M * N))
    var info: Int32 = 0
    var lwork: Int32 = -1
    var jobz = Int8(UInt8(ascii: "S"))
    sgesdd_(&jobz, &m, &n, &copy, &lda, &s, &uc, &ldu, &vtc, &ldvt, &work, &lwork, &iwork, &info)
    if info != 0 { throw LinearAlgebraError.svdFailed(info: info) }
    lwork = Int32(work[0])
    work = [Float](repeating: 0, count: Int(lwork))
    sgesdd_(&jobz, &m, &n, &copy, &lda, &s, &uc, &ldu, &vtc, &ldvt, &work, &lwork, &iwork, &info)
    if info != 0 { throw LinearAlgebraError.svdFailed(info: info) }
    // aᵀ = Uc Σ Vtcᵀ ⇒ a = Vtcᵀ Σ Ucᵀ: u = Vtcᵀ [M×k], vᵀ = Ucᵀ [k×N].
    var u = [Float](repeating: 0, count: M * k), vt = [Float](repeating: 0, count: k * N)
    for i in 0..<M { for e in 0..<k { u[i * k + e] = vtc[e + i * mn] } }
    for e in 0..<k { for j in 0..<N { vt[e * N + j] = uc[j + e * Int(m)] } }
    return (u, Array(s.prefix(k)), vt)
}
