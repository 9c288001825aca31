import Foundation
import XCTest
import DistilleryTensor
import DistilleryTraining

/// The soft-target kernel of a teacher cache (top k logits and one tail logit per row) against
/// the dense kernel (checked against PyTorch in the fixtures) on the teacher row it stands for:
/// the top k logits at their ids and the tail logit everywhere else.
final class TopKLossTests: XCTestCase {
    func testTopKWithTailEqualsTheDenseRowItStandsFor() {
        var rng = SplitMix64(seed: 21)
        for (V, k) in [(37, 1), (37, 5), (37, 36), (37, 37), (300, 8), (300, 64), (1000, 100)] {
            let rows = 3
            let T: Float = 2, ceScale: Float = 1.3, mlmScale: Float = 0.7
            let zs = (0..<(rows * V)).map { _ in rng.nextGaussian() * 2 }
            var ids = [Int32](), values = [Float](), tails = [Float](), dense = [Float]()
            for _ in 0..<rows {
                let z = (0..<V).map { _ in rng.nextGaussian() * 3 }
                let order = z.indices.sorted { z[$0] > z[$1] }
                ids += order.prefix(k).map { Int32($0) }
                values += order.prefix(k).map { z[$0] }
                // The tail logit: (V − k)·exp(z̄/T) = Σ_tail exp(z/T).
                let m = Double(z[order[0]]) / Double(T)
                let tail = order[k...].reduce(0.0) { $0 + Foundation.exp(Double(z[$1]) / Double(T) - m) }
                let zbar: Float = k == V ? -.infinity : Float(Double(T) * (m + Foundation.log(tail / Double(V - k))))
                tails.append(zbar)
                var row = [Float](repeating: zbar, count: V)
                for j in 0..<k { row[Int(order[j])] = z[order[j]] }
                dense += row
            }
            let labels: [Int32] = [Int32(V / 2), -100, 0]
            let ce = [Bool](repeating: true, count: rows), teacherRow: [Int32] = [0, 1, 2]
            var gDense = zs, gTop = zs
            var klD = [Double](repeating: 0, count: rows), mlmD = klD, mseD = klD
            var klT = klD, mlmT = klD, mseT = klD
            distillationRows(zs: &gDense, zt: dense, rows: rows, V: V, labels: labels, ce: ce, temperature: T, ceScale: ceScale,
                             mlmScale: mlmScale, mseScale: 0, klOut: &klD, mlmOut: &mlmD, mseOut: &mseD)
            distillationRowsTopK(zs: &gTop, rows: rows, V: V, labels: labels, ce: ce, teacherRow: teacherRow, topIds: ids, topValues: values,
                                 tailLogits: tails, k: k, temperature: T, ceScale: ceScale, mlmScale: mlmScale,
                                 klOut: &klT, mlmOut: &mlmT, mseOut: &mseT)
            for r in 0..<rows {
                XCTAssertGreaterThan(klD[r], 0)
                XCTAssertEqual(klT[r], klD[r], accuracy: 1e-5 * klD[r] + 1e-9, "V \(V) k \(k) row \(r): KL")
                XCTAssertEqual(mlmT[r], mlmD[r], accuracy: 1e-6 * max(1, mlmD[r]), "V \(V) k \(k) row \(r): MLM")
            }
            let scale = gDense.reduce(Float(0)) { max($0, abs($1)) }
            let worst = zip(gDense, gTop).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
            XCTAssertLessThan(worst, 1e-5 * scale, "V \(V) k \(k): gradients")
        }
    }

