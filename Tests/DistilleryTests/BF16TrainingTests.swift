import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryTraining

/// bf16 mixed precision (bf16 operands, fp32 accumulation, fp32 master weights, LayerNorm,
/// softmax and losses) against fp32 on the distillation fixtures: losses within 1e-2 relative;
/// gradients with cosine ≥ 0.999 over all parameters together and ≥ 0.99 for every tensor.
final class BF16TrainingTests: XCTestCase {
    struct Step { let losses: LossValues; let gradients: [String: [Float]] }

    func step(_ fixture: String, bf16: Bool) throws -> Step {
        let dir = Fixtures.path(fixture)
        let teacher = try HuggingFaceFolder.load(Fixtures.path("tiny-bert-mlm")).model
        let student = try HuggingFaceFolder.load(dir).model
        let ref = try SafetensorsFile(path: dir + "/reference.safetensors")
        let batch = try TokenBatch.read(from: ref)
        let labels = try ref.integers("mlm_labels").map { Int32($0) }
        let settings = try StepSettings.load(dir + "/step.json")
        let params = TrainableParameters(model: student, projectTo: nil)
        if bf16 {
            teacher.convertMatricesToBF16()
            params.student.convertMatricesToBF16()
            XCTAssertEqual(params.student.formats, [.bf16])
        }
        let step = try DistillationStep(teacher: teacher, params: params, settings: settings.losses, maxB: batch.B, maxS: batch.S)
        let losses = try step.run(batch, labels: labels)
        var grads: [String: [Float]] = [:]
        for slot in params.layout.slots {
            grads[slot.name] = Array(UnsafeBufferPointer(start: params.gradients.base + slot.offset, count: slot.count))
        }
        return Step(losses: losses, gradients: grads)
    }

    func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, x = 0.0, y = 0.0
        for i in a.indices { d += Double(a[i]) * Double(b[i]); x += Double(a[i]) * Double(a[i]); y += Double(b[i]) * Double(b[i]) }
        return d / max(1e-300, (x * y).squareRoot())
    }

    func norm(_ a: [Float]) -> Double { a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

    func check(_ fixture: String) throws {
        let fp32 = try step(fixture, bf16: false), bf16 = try step(fixture, bf16: true)
        let pairs = [("total", fp32.losses.total, bf16.losses.total), ("ce", fp32.losses.ce, bf16.losses.ce),
                     ("mlm", fp32.losses.mlm, bf16.losses.mlm), ("cos", fp32.losses.cos, bf16.losses.cos)]
        for (name, a, b) in pairs {
            print("\(fixture) loss \(name): fp32 \(a), bf16 \(b), relative \(abs(a - b) / abs(a))")
            XCTAssertLessThanOrEqual(abs(a - b) / abs(a), 1e-2, "\(fixture) loss \(name)")
        }
        let names = fp32.gradients.keys.sorted()
        let all32 = names.flatMap { fp32.gradients[$0]! }, all16 = names.flatMap { bf16.gradients[$0]! }
        let overall = cosine(all32, all16), total = norm(all32)
        print("\(fixture): gradient cosine over all parameters \(overall)")
        XCTAssertGreaterThanOrEqual(overall, 0.999, fixture)
        var worst = (1.0, "")
        for n in names {
            let a = fp32.gradients[n]!, b = bf16.gradients[n]!
            // The attention key bias has no gradient (softmax ignores a shift shared by every
            // key): both precisions leave rounding noise, whose direction means nothing. Such a
            // tensor must stay noise in bf16 too.
            if norm(a) < 1e-6 * total {
                XCTAssertLessThan(norm(b), 1e-4 * total, "\(fixture) \(n): zero gradient in fp32, not in bf16")
                continue
            }
            let c = cosine(a, b)
            if c < worst.0 { worst = (c, n) }
            XCTAssertGreaterThanOrEqual(c, 0.99, "\(fixture) \(n)")
        }
        print("\(fixture): lowest per-tensor gradient cosine \(worst.0) (\(worst.1))")
    }

    func testBERTStudent() throws { try check("distill-step-bert") }
    func testALBERTStudent() throws { try check("distill-step-albert") }

    /// Resuming a bf16 run gives the same numbers as not stopping (the copies are remade from
    /// the fp32 master weights); a bf16 teacher step matches itself run to run.
    func testBF16CopiesFollowTheMasterWeights() throws {
        let model = try HuggingFaceFolder.load(Fixtures.path("tiny-bert-mlm")).model
        model.convertMatricesToBF16()
        let ref = try SafetensorsFile(path: Fixtures.path("tiny-bert-mlm/reference.safetensors"))
        let batch = try TokenBatch.read(from: ref)
        let before = try model.referenceOutputs(batch)
        // Change a weight: the bf16 copy only follows after refresh.
        let w = model.layout.attention[0].qkvWeight
        model.parameters.base[w] += 1
        XCTAssertEqual(try model.referenceOutputs(batch).map(\.floats), before.map(\.floats))
        model.refreshMatrices()
        XCTAssertNotEqual(try model.referenceOutputs(batch).map(\.floats), before.map(\.floats))
        model.parameters.base[w] -= 1
        model.refreshMatrices()
        XCTAssertEqual(try model.referenceOutputs(batch).map(\.floats), before.map(\.floats))
    }

    /// oneDNN's bf16 call sites (strides of the forward product and of both backward products,
    /// accumulation) give the products the portable path gives: with its bf16 kernels where the
    /// CPU has them (AVX512-BF16, AMX), elsewhere with fp32 operands holding bf16 values. Either
    /// way the operands are the same bf16 values and only the summation order differs.
    func testOneDNNCallSitesMatchThePortablePath() throws {
        try Fixtures.requireOneDNN()
        defer { BF16Matrix.testPath = nil }
        BF16Matrix.testPath = .rounded
        let portable = try step("distill-step-bert", bf16: true)
        BF16Matrix.testPath = OneDNN.bf16 ? .onednnBF16 : .onednnF32
        let (ran, refused) = (BF16Matrix.oneDNNRan.load(ordering: .relaxed), BF16Matrix.oneDNNRefused.load(ordering: .relaxed))
        let viaOneDNN = try step("distill-step-bert", bf16: true)
        XCTAssertGreaterThan(BF16Matrix.oneDNNRan.load(ordering: .relaxed), ran, "oneDNN ran none of the products")
        XCTAssertEqual(BF16Matrix.oneDNNRefused.load(ordering: .relaxed), refused, "oneDNN refused products, which sgemm ran instead")
        XCTAssertEqual(viaOneDNN.losses.total, portable.losses.total, accuracy: 1e-5 * abs(portable.losses.total))
        for (name, g) in portable.gradients {
            let c = cosine(g, viaOneDNN.gradients[name]!)
            if norm(g) > 1e-6 { XCTAssertGreaterThan(c, 0.99999, name) }
        }
    }
}
