import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant
import DistilleryTraining

/// Sequence-classification heads of each family against PyTorch (make_classifier_fixtures.py):
/// hidden states, the pooled vector and the logits within 1e-4; the loss within 1e-5 relative;
/// every gradient within 1e-4 (scaled by max(1, max |reference|)); one AdamW step within 1e-5
/// where the gradient is not rounding noise. And one task-distillation step (soft class targets
/// at T, hard labels, cosine on hidden states).
final class ClassifierTests: XCTestCase {
    func step(_ fixture: String, teacher: String?, settings: LossSettings) throws -> (TrainableParameters, LossValues, SafetensorsFile) {
        let dir = Fixtures.path(fixture)
        let ref = try SafetensorsFile(path: dir + "/reference.safetensors")
        let batch = try TokenBatch.read(from: ref)
        let labels = try ref.integers("labels").map { Int32($0) }
        let student = try HuggingFaceFolder.load(dir).model
        XCTAssertEqual(student.config.numLabels, 3)
        let t = try teacher.map { try HuggingFaceFolder.load(Fixtures.path($0)).model }
        let params = TrainableParameters(model: student, projectTo: nil)
        let step = try DistillationStep(teacher: t, params: params, settings: settings, maxB: batch.B, maxS: batch.S)
        let values = try step.run(batch, labels: [], classLabels: labels)
        return (params, values, ref)
    }

    func checkGradients(_ params: TrainableParameters, _ ref: SafetensorsFile, _ fixture: String) throws {
        let m = params.student, table = HuggingFaceNames(layout: m.layout)
        var worst: Float = 0
        for (ours, hf) in table.pairs {
            let slot = m.layout.slot(ours)!
            let name = "grad." + table.fileName(hf)
            let expected = try ref.floats(name)
            let got = Array(UnsafeBufferPointer(start: params.gradients.base + slot.offset, count: slot.count))
            let d = maxAbsDifference(got, expected) / max(1, expected.map(abs).max() ?? 0)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-4, "\(fixture) \(name)")
        }
        print("\(fixture): worst scaled gradient difference \(worst)")
    }

    func checkClassifier(_ fixture: String) throws {
        let dir = Fixtures.path(fixture)
        let model = try HuggingFaceFolder.load(dir).model
        let ref = try SafetensorsFile(path: dir + "/reference.safetensors")
        let batch = try TokenBatch.read(from: ref)
        // Forward: every hidden state, the pooled vector and the logits.
        let a = try EncoderActivations(model: model, maxB: batch.B, maxS: batch.S, training: false)
        var hidden: [[Float]] = []
        try model.forward(batch, a, onHiddenState: { _, h in hidden.append(Array(UnsafeBufferPointer(start: h, count: batch.B * batch.S * model.config.hiddenSize))) })
        for (i, h) in hidden.enumerated() {
            XCTAssertLessThanOrEqual(maxAbsDifference(h, try ref.floats("hidden_states.\(i)")), 1e-4, "\(fixture) hidden_states.\(i)")
        }
        model.forwardClassifier(a)
        let logits = Array(UnsafeBufferPointer(start: model.classifierLogits(a), count: batch.B * 3))
        XCTAssertLessThanOrEqual(maxAbsDifference(logits, try ref.floats("logits")), 1e-4, "\(fixture) logits")
        let pooled = Array(UnsafeBufferPointer(start: a.pooledOutput, count: batch.B * model.config.hiddenSize))
        XCTAssertLessThanOrEqual(maxAbsDifference(pooled, try ref.floats("pooled")), 1e-4, "\(fixture) pooled")

        // Loss and gradients of fine-tuning on the labels.
        let (params, values, _) = try step(fixture, teacher: nil, settings: .labelsOnly)
        let loss = Double(try ref.floats("loss")[0])
        XCTAssertEqual(values.hard, loss, accuracy: 1e-5 * abs(loss), fixture)
        XCTAssertEqual(values.total, loss, accuracy: 1e-5 * abs(loss), fixture)
        try checkGradients(params, ref, fixture)

        // One AdamW step (no decay on biases and LayerNorm weights, by name as the script groups them).
        let opt = AdamW(layout: params.layout, settings: AdamWSettings(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01),
                        rule: .namePatterns(["bias", "LayerNorm.weight", "layer_norm.weight"]))
        opt.update(parameters: params.parameters, gradients: params.gradients, lr: 1e-3)
        let m = params.student, table = HuggingFaceNames(layout: m.layout)
        for (ours, hf) in table.pairs {
            let slot = m.layout.slot(ours)!
            let name = table.fileName(hf)
            let expected = try ref.floats("after_step." + name), g = try ref.floats("grad." + name)
            for i in 0..<slot.count {
                let d = abs(params.parameters.base[slot.offset + i] - expected[i])
                // Where PyTorch's gradient is rounding noise (the key bias), Adam moves by ≤ lr.
                XCTAssertLessThanOrEqual(d, abs(g[i]) >= 1e-4 ? 1e-5 : 1.001e-3, "\(fixture) after_step.\(name)[\(i)]")
            }
        }
    }

    func testBERTClassifier() throws { try checkClassifier("classifier-bert") }
    func testDistilBERTClassifier() throws { try checkClassifier("classifier-distilbert") }
    func testALBERTClassifier() throws { try checkClassifier("classifier-albert") }

    func testTaskDistillationStep() throws {
        var s = LossSettings()
        s.temperature = 2; s.alphaCE = 0; s.alphaMLM = 0; s.alphaSoft = 0.7; s.alphaHard = 0.3; s.alphaCos = 0.5
        let (params, values, ref) = try step("task-distill-bert", teacher: "classifier-bert", settings: s)
        for (name, v) in [("loss_soft", values.soft), ("loss_hard", values.hard), ("loss_cos", values.cos), ("loss_total", values.total)] {
            let expected = Double(try ref.floats(name)[0])
            XCTAssertEqual(v, expected, accuracy: 1e-5 * abs(expected), name)
        }
        try checkGradients(params, ref, "task-distill-bert")
    }

    /// A classifier exported as a Hugging Face folder loads in transformers as the family's
    /// *ForSequenceClassification and gives the same logits (within 1e-4).
    func testExportToTransformers() throws {
        guard ExportTests.pythonHas("torch, transformers, safetensors") else {
            print("SKIPPED: python3 with torch and transformers is not available")
            return
        }
        var models: [(name: String, model: EncoderModel, batch: String)] = []
        for f in ["classifier-bert", "classifier-distilbert", "classifier-albert"] {
            models.append((f, try HuggingFaceFolder.load(Fixtures.path(f)).model, Fixtures.path(f + "/reference.safetensors")))
        }
        try ExportTests.checkWithTransformers(models)
    }
}