    /// The sampled tail: m systematic draws from the teacher's tail carry its mass. Averaged
    /// over the draws' offset u0 (a fine grid over [0, 1), the expectation the cache samples
    /// once per row), the loss and the gradient are the dense row's: unbiased, where the even
    /// tail (the tail logit) is off by far more on the same rows. The draws avoid the top k, and
    /// the returned Σ p log p is the tail's.
    func testTailDrawsAreUnbiased() {
        var rng = SplitMix64(seed: 5)
        // (37, 37, 4): no tail at all (its mass 0, the draws carry nothing).
        for (V, k, m) in [(300, 8, 16), (1000, 64, 32), (40, 39, 4), (37, 37, 4)] {
            let T: Float = 2, ceScale: Float = 1.3, mlmScale: Float = 0.7
            let z = (0..<V).map { _ in rng.nextGaussian() * 3 }, zs = (0..<V).map { _ in rng.nextGaussian() * 2 }
            let order = z.indices.sorted { z[$0] > z[$1] }
            let ids = order.prefix(k).map { Int32($0) }, values = order.prefix(k).map { z[$0] }
            // The tail logit and Σ_tail p log p, from scratch in double.
            let t = 1 / Double(T), mx = Double(z[order[0]]) * t
            let lse = mx + Foundation.log(z.reduce(0.0) { $0 + Foundation.exp(Double($1) * t - mx) })
            let tailMass = order[k...].reduce(0.0) { $0 + Foundation.exp(Double(z[$1]) * t - lse) }
            let plogpRef = order[k...].reduce(0.0) { let lp = Double(z[$1]) * t - lse; return $0 + Foundation.exp(lp) * lp }
            var tail = k == V ? -Float.infinity : Float(Double(T) * (lse + Foundation.log(tailMass / Double(V - k))))
            var label = Int32(V / 3), ce = true, row: Int32 = 0
            // The dense row: the teacher's every logit.
            var gDense = zs, klD = 0.0, mlmD = 0.0, mseD = 0.0
            distillationRows(zs: &gDense, zt: z, rows: 1, V: V, labels: &label, ce: &ce, temperature: T, ceScale: ceScale,
                             mlmScale: mlmScale, mseScale: 0, klOut: &klD, mlmOut: &mlmD, mseOut: &mseD)
            // The even tail.
            var gEven = zs, klE = 0.0, mlm = 0.0, mse = 0.0
            distillationRowsTopK(zs: &gEven, rows: 1, V: V, labels: &label, ce: &ce, teacherRow: &row, topIds: ids, topValues: values,
                                 tailLogits: &tail, k: k, temperature: T, ceScale: ceScale, mlmScale: mlmScale, klOut: &klE, mlmOut: &mlm, mseOut: &mse)
            // The draws, averaged over u0.
            let scratch = TailSamplerScratch(V: V, slots: 1)
            let G = 4096
            var klSum = 0.0, gSum = [Double](repeating: 0, count: V), draws = [Int32](repeating: 0, count: m)
            for g in 0..<G {
                var plogp = ids.withUnsafeBufferPointer { idp in
                    z.withUnsafeBufferPointer { zp in
                        sampleTail(zp.baseAddress!, V: V, ids: idp.baseAddress!, k: k, temperature: T, lse: logSumExp(zp.baseAddress!, V, invT: 1 / T),
                                   m: m, offset: (Double(g) + 0.5) / Double(G),
                                   draws: &draws, scratch: scratch, slot: 0)
                    }
                }
                if g % 512 == 0 {
                    XCTAssertEqual(Double(plogp), plogpRef, accuracy: 1e-5 * abs(plogpRef), "V \(V) k \(k): Σ_tail p log p")
                    XCTAssertTrue(draws.allSatisfy { $0 >= 0 && Int($0) < V && (k == V || !ids.contains($0)) }, "V \(V) k \(k): draws \(draws)")
                }
                var gS = zs, kl = 0.0
                distillationRowsTopK(zs: &gS, rows: 1, V: V, labels: &label, ce: &ce, teacherRow: &row, topIds: ids, topValues: values,
                                     tailLogits: &tail, k: k, tailSamples: draws, m: m, tailPlogp: &plogp, temperature: T, ceScale: ceScale,
                                     mlmScale: mlmScale, klOut: &kl, mlmOut: &mlm, mseOut: &mse)
                XCTAssertEqual(mlm, mlmD, accuracy: 1e-6 * mlmD)
                klSum += kl
                for j in 0..<V { gSum[j] += Double(gS[j]) }
            }
            let klMean = klSum / Double(G)
            let scale = Double(gDense.reduce(Float(0)) { max($0, abs($1)) })
            let gErr = (0..<V).reduce(0.0) { max($0, abs(gSum[$1] / Double(G) - Double(gDense[$1]))) }
            let evenErr = zip(gEven, gDense).reduce(0.0) { max($0, Double(abs($1.0 - $1.1))) }
            print("V \(V) k \(k) m \(m): KL dense \(klD), draws (mean over u0) \(klMean), even tail \(klE); gradient max error \(gErr / scale) (even tail \(evenErr / scale)) of its scale")
            XCTAssertEqual(klMean, klD, accuracy: 2e-4 * klD, "V \(V) k \(k) m \(m): KL")
            XCTAssertLessThan(gErr, 2e-4 * scale, "V \(V) k \(k) m \(m): gradient")
            // The test tells the two apart: the even tail's bias is far outside those bounds.
            if k < V - 1 {
                XCTAssertGreaterThan(abs(klE - klD), 20 * abs(klMean - klD), "V \(V) k \(k): even tail")
                XCTAssertGreaterThan(evenErr, 5 * gErr, "V \(V) k \(k): even tail gradient")
            }
        }
    }
}
