import Foundation
import XCTest
import CKernels
import DistilleryTensor

final class FastMathTests: XCTestCase {
    override func tearDown() { SIMDKernels.forceGeneric(false) }

    /// Bounds the vectorised exp, erf and tanh against Double references over the ranges the
    /// kernels feed them, in every compiled copy the CPU runs, and checks the copies agree bit for bit.
    func testAgainstDoubleReferences() {
        let xs = stride(from: -20.0, through: 20.0, by: 0.001).map { Float($0) }
        var results: [[[Float]]] = []
        for level in SIMDKernels.levels {
            SIMDKernels.force(level)
            var out: [[Float]] = []
            for f in [distill_exp, distill_erf, distill_tanh] {
                var y = [Float](repeating: 0, count: xs.count)
                f(xs, &y, xs.count)
                out.append(y)
            }
            results.append(out)
            var maxExpRel = 0.0, maxErfAbs = 0.0, maxErfRel = 0.0, maxTanhAbs = 0.0
            for (i, f) in xs.enumerated() {
                let re = Foundation.exp(Double(f))
                maxExpRel = max(maxExpRel, abs(Double(out[0][i]) - re) / re)
                let re2 = Foundation.erf(Double(f))
                maxErfAbs = max(maxErfAbs, abs(Double(out[1][i]) - re2))
                if abs(f) > 1e-6 { maxErfRel = max(maxErfRel, abs(Double(out[1][i]) - re2) / abs(re2)) }
                maxTanhAbs = max(maxTanhAbs, abs(Double(out[2][i]) - Foundation.tanh(Double(f))))
            }
            XCTAssertLessThan(maxExpRel, 3e-7)
            XCTAssertLessThan(maxErfAbs, 4e-7)   // about 5 ulp of 1
            XCTAssertLessThan(maxErfRel, 4e-7)
            XCTAssertLessThan(maxTanhAbs, 3e-7)
            print("\(SIMDKernels.name): exp rel \(maxExpRel) erf abs \(maxErfAbs) rel \(maxErfRel) tanh abs \(maxTanhAbs)")
            var maxDoubleRel = 0.0
            let xd = stride(from: -700.0, through: 700.0, by: 0.037).map { $0 }
            var yd = [Double](repeating: 0, count: xd.count)
            distill_exp_double(xd, &yd, xd.count)
            for (i, x) in xd.enumerated() { let r = Foundation.exp(x); maxDoubleRel = max(maxDoubleRel, abs(yd[i] - r) / r) }
            XCTAssertLessThan(maxDoubleRel, 1e-15)
            var edge: [Float] = [-200, 0, .nan, 100]
            var e = [Float](repeating: 1, count: 4)
            distill_exp(&edge, &e, 4)
            XCTAssertEqual(e[0], 0)
            XCTAssertEqual(e[1], 1)
            XCTAssertTrue(e[2].isNaN, "NaN propagates")
            XCTAssertTrue(e[3].isFinite)
        }
        for (level, r) in results.enumerated().dropFirst() { XCTAssertEqual(r, results[0], "copy \(level) differs from the generic one") }
    }

