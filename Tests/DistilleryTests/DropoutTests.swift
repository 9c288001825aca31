import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryTraining
import CKernels

/// Dropout (embeddings, attention probabilities, attention and FFN outputs, the classifier's
/// input) has no PyTorch reference (the masks come from different generators), so its wiring is
/// checked against the loss itself: with the masks fixed by their keys, every parameter's
/// gradient must match central differences of the loss.
final class DropoutTests: XCTestCase {
    func testGradientsWithDropoutMatchFiniteDifferences() throws {
        let dir = Fixtures.path("classifier-bert")
        let ref = try SafetensorsFile(path: dir + "/reference.safetensors")
        let batch = try TokenBatch.read(from: ref)
        let labels = try ref.integers("labels").map { Int32($0) }
        let loaded = try HuggingFaceFolder.load(dir).model
        var c = loaded.config
        c.hiddenDropout = 0.1; c.attentionDropout = 0.1; c.classifierDropout = 0.3
        let student = EncoderModel(config: c, parameters: loaded.parameters)
        let teacher = try HuggingFaceFolder.load(dir).model
        var settings = LossSettings.labelsOnly
        settings.alphaCos = 1
        let params = TrainableParameters(model: student, projectTo: nil)
        let step = try DistillationStep(teacher: teacher, params: params, settings: settings, maxB: batch.B, maxS: batch.S)
        let keys = DropoutKeys(seed: 11, iteration: 5)

        func loss() throws -> Double {
            params.gradients.zero()
            return try step.run(batch, labels: [], classLabels: labels, dropout: keys).total
        }
        let base = try loss()
        let analytic = Array(UnsafeBufferPointer(start: params.gradients.base, count: params.layout.count))
        // The masks matter (the loss differs without them) and repeat exactly with the same keys.
        params.gradients.zero()
        let plain = try step.run(batch, labels: [], classLabels: labels).total
        XCTAssertGreaterThan(abs(plain - base), 1e-4)
        // Without keys nothing is dropped: the loss and gradients of the same weights in a model
        // without dropout (whose training activations share the embedding output's buffer).
        let plainGradients = Array(UnsafeBufferPointer(start: params.gradients.base, count: params.layout.count))
        var c0 = c
        c0.hiddenDropout = 0; c0.attentionDropout = 0; c0.classifierDropout = 0
        let params0 = TrainableParameters(model: EncoderModel(config: c0, parameters: loaded.parameters), projectTo: nil)
        let step0 = try DistillationStep(teacher: teacher, params: params0, settings: settings, maxB: batch.B, maxS: batch.S)
        let noDropout = try step0.run(batch, labels: [], classLabels: labels).total
        XCTAssertEqual(plain, noDropout, accuracy: 1e-6 * abs(noDropout))
        let gradients0 = Array(UnsafeBufferPointer(start: params0.gradients.base, count: params0.layout.count))
        XCTAssertLessThan(maxAbsDifference(plainGradients, gradients0), 1e-6 * gradients0.reduce(Float(0)) { max($0, abs($1)) })
        XCTAssertEqual(try loss(), base)

        // In every slot, the entry with the largest gradient.
        var checked = 0
        for slot in params.layout.slots {
            var best = slot.offset
            for i in slot.offset..<(slot.offset + slot.count) where abs(analytic[i]) > abs(analytic[best]) { best = i }
            let g = Double(analytic[best])
            guard abs(g) > 1e-3 else { continue }
            let p = student.p(best), keep = p.pointee, h: Float = 1e-2 * max(1, abs(keep))
            p.pointee = keep + h
            let up = try loss()
            p.pointee = keep - h
            let down = try loss()
            p.pointee = keep
            let numeric = (up - down) / Double(2 * h)
            XCTAssertEqual(numeric, g, accuracy: 0.03 * abs(g) + 2e-4, "\(slot.name)[\(best - slot.offset)]")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 15, "slots with a gradient to check")
    }
    /// The vector kernel against the scalar definition, x[i] = uniform(key, offset + i) ≥ p ?
    /// x[i] / (1 − p) : 0, element by element and bit for bit, in every kernel copy: counts with
    /// and without a tail, offsets past 2³², a p exactly on the 2⁻²⁴ grid (where ≥ matters) and
    /// off it, and the rate that survives.
    func testDropoutKernelMatchesItsDefinition() {
        let ps: [Float] = [0.1, 0.5, 0.3, Float(1_677_722) / 16_777_216, 1e-7, 0.9]
        let cases: [(count: Int, offset: Int)] = [(1, 0), (7, 3), (8, 0), (61, 12_345), (4_099, 1 << 33 | 5)]
        var kept = 0, total = 0
        for level in SIMDKernels.levels {
            SIMDKernels.force(level)
            defer { SIMDKernels.forceGeneric(false) }
            for p in ps {
                for (count, offset) in cases {
                    let key = streamKey(77, UInt64(count), UInt64(p.bitPattern))
                    let x0 = (0..<count).map { Float($0 % 13) - 6.5 }
                    var x = x0
                    x.withUnsafeMutableBufferPointer { dropoutBlock($0.baseAddress!, count: count, offset: offset, p: p, key: key) }
                    let scale = 1 / (1 - p)
                    for i in 0..<count {
                        let want = uniform(key, offset + i) >= p ? x0[i] * scale : 0
                        XCTAssertEqual(x[i].bitPattern, want.bitPattern, "p \(p), count \(count), offset \(offset), element \(i)")
                        if p == 0.1, count == 4_099 { kept += want != 0 ? 1 : 0; total += 1 }
                    }
                }
            }
        }
        XCTAssertEqual(Double(kept) / Double(total), 0.9, accuracy: 0.02)
    }
}
