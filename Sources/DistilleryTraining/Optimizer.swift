import Foundation
import DistilleryTensor
import DistilleryModels

/// Which parameters get weight decay.
public enum DecayRule: Sendable, Equatable, Codable {
    /// None on biases and LayerNorm weights (by what each parameter is).
    case biasesAndNorms
    /// None on parameters whose Hugging Face name contains any of these strings, as the
    /// DistilBERT distiller decides ("bias", "LayerNorm.weight": this leaves ALBERT's
    /// full_layer_layer_norm and DistilBERT's *_layer_norm weights decayed, as there).
    case namePatterns([String])
}

/// AdamW over the trainable parameters: moments in two buffers with the parameters' slot table.
public final class AdamW: @unchecked Sendable {
    public let settings: AdamWSettings
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Updates taken so far.
    public var step = 0
    /// Per slot of the layout: whether weight decay applies.
    public let decay: [Bool]
    /// Per slot: whether it is updated (all by default; fitting a head freezes the encoder).
    public var trainable: [Bool]
    let layout: ParameterLayout

    public init(layout: ParameterLayout, settings: AdamWSettings, rule: DecayRule) {
        self.settings = settings
        self.layout = layout
        m = FloatBuffer(count: layout.count)
        v = FloatBuffer(count: layout.count)
        trainable = [Bool](repeating: true, count: layout.slots.count)
        switch rule {
        case .biasesAndNorms:
            decay = layout.slots.map(\.decay)
        case .namePatterns(let patterns):
            let model = ParameterLayout(config: layout.config)
            let hf = HuggingFaceNames(layout: model).fileNames()
            decay = layout.slots.map { slot in
                let name = hf[slot.name] ?? slot.name
                return !patterns.contains { name.contains($0) }
            }
        }
    }

    /// One update with learning rate `lr` from the gradients.
    public func update(parameters: FloatBuffer, gradients: FloatBuffer, lr: Float) {
        step += 1
        for (i, s) in layout.slots.enumerated() where trainable[i] {
            adamWUpdate(p: parameters.base + s.offset, g: gradients.base + s.offset, m: m.base + s.offset,
                        v: v.base + s.offset, count: s.count, lr: lr, step: step, decay: decay[i], settings)
        }
    }
}

/// Learning rate: linear warm-up from 0 to the peak, then linear decay to 0 at the last step
/// (transformers' get_linear_schedule_with_warmup, which the distiller uses).
public struct LinearSchedule: Sendable, Equatable, Codable {
    public let peak: Float
    public let warmupSteps: Int
    public let totalSteps: Int
    public init(peak: Float, warmupSteps: Int, totalSteps: Int) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    /// The rate for update number `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step) / Float(max(1, warmupSteps)) }
        return peak * max(0, Float(totalSteps - step) / Float(max(1, totalSteps - warmupSteps)))
    }
}

/// Scales gradients so their global L2 norm is at most `maxNorm` (PyTorch's clip_grad_norm_:
/// coefficient maxNorm / (norm + 1e-6), capped at 1). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ g: FloatBuffer, count: Int, maxNorm: Float?) -> Double {
    let norm = sumOfSquares(g.base, count: count).squareRoot()
    if let maxNorm, maxNorm > 0 {
        let coef = Double(maxNorm) / (norm + 1e-6)
        if coef < 1 { scale(g.base, count: count, by: Float(coef)) }
    }
    return norm
}