    /// The per-head attention product against a Double reference (tails in every direction,
    /// strided operands, a stored as is or transposed, accumulate or not), every copy the CPU runs
    /// bit for bit, and the padding between rows of the output left alone. The
    /// transposition and the packing copy exactly.
    func testSmallProductAgainstDouble() {
        defer { SIMDKernels.forceGeneric(false) }
        var rng = SplitMix64(seed: 11)
        func uniform() -> Float { Float(rng.next() % 2_000_001) / 1_000_000 - 1 }
        // N = 56 and 61 reach the 32-, 16- and 8-column tiles and the scalar tail of the AVX-512 copy.
        let shapes = [(128, 128, 32), (128, 32, 128), (7, 13, 5), (6, 16, 1), (1, 1, 1), (13, 37, 64), (5, 8, 9), (11, 24, 3),
                      (9, 56, 7), (8, 61, 33)]
        // transposedA: a stored as [K×M] (distill_small_gemm_at), element (i, k) at a[k·lda + i].
        for (M, N, K) in shapes {
            for (accumulate, transposedA) in [(false, false), (true, false), (false, true), (true, true)] {
                let lda = (transposedA ? M : K) + 3, ldb = N + 5, ldc = N + 2, scale: Float = 0.17
                let a = (0..<((transposedA ? K : M) * lda)).map { _ in uniform() }, b = (0..<(K * ldb)).map { _ in uniform() }
                func aAt(_ i: Int, _ k: Int) -> Float { transposedA ? a[k * lda + i] : a[i * lda + k] }
                let c0 = (0..<(M * ldc)).map { _ in uniform() }
                var copies: [[Float]] = []
                for level in SIMDKernels.levels.reversed() {
                    SIMDKernels.force(level)
                    var c = c0
                    if transposedA {
                        distill_small_gemm_at(&c, ldc, a, lda, b, ldb, M, N, K, scale, accumulate ? 1 : 0)
                    } else {
                        distill_small_gemm(&c, ldc, a, lda, b, ldb, M, N, K, scale, accumulate ? 1 : 0)
                    }
                    copies.append(c)
                }
                SIMDKernels.forceGeneric(false)
                for copy in copies.dropFirst() {
                    XCTAssertEqual(copy, copies[0], "the copies differ at \(M)×\(N)×\(K), transposed a: \(transposedA)")
                }
                let c = copies[0]
                for i in 0..<M {
                    for j in 0..<ldc {
                        let got = c[i * ldc + j]
                        if j >= N { XCTAssertEqual(got, c0[i * ldc + j], "padding written at \(i),\(j)"); continue }
                        var sum = 0.0, magnitude = 0.0
                        for k in 0..<K {
                            let p = Double(aAt(i, k)) * Double(b[k * ldb + j])
                            sum += p; magnitude += abs(p)
                        }
                        let add = accumulate ? Double(c0[i * ldc + j]) : 0
                        let want = Double(scale) * sum + add
                        let bound = Double(K + 3) * 6e-8 * (Double(scale) * magnitude + abs(add)) + 1e-30
                        XCTAssertLessThanOrEqual(abs(Double(got) - want), bound, "\(M)×\(N)×\(K) at \(i),\(j), transposed a: \(transposedA)")
                    }
                }
            }
        }
        let (N, K, ld) = (19, 7, 10)
        let src = (0..<(N * ld)).map { Float($0) }
        for level in SIMDKernels.levels {
            SIMDKernels.force(level)
            // Transposing K = 7, 21 and 32 columns (a head of all-MiniLM-L6-v2), row strides wider
            // than K; N = 19 leaves rows past the last group of eight. Every element distinct,
            // nothing written past the block.
            for (Kt, ldt) in [(K, ld), (32, 40), (21, 23)] {
                let wide = (0..<(N * ldt)).map { Float($0) }
                var t = [Float](repeating: -1, count: Kt * N + 1)
                distill_transpose_block(&t, wide, ldt, N, Kt)
                for n in 0..<N { for k in 0..<Kt { XCTAssertEqual(t[k * N + n], wide[n * ldt + k], "K \(Kt) at \(n), \(k)") } }
                XCTAssertEqual(t[Kt * N], -1, "wrote past the transposed block")
            }
            // Packing rows: both a whole vector and a tail per row (K = 7 and 9 columns).
            for cols in [7, 9] {
                var packed = [Float](repeating: -1, count: N * cols + 1)
                distill_copy_block(&packed, src, ld, N, cols)
                for n in 0..<N { for k in 0..<cols { XCTAssertEqual(packed[n * cols + k], src[n * ld + k]) } }
                XCTAssertEqual(packed[N * cols], -1, "wrote past the packed block")
            }
        }
    }
    /// The fused residual + LayerNorm is the sum a + b followed by the LayerNorm kernel, bit for bit
    /// (sum, output and statistics), in both kernel copies, with and without a tail of columns.
    func testResidualLayerNormIsResidualThenLayerNorm() {
        var rng = SplitMix64(seed: 5)
        for (N, C) in [(37, 384), (5, 13)] {
            let a = (0..<(N * C)).map { _ in rng.nextGaussian() }, b = (0..<(N * C)).map { _ in 3 * rng.nextGaussian() }
            let w = (0..<C).map { _ in 1 + 0.1 * rng.nextGaussian() }, bias = (0..<C).map { _ in 0.1 * rng.nextGaussian() }
            for level in SIMDKernels.levels {
                SIMDKernels.force(level)
                defer { SIMDKernels.forceGeneric(false) }
                var sum1 = [Float](repeating: 0, count: N * C), out1 = sum1, sum2 = sum1, out2 = sum1
                var mean1 = [Float](repeating: 0, count: N), rstd1 = mean1, mean2 = mean1, rstd2 = mean1
                for i in 0..<(N * C) { sum1[i] = a[i] + b[i] }
                layerNormForward(&out1, mean: &mean1, rstd: &rstd1, sum1, weight: w, bias: bias, N: N, C: C, eps: 1e-12)
                residualLayerNormForward(&out2, mean: &mean2, rstd: &rstd2, sum: &sum2, a, b, weight: w, bias: bias,
                                         N: N, C: C, eps: 1e-12)
                XCTAssertEqual(sum1.map(\.bitPattern), sum2.map(\.bitPattern), "sum, \(N)×\(C), copy \(level)")
                XCTAssertEqual(out1.map(\.bitPattern), out2.map(\.bitPattern), "output, \(N)×\(C), copy \(level)")
                XCTAssertEqual(mean1, mean2)
                XCTAssertEqual(rstd1, rstd2)
            }
        }
    }

