import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels

/// The settings of a fixture's step.json: temperature, alphas and AdamW.
public struct StepSettings: Decodable, Sendable {
    public struct AdamWJSON: Decodable, Sendable {
        public var lr: Float
        public var betas: [Float]
        public var eps: Float
        public var weight_decay: Float
        public var no_decay: [String]?
    }
    public var temperature: Float
    public var alpha_ce: Float
    public var alpha_mlm: Float
    public var alpha_cos: Float
    public var adamw: AdamWJSON

    public static func load(_ path: String) throws -> StepSettings {
        let s: StepSettings
        do { s = try JSONDecoder().decode(StepSettings.self, from: try readFile(path)) } catch let e as DecodingError {
            throw ConfigError.unreadable(path: path, reason: describe(e))
        }
        try s.check(path: path)
        return s
    }

    /// Ranges that keep the step finite: T > 0, weights ≥ 0, AdamW's betas in [0, 1), eps > 0.
    func check(path: String) throws {
        func bad(_ field: String, _ why: String) -> ConfigError { .invalid(path: path, field: field, reason: why) }
        if !(temperature > 0 && temperature <= 1000) { throw bad("temperature", "must be in (0, 1000], got \(temperature)") }
        for (f, v) in [("alpha_ce", alpha_ce), ("alpha_mlm", alpha_mlm), ("alpha_cos", alpha_cos)] where !(v >= 0 && v.isFinite) {
            throw bad(f, "must be a finite number ≥ 0, got \(v)")
        }
        if !(adamw.lr >= 0 && adamw.lr <= 10) { throw bad("adamw.lr", "must be in [0, 10], got \(adamw.lr)") }
        if adamw.betas.count != 2 || !adamw.betas.allSatisfy({ $0 >= 0 && $0 < 1 }) {
            throw bad("adamw.betas", "two numbers in [0, 1), got \(adamw.betas)")
        }
        if !(adamw.eps > 0 && adamw.eps <= 1) { throw bad("adamw.eps", "must be in (0, 1], got \(adamw.eps)") }
        if !(adamw.weight_decay >= 0 && adamw.weight_decay <= 10) { throw bad("adamw.weight_decay", "must be in [0, 10], got \(adamw.weight_decay)") }
    }

    public var losses: LossSettings {
        var l = LossSettings()
        l.temperature = temperature; l.alphaCE = alpha_ce; l.alphaMLM = alpha_mlm; l.alphaCos = alpha_cos
        l.alphaMSE = 0; l.alphaHidden = 0; l.restrictCEToMask = false
        return l
    }

    public var optimizer: AdamWSettings {
        AdamWSettings(beta1: adamw.betas.first ?? 0.9, beta2: adamw.betas.count > 1 ? adamw.betas[1] : 0.999,
                      eps: adamw.eps, weightDecay: adamw.weight_decay)
    }
}

/// `distill debug-step`: one distillation step on a fixed batch, without dropout, reporting
/// the losses, every gradient and the parameters after one AdamW step, under the names the
/// reference fixtures use.
public enum DebugStep {
    public static func run(teacher: EncoderModel, student: EncoderModel, batch source: TensorSource,
                           settings: StepSettings) throws -> [OwnedTensor] {
        let batch = try TokenBatch.read(from: source)
        guard let labelsInfo = source.info("mlm_labels"), labelsInfo.shape == [batch.B, batch.S] else {
            throw BatchFileError.missing(file: source.path, tensor: "mlm_labels")
        }
        let labels = try source.integers("mlm_labels").enumerated().map { i, v -> Int32 in
            guard let l = Int32(exactly: v) else {
                throw InputError.tokenOutOfRange(name: "\(source.path): mlm_labels", index: i, value: v, limit: student.config.vocabSize)
            }
            return l
        }
        try DistillationStep.checkLabels(labels, count: batch.B * batch.S, vocabulary: student.config.vocabSize,
                                         source: "\(source.path): mlm_labels")
        let params = TrainableParameters(model: student, projectTo: nil)
        let step = try DistillationStep(teacher: teacher, params: params, settings: settings.losses, maxB: batch.B, maxS: batch.S)
        let losses = try step.run(batch, labels: labels)
        // Large loss weights (up to Float's range pass the settings check) can overflow: refuse
        // to write a reference holding infinities.
        for (name, v) in [("loss_ce", losses.ce), ("loss_mlm", losses.mlm), ("loss_cos", losses.cos), ("loss_total", losses.total)] where !v.isFinite {
            throw DistillationError.nonFinite(step: 1, loss: name)
        }
        func finite(_ b: FloatBuffer) -> Bool {
            let p = b.base
            for i in 0..<b.count where !p[i].isFinite { return false }
            return true
        }
        if !finite(params.gradients) { throw DistillationError.nonFinite(step: 1, loss: "a gradient") }
        var out: [OwnedTensor] = [
            OwnedTensor(name: "loss_ce.all_tokens", shape: [1], floats: [Float(losses.ce)]),
            OwnedTensor(name: "loss_ce.masked_only", shape: [1], floats: [Float(losses.ceMaskedOnly)]),
            OwnedTensor(name: "loss_mlm", shape: [1], floats: [Float(losses.mlm)]),
            OwnedTensor(name: "loss_cos", shape: [1], floats: [Float(losses.cos)]),
            OwnedTensor(name: "loss_total", shape: [1], floats: [Float(losses.total)]),
        ]
        let m = params.student
        let table = HuggingFaceNames(layout: m.layout)
        func named(_ prefix: String, _ buffer: FloatBuffer) -> [OwnedTensor] {
            table.pairs.map { ours, hf in
                let slot = m.layout.slot(ours)!
                return OwnedTensor(name: prefix + table.fileName(hf), shape: slot.shape,
                                   floats: Array(UnsafeBufferPointer(start: buffer.base + slot.offset, count: slot.count)))
            }
        }
        out += named("grad.", params.gradients)
        let opt = AdamW(layout: params.layout, settings: settings.optimizer,
                        rule: .namePatterns(settings.adamw.no_decay ?? ["bias", "LayerNorm.weight"]))
        opt.update(parameters: params.parameters, gradients: params.gradients, lr: settings.adamw.lr)
        if !finite(params.parameters) { throw DistillationError.nonFinite(step: 1, loss: "a parameter after the AdamW step") }
        out += named("after_step.", params.parameters)
        return out
    }
}
