import Foundation
import XCTest
import DistilleryTensor

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
}