    /// The row kernels the forward pass runs (GELU, LayerNorm, residual + LayerNorm, masked
    /// softmax) and the bf16 conversions give the same bits in every copy the CPU runs: widths that
    /// reach each copy's 16-, 8- and 1-wide loops, masks with every key, none and some, on finite
    /// values (a NaN result's sign is not fixed across copies); the bf16 conversions also on the
    /// edges (NaN with payload, ±∞, overflow to ∞ in bf16, ties, subnormals).
    func testRowKernelsAgreeAcrossCopies() {
        defer { SIMDKernels.forceGeneric(false) }
        var rng = SplitMix64(seed: 23)
        for C in [1, 7, 8, 13, 16, 24, 31, 40, 384, 1536] {
            let rows = 5
            let x = (0..<(rows * C)).map { _ in 3 * rng.nextGaussian() }, y = (0..<(rows * C)).map { _ in rng.nextGaussian() }
            let w = (0..<C).map { _ in 1 + 0.1 * rng.nextGaussian() }, b = (0..<C).map { _ in 0.1 * rng.nextGaussian() }
            var mask = (0..<C).map { _ in Float(rng.next() % 3 == 0 ? 0 : 1) }
            mask[0] = 1
            var special = x
            let edges: [Float] = [.nan, .infinity, -.infinity, .greatestFiniteMagnitude, Float(bitPattern: 0x3F80_8000),
                                  Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x0000_8001), -0.0, Float(bitPattern: 0xFFC1_2345)]
            for (i, e) in edges.enumerated() where i < special.count { special[special.count - 1 - i] = e }
            var copies: [[[UInt32]]] = []
            for level in SIMDKernels.levels {
                SIMDKernels.force(level)
                var out: [[Float]] = []
                for kind: Int32 in [0, 1, 2] {
                    var o = [Float](repeating: 0, count: rows * C), pre = o
                    distill_activation_rows(&o, &pre, x, b, rows, C, kind)
                    out += [o, pre]
                }
                var ln = [Float](repeating: 0, count: rows * C), mean = [Float](repeating: 0, count: rows), rstd = mean
                distill_layernorm_rows(&ln, &mean, &rstd, x, w, b, rows, C, 1e-12)
                var applied = ln
                distill_layernorm_apply_rows(&applied, y, mean, rstd, w, b, rows, C)
                var sum = ln, rln = ln
                distill_residual_layernorm_rows(&rln, nil, nil, &sum, x, y, w, b, rows, C, 1e-5)
                out += [ln, mean, rstd, applied, sum, rln]
                for m in [mask, [Float](repeating: 1, count: C), [Float](repeating: 0, count: C)] {
                    var p = x
                    distill_softmax_masked_rows(&p, rows, C, m)
                    out.append(p)
                }
                var bits = [UInt16](repeating: 0, count: special.count), rounded = special
                distill_bf16_bits(special, &bits, special.count)
                distill_round_bf16(special, &rounded, special.count)
                out += [bits.map { Float(bitPattern: UInt32($0)) }, rounded]
                for (i, v) in special.enumerated() {
                    XCTAssertEqual(bits[i], bf16Bits(v), "bf16 bits of \(v) (\(v.bitPattern)), copy \(level)")
                    XCTAssertEqual(rounded[i].bitPattern, roundedToBF16(v).bitPattern, "bf16 rounding of \(v), copy \(level)")
                }
                copies.append(out.map { $0.map(\.bitPattern) })
            }
            for (level, c) in copies.enumerated().dropFirst() {
                for (k, v) in c.enumerated() { XCTAssertEqual(v, copies[0][k], "C \(C), output \(k): copy \(level) differs from the generic one") }
            }
        }
    }
}
