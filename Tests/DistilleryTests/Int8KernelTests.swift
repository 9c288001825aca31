import Foundation
import XCTest
import DistilleryTensor
import DistilleryQuant
import CInt8
import CDNNL

/// The int8 kernels: quantization error bounds against the definition, and every SIMD kernel
/// bit for bit equal to the scalar one on random shapes with ragged edges.
final class Int8KernelTests: XCTestCase {
    func testQuantizationErrorIsBounded() {
        var rng = SplitMix64(seed: 4)
        for cols in [1, 7, 64, 385] {
            let rows = 5
            var w = (0..<(rows * cols)).map { _ in rng.nextGaussian() * 0.1 }
            w[0] = 0
            if cols > 1 { for c in 0..<cols { w[cols + c] = 0 } }   // an all-zero row
            let (q, s) = w.withUnsafeBufferPointer { quantizeRowsSymmetric($0.baseAddress!, rows: rows, cols: cols) }
            for r in 0..<rows {
                let amax = (0..<cols).map { abs(w[r * cols + $0]) }.max()!
                XCTAssertEqual(s[r], amax / 127)
                for c in 0..<cols {
                    let back = Float(q[r * cols + c]) * s[r]
                    XCTAssertLessThanOrEqual(abs(back - w[r * cols + c]), s[r] / 2 * 1.0001 + 1e-12, "row \(r) col \(c)")
                    XCTAssertLessThanOrEqual(abs(Int(q[r * cols + c])), 127)
                }
            }
        }
    }

