import Foundation
import CBLAS
import CDNNL

/// The library that runs the large matrix products: oneDNN where it is installed (loaded at run
/// time; it chooses AVX-512, AMX or AVX2 kernels by CPUID), OpenBLAS otherwise or when
/// DISTILL_BACKEND=openblas. Small products and those inside our own parallel loops (one
/// attention head each) always run on OpenBLAS, single-threaded.
public enum GEMMBackend: String, Sendable, CaseIterable {
    case openblas, onednn

    public static let current: GEMMBackend = {
        if ProcessInfo.processInfo.environment["DISTILL_BACKEND"] == "openblas" { return .openblas }
        return OneDNN.available ? .onednn : .openblas
    }()

    public var name: String { rawValue }
}

/// oneDNN, when installed (see CDNNL).
public enum OneDNN {
    public static var available: Bool { distill_dnnl_load() != 0 }
    /// "oneDNN 2.6.3, ISA avx2", or why it is not used.
    public static var status: String { String(cString: distill_dnnl_status()) }
    /// Why it is or is not used, for code that acts on it.
    public enum State: Sendable, Equatable {
        case loaded, notInstalled, disabled, compiledOut, unusable
    }
    public static var state: State {
        switch Int(distill_dnnl_state()) {
        case Int(DISTILL_DNNL_STATE_LOADED): return .loaded
        case Int(DISTILL_DNNL_STATE_NOT_INSTALLED): return .notInstalled
        case Int(DISTILL_DNNL_STATE_DISABLED): return .disabled
        case Int(DISTILL_DNNL_STATE_COMPILED_OUT): return .compiledOut
        default: return .unusable
        }
    }
    /// bf16 × bf16 → fp32 products run on optimised kernels (AVX512-BF16, AMX). Not on
    /// AVX-512 without BF16 (Skylake to Ice Lake), where oneDNN would convert the operands and
    /// multiply in fp32: rounded fp32 operands give the same products there at fp32 speed.
    public static let bf16: Bool = GEMMBackend.current == .onednn && distill_dnnl_bf16_isa() != 0
        && distill_dnnl_supports(Int32(DISTILL_DNNL_BF16)) != 0
    /// oneDNN runs AMX tile products (Intel Sapphire Rapids and later).
    public static let amx: Bool = GEMMBackend.current == .onednn && distill_dnnl_amx() != 0
    /// u8 × s8 → s32 products run exactly (VNNI or AMX; AVX2 alone saturates).
    public static let int8: Bool = GEMMBackend.current == .onednn && distill_dnnl_supports(Int32(DISTILL_DNNL_U8S8)) != 0
}

/// Whether a matrix operand is used as stored or transposed.
public enum Transpose: Sendable {
    case no, yes
    @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .no ? CblasNoTrans : CblasTrans }
}

/// The one matrix product of Distillery, row-major:
///   C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C
/// op(A) is A (stored M×K, leading dimension lda ≥ K) or Aᵀ (stored K×M, lda ≥ M); likewise B.
///
/// OpenBLAS runs single-threaded (see `Parallel`); this wrapper splits large products into
/// bands of C, one per thread, so that one pool of threads does all the work and no BLAS
/// threads spin while element-wise kernels run. Each thread packs the whole of the operand it
/// does not split: row bands (every thread packs B, the weights) unless C is much wider than
/// tall (the vocabulary projection of a chunk of rows, where B is the 30,522-row embedding
/// table), then column bands. The split depends only on the shape
/// and the thread count, so results are reproducible.
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
    let threads = Parallel.threads
    let flops = 2 * m * n * k
    if GEMMBackend.current == .onednn, flops >= 4_000_000, !Parallel.isInsideParallelRegion,
       distill_dnnl_sgemm(transA == .no ? 78 : 84, transB == .no ? 78 : 84, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0 {
        return
    }
    if threads == 1 || flops < 4_000_000 || Parallel.isInsideParallelRegion {
        sgemmSerial(transA, transB, m: m, n: n, k: k, alpha: alpha, a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc)
        return
    }
    let cp = SendablePointer(c)
    if 4 * m >= n {
        // Row bands: rows i..<j of C need rows i..<j of op(A).
        Parallel.forEachChunk(m, minPerChunk: 8) { _, r in
            let aOff = transA == .no ? r.lowerBound * lda : r.lowerBound
            sgemmSerial(transA, transB, m: r.count, n: n, k: k, alpha: alpha, a + aOff, lda: lda, b, ldb: ldb,
                        beta: beta, cp.p + r.lowerBound * ldc, ldc: ldc)
        }
    } else {
        // Column bands: columns i..<j of C need columns i..<j of op(B).
        Parallel.forEachChunk(n, minPerChunk: 16) { _, r in
            let bOff = transB == .no ? r.lowerBound : r.lowerBound * ldb
            sgemmSerial(transA, transB, m: m, n: r.count, k: k, alpha: alpha, a, lda: lda, b + bOff, ldb: ldb,
                        beta: beta, cp.p + r.lowerBound, ldc: ldc)
        }
    }
}

@inline(__always)
func sgemmSerial(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int, alpha: Float,
                 _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                 beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Float64 matrix product, row-major, same convention as `sgemm`: C = alpha · op(A) · op(B) + beta · C.
/// For the small problems that need double precision (the probe's logistic regression); it
/// runs on the calling thread, so results do not depend on the thread count.
public func dgemm(_ transA: Transpose, _ transB: Transpose,
                  m: Int, n: Int, k: Int,
                  alpha: Double = 1,
                  _ a: UnsafePointer<Double>, lda: Int,
                  _ b: UnsafePointer<Double>, ldb: Int,
                  beta: Double = 0,
                  _ c: UnsafeMutablePointer<Double>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    cblas_dgemm(CblasRowMajor, transA.cblas, transB.cblas,
                Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