    /// Embedding lookups read rows back from the packed tile layout: scale · q[n], written or
    /// added, for widths with and without a partial last group of four.
    func testPackedRowsReadBackAsDequantizedRows() {
        var rng = SplitMix64(seed: 9)
        for (N, K) in [(1, 1), (20, 7), (33, 64), (17, 385), (200, 13)] {
            let q = (0..<(N * K)).map { _ in Int8(truncatingIfNeeded: Int(rng.next() % 255) - 127) }
            let s = (0..<N).map { _ in Float(rng.nextGaussian()) * 0.01 }
            let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer { PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K) } }
            let matrix = Int8Matrix(packed, twoPass: false)
            // Every row, in a scrambled order, twice (the second time added onto the first).
            let ids = (0..<N).map { Int32(($0 * 7 + 3) % N) }
            var out = [Float](repeating: 0, count: N * K)
            ids.withUnsafeBufferPointer { idp in
                out.withUnsafeMutableBufferPointer { matrix.gatherRows(idp.baseAddress!, count: N, into: $0.baseAddress!, accumulate: false) }
                XCTAssertEqual(out, (0..<(N * K)).map { i in Float(q[Int(ids[i / K]) * K + i % K]) * s[Int(ids[i / K])] }, "\(N)×\(K)")
                out.withUnsafeMutableBufferPointer { matrix.gatherRows(idp.baseAddress!, count: N, into: $0.baseAddress!, accumulate: true) }
            }
            XCTAssertEqual(out, (0..<(N * K)).map { i in 2 * Float(q[Int(ids[i / K]) * K + i % K]) * s[Int(ids[i / K])] }, "\(N)×\(K) added")
        }
    }

    func testVectorisedActivationQuantizationMatchesTheDefinition() {
        // The loop each kernel quantizes its activations with: portable, AVX2, AVX-512.
        for kernel in Int8Kernel.available { checkActivationQuantization(kernel: kernel) }
    }

    func checkActivationQuantization(kernel: Int8Kernel) {
        func quantizeRowVectorised(_ x: [Float], levels: Int) -> (q: [UInt8], scale: Float, zero: Int32) {
            DistilleryQuant.quantizeRowVectorised(x, levels: levels, kernel: kernel)
        }
        var rng = SplitMix64(seed: 5)
        // 8-bit codes, and the 7-bit codes the AVX2 kernel multiplies.
        for levels in [255, 127] {
            // A NaN among the values is coded 0 and leaves the range alone, in the vector body
            // and in the tail (and in the 32- and 64-wide bodies and 16-wide steps of longer rows);
            // ±∞ makes the range non-finite: NaN scale, zero codes.
            for (n, at) in [(11, 2), (11, 10), (45, 20), (100, 50), (100, 70), (100, 97)] {
                var x = (0..<n).map { _ in rng.nextGaussian() }
                x[at] = .nan
                let a = quantizeRowVectorised(x, levels: levels), b = quantizeRowReference(x, levels: levels)
                XCTAssertEqual(a.q, b.q, "NaN at \(at), kernel \(kernel)")
                XCTAssertEqual(a.q[at], 0)
                XCTAssertEqual(a.scale, b.scale)
                XCTAssertEqual(a.zero, b.zero)
                x[at] = .infinity
                let inf = quantizeRowVectorised(x, levels: levels)
                XCTAssertTrue(inf.scale.isNaN)
                XCTAssertEqual(inf.q, [UInt8](repeating: 0, count: n))
            }
            // Values that round to a half: ties go to even, as rint does.
            let ties: [Float] = [0, 1, 2.5 / 127, 3.5 / 127, 4.5 / 127, 126.5 / 127, 0.5 / 127, 1.5 / 127, 5.5 / 127]
            XCTAssertEqual(quantizeRowVectorised(ties, levels: levels).q, quantizeRowReference(ties, levels: levels).q)
            // Lengths for each loop (AVX2: 32 and 8 codes a step; AVX-512: 64 and 16) and the tail,
            // alone and together.
            for n in [1, 3, 8, 13, 16, 32, 45, 64, 79, 385, 1000, 1536] {
                var x = (0..<n).map { _ in rng.nextGaussian() * 3 }
                x[n / 2] = 0
                let a = quantizeRowVectorised(x, levels: levels), b = quantizeRowReference(x, levels: levels)
                XCTAssertEqual(a.q, b.q, "n = \(n), levels \(levels), kernel \(kernel)")
                XCTAssertEqual(a.scale, b.scale)
                XCTAssertEqual(a.zero, b.zero)
                XCTAssertLessThanOrEqual(Int(a.q.max()!), levels)
                let lo = min(0, x.min()!), hi = max(0, x.max()!)
                XCTAssertEqual(a.scale, (hi - lo) / Float(levels))
                // Zero is exact, so ReLU-like rows lose no resolution to the sign.
                XCTAssertEqual(a.q[n / 2], UInt8(a.zero))
                for i in 0..<n { XCTAssertLessThanOrEqual(abs(Float(Int(a.q[i]) - Int(a.zero)) * a.scale - x[i]), a.scale / 2 * 1.001 + 1e-7, "n = \(n) i = \(i)") }
            }
            // A non-negative row uses the whole code range: zero point 0, scale max/L.
            let positive: [Float] = [0, 0.5, 2, 1.25, 0.1, 3, 2.9, 0.7, 1.1]
            let p = quantizeRowVectorised(positive, levels: levels)
            XCTAssertEqual(p.zero, 0)
            XCTAssertEqual(p.scale, 3 / Float(levels))
            XCTAssertEqual(Int(p.q[5]), levels)
            XCTAssertEqual(p.q, quantizeRowReference(positive, levels: levels).q)
            // A non-positive row: zero point at the top.
            let negative = positive.map { -$0 }
            let ng = quantizeRowVectorised(negative, levels: levels)
            XCTAssertEqual(Int(ng.zero), levels)
            XCTAssertEqual(ng.q[5], 0)
            XCTAssertEqual(ng.q, quantizeRowReference(negative, levels: levels).q)
            let zeroRow = quantizeRowVectorised([0, 0, 0], levels: levels)
            XCTAssertEqual(zeroRow.q, [0, 0, 0])
            XCTAssertEqual(zeroRow.scale, 0)
        }
    }

    /// The second pass quantizes exactly what the first left over, with 8-bit codes and with
    /// the 7-bit codes the AVX2 kernel takes.
    func testResidualQuantization() {
        var rng = SplitMix64(seed: 8)
        let M = 5, K = 37
        for levels in [255, 127] {
            let x = (0..<(M * K)).map { _ in rng.nextGaussian() }
            let c = (0..<K).map { _ in 0.5 + rng.nextFloat() }
            let first = QuantizedActivations(maxRows: M, K: K, levels: levels), second = QuantizedActivations(maxRows: M, K: K, levels: levels)
            let scratch = FloatBuffer(count: M * K)
            x.withUnsafeBufferPointer { xp in c.withUnsafeBufferPointer { cp in
                first.quantize(xp.baseAddress!, M: M, K: K, columnScale: cp.baseAddress!)
                second.quantizeResidual(of: xp.baseAddress!, M: M, K: K, columnScale: cp.baseAddress!, source: first, scratch: scratch.base)
            } }
            let Kp = first.Kp
            for m in 0..<M {
                // The smoothed first pass is the definition applied to x ⊙ c, padding at the zero point.
                let ref = quantizeRowReference((0..<K).map { x[m * K + $0] * c[$0] }, levels: levels)
                XCTAssertEqual(Array(UnsafeBufferPointer(start: first.q.base + m * Kp, count: K)), ref.q)
                XCTAssertEqual(first.scales.base[m], ref.scale)
                XCTAssertEqual(first.zeros.base[m], ref.zero)
                for k in K..<Kp { XCTAssertEqual(Int32(first.q.base[m * Kp + k]), ref.zero) }
                for k in 0..<K {
                    let v = x[m * K + k] * c[k]
                    let z1 = Int(first.zeros.base[m]), z2 = Int(second.zeros.base[m])
                    XCTAssertLessThanOrEqual(Int(first.q.base[m * Kp + k]), levels)
                    XCTAssertLessThanOrEqual(Int(second.q.base[m * Kp + k]), levels)
                    let r = v - first.scales.base[m] * Float(Int(first.q.base[m * Kp + k]) - z1)
                    XCTAssertEqual(scratch.base[m * K + k], r, accuracy: 1e-6)
                    let back = first.scales.base[m] * Float(Int(first.q.base[m * Kp + k]) - z1) + second.scales.base[m] * Float(Int(second.q.base[m * Kp + k]) - z2)
                    // Two passes: error at most half a step of the second, finer scale…
                    XCTAssertLessThanOrEqual(abs(back - v), second.scales.base[m] / 2 * 1.001 + 1e-6, "levels \(levels)")
                    // …which is about 1/L of the first.
                    XCTAssertLessThanOrEqual(second.scales.base[m], first.scales.base[m] / Float(levels) * 1.01, "levels \(levels)")
                }
            }
        }
    }

    /// Each kernel against the scalar one, and the scalar one against a plain Swift loop.
    /// Each kernel runs on the activation codes it takes (`activationLevels`): all of them on
    /// 7-bit codes, the VNNI ones on 8-bit codes too. Weights span the whole int8 range,
    /// −128 included (a file may hold it), so a saturating pair would show.
    /// (200 × 40 and 128 × 384 are cut into more chunks than threads, rows and columns; 200 and
    /// 77 rows end in a partial 32-row block of the AVX2 kernel, whatever the thread count.)
    func testKernelsAreBitIdentical() {
        // Every thread count cuts the rows differently (a 6-row tile ending in a partial column
        // block runs only in some splits): the machine's count, and one thread.
        let threads = Parallel.threads
        defer { Parallel.setThreads(threads) }
        for t in threads > 1 ? [threads, 1] : [1] {
            Parallel.setThreads(t)
            var rng = SplitMix64(seed: 6)
            print("int8 kernels on this CPU: \(Int8Kernel.available)")
            for levels in [255, 127] { for (M, N, K) in [(1, 1, 1), (3, 17, 5), (7, 33, 64), (13, 100, 130), (6, 64, 384), (25, 250, 67), (200, 40, 96), (77, 33, 64), (128, 384, 1536)] {
                var w = [Float](repeating: 0, count: N * K), x = [Float](repeating: 0, count: M * K)
                for i in w.indices { w[i] = rng.nextGaussian() }
                for i in x.indices { x[i] = rng.nextGaussian() * 2 }
                let bias = (0..<N).map { _ in rng.nextGaussian() }
                var (q, s) = w.withUnsafeBufferPointer { quantizeRowsSymmetric($0.baseAddress!, rows: N, cols: K) }
                for i in stride(from: 0, to: q.count, by: 3) { q[i] = q[i] < 0 ? -128 : 127 }
                let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer { PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K) } }
                let acts = QuantizedActivations(maxRows: M, K: K, levels: levels)
                x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, M: M, K: K) }
                if K >= 64 { XCTAssertEqual(Int((0..<(M * acts.Kp)).map { acts.q.base[$0] }.max()!), levels, "codes reach the top") }
                func run(_ k: Int8Kernel, bias b: [Float]?, accumulateOnto start: [Float]? = nil) -> [Float] {
                    var y = start ?? [Float](repeating: .nan, count: M * N)
                    y.withUnsafeMutableBufferPointer { yp in
                        if let b { b.withUnsafeBufferPointer { int8Linear(yp.baseAddress!, acts, M: M, packed, bias: $0.baseAddress!, kernel: k, accumulate: start != nil) } } else {
                            int8Linear(yp.baseAddress!, acts, M: M, packed, bias: nil, kernel: k, accumulate: start != nil)
                        }
                    }
                    return y
                }
                // The definition, in Swift: Σ (q − zero)·w over the unpadded row.
                var expected = [Float](repeating: 0, count: M * N)
                let Kp = acts.Kp
                for m in 0..<M { for n in 0..<N {
                    var acc: Int32 = 0
                    for k in 0..<K { acc += (Int32(acts.q.base[m * Kp + k]) - acts.zeros.base[m]) * Int32(q[n * K + k]) }
                    expected[m * N + n] = fmaf(Float(acc), acts.scales.base[m] * s[n], bias[n])
                } }
                let scalar = run(.scalar, bias: bias)
                XCTAssertEqual(scalar, expected, "scalar vs definition \(M)×\(N)×\(K)")
                let scalarNoBias = run(.scalar, bias: nil)
                // Accumulating mode: y = fma(acc, scale, y) (the second pass of two-pass activations).
                let start = (0..<(M * N)).map { _ in rng.nextGaussian() }
                let scalarAccumulated = run(.scalar, bias: bias, accumulateOnto: start)
                for i in 0..<(M * N) {
                    var acc: Int32 = 0
                    let m = i / N, n = i % N
                    for k in 0..<K { acc += (Int32(acts.q.base[m * Kp + k]) - acts.zeros.base[m]) * Int32(q[n * K + k]) }
                    XCTAssertEqual(scalarAccumulated[i], fmaf(Float(acc), acts.scales.base[m] * s[n], start[i]))
                }
                for k in Int8Kernel.available where k != .scalar && k.activationLevels >= levels {
                    XCTAssertEqual(run(k, bias: bias), scalar, "\(k) \(M)×\(N)×\(K) levels \(levels)")
                    XCTAssertEqual(run(k, bias: nil), scalarNoBias, "\(k) no bias \(M)×\(N)×\(K)")
                    XCTAssertEqual(run(k, bias: bias, accumulateOnto: start), scalarAccumulated, "\(k) accumulate \(M)×\(N)×\(K)")
                }
            } }
        }
    }

    /// The VNNI kernels' loops and tiles (AVX-VNNI's 6 × 1 blocks, the EVEX 256-bit instance's
    /// 4 × 2, AVX-512's 6 × 4 in 512-bit vectors), with vpdpbusd written out in AVX2 and
    /// AVX-512's vectors as two AVX2 halves, bit for bit against the scalar kernel: every tile
    /// shape, partial 8- and 16-column groups, bias or none, accumulating, outlier channels.
    /// Runs on any AVX2 CPU, so the tiles are checked where the VNNI instructions are missing
    /// (on a VNNI CPU testKernelsAreBitIdentical also runs the real instructions).
    func testVNNITilesMatchTheScalarKernelWithEmulatedInstructions() throws {
        guard Int8Kernel.available.contains(.avx2) else { throw XCTSkip("the emulation needs AVX2") }
        var rng = SplitMix64(seed: 23)
        var checked = 0
        // Each kernel's (rows, column blocks) a tile can have: AVX-VNNI 6 × 1, EVEX 256-bit 4 × 2,
        // AVX-512 6 × 4. The general shapes first, then 6 + r rows (tiles of 6 and r) by 4 + d
        // blocks (panels of 4 and d, the last block partial) for the AVX-512 kernel's 24 shapes.
        let layouts: [(kernel: Int8Kernel, rows: Int, blocks: Int)] = [(.avxVNNI, 6, 1), (.avx512VLVNNI256, 4, 2), (.avx512VNNI, 6, 4)]
        var shapes = [(1, 1, 1), (6, 16, 4), (5, 17, 9), (7, 33, 64), (12, 40, 130), (13, 100, 67), (14, 33, 12), (15, 24, 8),
                      (25, 250, 96), (64, 48, 384)]
        for r in 1...5 { for d in 1...3 { shapes.append((6 + r, 64 + 16 * d - 5, 3 + 5 * r + d)) } }
        // The loops of int8_gemm.c walked over this list: every tile shape of every kernel is
        // reached. The rows × blocks above copy the C kernels' tile bounds; change them together.
        for layout in layouts {
            var reached = Set<[Int]>()
            for (M, N, _) in shapes {
                let blocks = (N + 15) / 16
                for b0 in stride(from: 0, to: blocks, by: layout.blocks) {
                    for m in stride(from: 0, to: M, by: layout.rows) { reached.insert([min(layout.rows, M - m), min(layout.blocks, blocks - b0)]) }
                }
            }
            XCTAssertEqual(reached.count, layout.rows * layout.blocks, "\(layout.kernel): tile shapes the test reaches")
        }
        for (M, N, K) in shapes {
            for ko in [0, 2] {
                var q = (0..<(N * K)).map { _ in Int8(clamping: Int((rng.nextGaussian() * 60).rounded())) }
                for i in stride(from: 0, to: q.count, by: 3) { q[i] = q[i] < 0 ? -128 : 127 }
                let s = (0..<N).map { _ in Float(0.01) + abs(rng.nextGaussian()) * 0.01 }
                let channels: [Int32] = ko == 0 ? [] : [0, Int32(K - 1)].prefix(min(ko, K)).map { $0 }
                let columns = (0..<(N * channels.count)).map { _ in rng.nextGaussian() }
                let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
                    PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K, outliers: channels.isEmpty ? nil : (channels, columns))
                } }
                let x = (0..<(M * K)).map { _ in rng.nextGaussian() * 2 }
                let acts = QuantizedActivations(maxRows: M, K: K, levels: 255)
                x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, M: M, K: K) }
                let xo = (0..<(M * channels.count)).map { _ in rng.nextGaussian() }
                let bias = (0..<N).map { _ in rng.nextGaussian() }
                let start = (0..<(M * N)).map { _ in rng.nextGaussian() }
                for (withBias, accumulate) in [(true, false), (false, false), (true, true)] {
                    func product(_ emulate: Int8Kernel?) -> [Float] {
                        var y = accumulate ? start : [Float](repeating: .nan, count: M * N)
                        y.withUnsafeMutableBufferPointer { yp in bias.withUnsafeBufferPointer { bp in xo.withUnsafeBufferPointer { op in
                            let b = withBias ? bp.baseAddress : nil, o = channels.isEmpty ? nil : op.baseAddress
                            if let emulate {
                                XCTAssertTrue(int8LinearEmulatingVNNI(yp.baseAddress!, acts, M: M, packed, bias: b, layout: emulate,
                                                                      accumulate: accumulate, outliers: o))
                            } else {
                                int8Linear(yp.baseAddress!, acts, M: M, packed, bias: b, kernel: .scalar, accumulate: accumulate, outliers: o)
                            }
                        } } }
                        return y
                    }
                    let reference = product(nil)
                    XCTAssertFalse(reference.contains { $0.isNaN }, "every output written")
                    for layout in layouts.map(\.kernel) {
                        XCTAssertEqual(product(layout), reference,
                                       "\(layout) tiles \(M)×\(N)×\(K), outliers \(channels.count), bias \(withBias), accumulate \(accumulate)")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, 25 * 2 * 3 * 3)
    }

    /// Outlier channels: an Int8Matrix with them gives the int8 product over the other channels
    /// (their codes are the zero point) plus the fp32 product over these, exactly as written out
    /// here; and one channel 200× the others no longer coarsens the rest (on every kernel).
    func testOutlierChannelsBypassInt8() {
        var rng = SplitMix64(seed: 11)
        // Few rows split the columns across threads (outlier weights read from column 48 on),
        // many rows split the rows; 37 and 100 columns end in partial vectors.
        for (M, N) in [(21, 37), (5, 100), (30, 100)] {
        let K = 45, hot = [Int32(3), 30]
        var x = (0..<(M * K)).map { _ in rng.nextGaussian() }
        for m in 0..<M { x[m * K + 3] *= 200; x[m * K + 30] *= 50 }
        let w = (0..<(N * K)).map { _ in rng.nextGaussian() }, bias = (0..<N).map { _ in rng.nextGaussian() }
        func run(_ kernel: Int8Kernel, outliers: [Int32]) -> (y: [Float], q: [Int8], s: [Float]) {
            var wi = w
            for n in 0..<N { for c in outliers { wi[n * K + Int(c)] = 0 } }
            let (q, s) = wi.withUnsafeBufferPointer { quantizeRowsSymmetric($0.baseAddress!, rows: N, cols: K) }
            let columns = (0..<N).flatMap { n in outliers.map { w[n * K + Int($0)] } }
            let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
                PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K, outliers: outliers.isEmpty ? nil : (outliers, columns))
            } }
            let matrix = Int8Matrix(packed, twoPass: false, kernel: kernel)
            let y = FloatBuffer(count: M * N), scratch = FloatBuffer(count: matrix.scratchFloats(maxRows: M))
            x.withUnsafeBufferPointer { xp in bias.withUnsafeBufferPointer {
                matrix.forward(y.base, ldOut: N, xp.baseAddress!, ldInp: K, N: M, bias: $0.baseAddress!, scratch: scratch.base)
            } }
            return (y.toArray(), q, s)
        }
        func error(_ y: [Float]) -> Double {
            var e = 0.0
            for m in 0..<M { for n in 0..<N {
                var exact = Double(bias[n])
                for k in 0..<K { exact += Double(x[m * K + k]) * Double(w[n * K + k]) }
                e = max(e, abs(Double(y[m * N + n]) - exact))
            } }
            return e
        }
        for kernel in Int8Kernel.available {
            let (y, q, s) = run(kernel, outliers: hot)
            // Written out: codes of the row with the outlier channels at 0, the integer sum, the
            // outlier channels' products fused onto the bias in order, then one fused multiply-add.
            var expected = [Float](repeating: 0, count: M * N)
            for m in 0..<M {
                var row = Array(x[(m * K)..<((m + 1) * K)])
                for c in hot { row[Int(c)] = 0 }
                let (codes, scale, zero) = quantizeRowReference(row, levels: kernel.activationLevels)
                for n in 0..<N {
                    var acc: Int32 = 0
                    for k in 0..<K { acc += (Int32(codes[k]) - zero) * Int32(q[n * K + k]) }
                    var t = bias[n]
                    for c in hot { t = fmaf(x[m * K + Int(c)], w[n * K + Int(c)], t) }
                    expected[m * N + n] = fmaf(Float(acc), scale * s[n], t)
                }
            }
            XCTAssertEqual(y, expected, "\(kernel) \(M)×\(N)")
            let plain = error(run(kernel, outliers: []).y), bypassed = error(y)
            print("\(kernel): largest error \(plain) without outlier channels, \(bypassed) with them")
            XCTAssertLessThan(bypassed * 20, plain, "\(kernel)")
        }
        }
    }

    /// The saturation bound itself: every activation code at the kernel's top level against
    /// weights all −128, then all 127 (the largest pair sums vpmaddubsw can meet), each kernel
    /// against the exact integer sum.
    func testExtremeCodesAndWeightsDoNotSaturate() {
        let M = 5, N = 19, K = 68
        for k in Int8Kernel.available {
            let levels = k.activationLevels
            for w in [Int8(-128), Int8(127)] {
                let q = [Int8](repeating: w, count: N * K), s = [Float](repeating: 1, count: N)
                let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer { PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K) } }
                let acts = QuantizedActivations(maxRows: M, K: K, levels: levels)
                // All-positive rows of one value: zero point 0, every code at the top.
                let x = [Float](repeating: 3, count: M * K)
                x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, M: M, K: K) }
                for i in 0..<(M * K) { XCTAssertEqual(Int(acts.q.base[(i / K) * acts.Kp + i % K]), levels) }
                var y = [Float](repeating: .nan, count: M * N)
                y.withUnsafeMutableBufferPointer { int8Linear($0.baseAddress!, acts, M: M, packed, bias: nil, kernel: k) }
                let exact = Float(levels * Int(w) * K) * acts.scales.base[0]
                for v in y { XCTAssertEqual(v, exact, "\(k), weights \(w)") }
            }
        }
    }

    /// oneDNN's u8 × s8 products with our dequantization equal the reference kernel bit for
    /// bit. Where oneDNN lacks VNNI it saturates 16-bit partial sums, so it is not offered
    /// there (OneDNN.int8 is false); this test keeps |w| ≤ 63 so nothing saturates and the glue
    /// (strides, zero points, accumulation) is checked on any CPU.
    func testOneDNNProductsMatchTheReference() throws {
        try Fixtures.requireOneDNN()
        // These weights never saturate, so the per-shape exactness check (which would refuse
        // every shape where oneDNN lacks VNNI) is off: the glue is checked on any CPU.
        distill_dnnl_check_u8s8(0)
        defer { distill_dnnl_check_u8s8(1) }
        var rng = SplitMix64(seed: 11)
        let before = OneDNNProducts.shared.calls
        defer { XCTAssertGreaterThan(OneDNNProducts.shared.calls, before, "oneDNN ran the products") }
        for (M, N, K) in [(1, 1, 1), (3, 17, 5), (13, 100, 130), (128, 384, 1536)] {
            // The largest case also has outlier channels, read at each row chunk's offset.
            let hot: [Int32] = M == 128 ? [3, 30] : []
            var q = (0..<(N * K)).map { _ in Int8(Int(rng.next() % 127) - 63) }
            for n in 0..<N { for c in hot { q[n * K + Int(c)] = 0 } }
            let columns = (0..<(N * hot.count)).map { _ in rng.nextGaussian() }
            let s = (0..<N).map { _ in 0.01 + rng.nextFloat() }
            let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
                PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K, outliers: hot.isEmpty ? nil : (hot, columns))
            } }
            let x = (0..<(M * K)).map { _ in rng.nextGaussian() }
            let acts = QuantizedActivations(maxRows: M, K: K)
            x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, M: M, K: K) }
            let xo = (0..<(M * hot.count)).map { _ in rng.nextGaussian() * 30 }
            let bias = (0..<N).map { _ in rng.nextGaussian() }
            let start = (0..<(M * N)).map { _ in rng.nextGaussian() }
            for accumulate in [false, true] {
                var a = accumulate ? start : [Float](repeating: .nan, count: M * N), b = a
                func product(_ y: inout [Float], _ kernel: Int8Kernel) {
                    y.withUnsafeMutableBufferPointer { yp in bias.withUnsafeBufferPointer { bp in xo.withUnsafeBufferPointer { op in
                        int8Linear(yp.baseAddress!, acts, M: M, packed, bias: bp.baseAddress!, kernel: kernel, accumulate: accumulate,
                                   outliers: accumulate || hot.isEmpty ? nil : op.baseAddress!)
                    } } }
                }
                product(&a, .scalar)
                product(&b, .onednn)
                XCTAssertEqual(a, b, "onednn \(M)×\(N)×\(K) accumulate \(accumulate)")
            }
        }
    }

    /// oneDNN picks its int8 implementation shape by shape, so each shape is taken only once a
    /// run on all-maximum operands has shown its sums exact. Here every code is 255 and the
    /// weights come in same-sign pairs along k (127, 127, −128, −128, …), the pair sums that
    /// saturate 16 bits. Through `.onednn` the product gives the reference kernel's numbers on
    /// any CPU: from oneDNN where this shape's sums are exact, from our own kernels where not.
    func testOneDNNInt8IsTakenOnlyWhereExact() throws {
        try Fixtures.requireOneDNN()
        var rng = SplitMix64(seed: 12)
        let (M, N, K) = (13, 40, 200)
        let q = (0..<(N * K)).map { ($0 % K / 2) % 2 == 0 ? Int8(127) : Int8(-128) }, s = (0..<N).map { _ in 0.01 + rng.nextFloat() }
        let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer { PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K) } }
        let acts = QuantizedActivations(maxRows: M, K: K)
        let x = [Float](repeating: 3, count: M * K)   // zero point 0, every code 255
        x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, M: M, K: K) }
        XCTAssertEqual(acts.q.base[0], 255)
        // Whether oneDNN's products are exact at this very shape, asked with the check off.
        let Kp = packed.Kp
        let top = [UInt8](repeating: 255, count: M * Kp), most = [Int8](repeating: 127, count: N * Kp)
        var sums = [Int32](repeating: 0, count: M * N)
        distill_dnnl_check_u8s8(0)
        let rc = distill_dnnl_matmul(Int32(DISTILL_DNNL_U8S8), M, N, Kp, top, Kp, 1, most, 1, Kp, nil, &sums, N, 0)
        distill_dnnl_check_u8s8(1)
        let exactHere = rc == 0 && sums.allSatisfy { $0 == Int32(255 * 127 * Kp) }
        var reference = [Float](repeating: .nan, count: M * N), viaOneDNN = reference
        reference.withUnsafeMutableBufferPointer { int8Linear($0.baseAddress!, acts, M: M, packed, bias: nil, kernel: .scalar) }
        let before = OneDNNProducts.shared.calls
        viaOneDNN.withUnsafeMutableBufferPointer { int8Linear($0.baseAddress!, acts, M: M, packed, bias: nil, kernel: .onednn) }
        XCTAssertEqual(viaOneDNN, reference)
        XCTAssertEqual(OneDNNProducts.shared.calls, before + (exactHere ? 1 : 0),
                       exactHere ? "oneDNN ran the product" : "oneDNN's saturating products were refused")
        print("oneDNN u8 × s8 at \(M) × \(N) × \(Kp): \(exactHere ? "exact, used" : "saturates, refused")")
    }

    /// The dequantization of products made elsewhere (oneDNN's int32 sums; eight columns at a
    /// time where the CPU has AVX2) gives the scalar kernel's floats bit for bit: widths that
    /// end in partial vectors, with and without bias, accumulating, with outlier channels.
    func testDequantizationOfOutsideProductsMatchesTheKernel() {
        var rng = SplitMix64(seed: 21)
        for (M, N, K) in [(1, 1, 3), (3, 17, 5), (5, 100, 45), (9, 8, 16), (4, 37, 40)] {
            let hot: [Int32] = K >= 40 ? [3, 30] : []
            var w = (0..<(N * K)).map { _ in rng.nextGaussian() }
            let columns = (0..<N).flatMap { n in hot.map { w[n * K + Int($0)] } }
            for n in 0..<N { for c in hot { w[n * K + Int(c)] = 0 } }
            let (q, s) = w.withUnsafeBufferPointer { quantizeRowsSymmetric($0.baseAddress!, rows: N, cols: K) }
            let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
                PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K, outliers: hot.isEmpty ? nil : (hot, columns))
            } }
            let acts = QuantizedActivations(maxRows: M, K: K)
            let x = (0..<(M * K)).map { _ in rng.nextGaussian() }
            x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, M: M, K: K) }
            let xo = (0..<(M * hot.count)).map { _ in rng.nextGaussian() * 30 }
            let bias = (0..<N).map { _ in rng.nextGaussian() }, start = (0..<(M * N)).map { _ in rng.nextGaussian() }
            // oneDNN's products: Σ_k code · w, the zero point not yet taken off.
            var products = [Int32](repeating: 0, count: M * N)
            for m in 0..<M { for n in 0..<N { for k in 0..<K { products[m * N + n] += Int32(acts.q.base[m * acts.Kp + k]) * Int32(q[n * K + k]) } } }
            for (withBias, accumulate) in [(true, false), (false, false), (false, true)] {
                let ko = accumulate ? 0 : hot.count
                var expected = accumulate ? start : [Float](repeating: .nan, count: M * N), actual = expected
                bias.withUnsafeBufferPointer { bp in xo.withUnsafeBufferPointer { op in
                    let b = withBias ? bp.baseAddress : nil, o = ko > 0 ? op.baseAddress : nil
                    expected.withUnsafeMutableBufferPointer {
                        int8Linear($0.baseAddress!, acts, M: M, packed, bias: b, kernel: .scalar, accumulate: accumulate, outliers: o)
                    }
                    actual.withUnsafeMutableBufferPointer { yp in products.withUnsafeBufferPointer { pp in
                        var a = distill_i8_args(M: Int32(M), N: Int32(N), Kp: Int32(packed.Kp), xq: acts.q.base, xzero: acts.zeros.base,
                                                xs: acts.scales.base, wp: packed.packed.base, colsum: packed.colsum.base,
                                                ws: packed.scales.base, bias: b, y: yp.baseAddress!, ldy: Int32(N),
                                                accumulate: accumulate ? 1 : 0, xo: o, wo: packed.outlierWeights.base,
                                                ko: Int32(ko), ldwo: Int32(N))
                        distill_i8_dequantize(&a, pp.baseAddress!, N)
                    } }
                } }
                XCTAssertEqual(actual, expected, "\(M)×\(N)×\(K) bias \(withBias) accumulate \(accumulate)")
            }
        }
    }

    /// Start-up finds every int8 kernel the CPU's flags allow, and none they do not: a
    /// detection that lost VNNI would otherwise pass every other test on the slower kernels.
    func testKernelDetectionFollowsTheCPUFlags() throws {
        let flags = CPUInfo.read().flags
        if flags.isEmpty { throw XCTSkip("no CPU flags to compare with (/proc/cpuinfo unreadable)") }
        let expected: [Int8Kernel: Bool] = [
            .scalar: true,
            .avx2: flags.contains("avx2") && flags.contains("fma"),
            .avxVNNI: flags.contains("avx_vnni") && flags.contains("fma"),
            .avx512VNNI: flags.contains("avx512_vnni") && flags.contains("avx512bw"),
            .avx512VLVNNI256: flags.contains("avx512_vnni") && flags.contains("avx512vl") && flags.contains("fma"),
        ]
        let available = Set(Int8Kernel.available)
        for (kernel, present) in expected { XCTAssertEqual(available.contains(kernel), present, "\(kernel) with flags \(flags.sorted())") }
    }
}
