import Foundation
import DistilleryTensor
import DistilleryModels

/// Activation smoothing (SmoothQuant): for a linear layer whose input has a few channels much
/// larger than the rest, one scale per token (set by those channels) leaves the other channels
/// only a few int8 levels. Dividing input channel j by s_j = max|X_j|^α / max_n |W_nj|^(1−α)
/// and multiplying weight column j by s_j leaves the product unchanged and spreads the range
/// between activations and weights.
///
/// The ranges max|X_j| come from the model itself run on random token ids: BERT's large
/// channels are a property of the weights, visible whatever the text, so no calibration data
/// is needed (and the result is deterministic).
public enum Smoothing {
    public static let alpha: Float = 0.5

    /// Per-channel max |x| of every linear input on two batches of 8 × 128 random tokens.
    public static func selfCalibratedRanges(_ model: EncoderModel, seed: UInt64 = 0x5EED) throws -> [LinearInput: [Float]] {
        let c = model.config
        var rng = SplitMix64(seed: seed)
        let S = min(128, c.maxPositions), B = 8
        let low = c.vocabSize > 4000 ? 1000 : 0
        let batches = (0..<2).map { _ -> TokenBatch in
            let ids = (0..<(B * S)).map { _ in Int32(low + Int(rng.next() % UInt64(c.vocabSize - low))) }
            return TokenBatch(B: B, S: S, inputIds: ids, attentionMask: [Float](repeating: 1, count: B * S),
                              tokenTypes: c.hasTokenTypes ? [Int32](repeating: 0, count: B * S) : nil)
        }
        return try observeRanges(model, batches: batches)
    }

    /// The weight slots reading `input`.
    public static func slotNames(_ input: LinearInput) -> [String] {
        switch input {
        case .qkv(let i): return ["query", "key", "value"].map { "attention.\(i).\($0).weight" }
        case .attentionOutput(let i): return ["attention.\(i).output.weight"]
        case .ffnInput(let i): return ["ffn.\(i).intermediate.weight"]
        case .ffnOutput(let i): return ["ffn.\(i).output.weight"]
        case .headTransform: return ["head.transform.weight"]
        }
    }

    /// The `k` channels of an input with the widest ranges `a` after dividing by the smoothing
    /// factors (nil: none), ascending; ties go to the lower channel.
    public static func outlierChannels(ranges a: [Float], smoothing: [Float]?, k: Int) -> [Int32] {
        let width = a.indices.map { j in a[j] / (smoothing?[j] ?? 1) }
        let order = width.indices.sorted { width[$0] != width[$1] ? width[$0] > width[$1] : $0 < $1 }
        return order.prefix(min(k, a.count)).sorted().map { Int32($0) }
    }
}

extension QuantizationScheme.Input {
    /// The scheme's name for a layer input of the schedule.
    public init(_ input: LinearInput) {
        switch input {
        case .qkv: self = .qkv
        case .attentionOutput: self = .attentionOutput
        case .ffnInput: self = .ffnInput
        case .ffnOutput: self = .ffnOutput
        case .headTransform: self = .headTransform
        }
    }
}

extension Smoothing {
    /// SmoothQuant factors from observed activation ranges: for each linear input, s_j =
    /// max|X_j|^α / max_n |W_nj|^(1−α), shared by the matrices reading that input.
    public static func factors(_ model: EncoderModel, ranges: [LinearInput: [Float]], alpha: Float) -> [String: [Float]] {
        let L = model.layout
        var out: [String: [Float]] = [:]
        for (input, a) in ranges {
            let slots = slotNames(input).compactMap { L.slot($0) }
            guard !slots.isEmpty else { continue }
            let K = a.count
            var wmax = [Float](repeating: 0, count: K)
            for s in slots {
                let p = model.p(s.offset)
                for r in 0..<s.shape[0] { for j in 0..<K { wmax[j] = max(wmax[j], abs(p[r * K + j])) } }
            }
            let f = (0..<K).map { j -> Float in
                guard a[j] > 0, wmax[j] > 0 else { return 1 }
                return min(1e3, max(1e-3, pow(a[j], alpha) / pow(wmax[j], 1 - alpha)))
            }
            for s in slots { out[s.name] = f }
        }
        return out
    }

    /// Per-channel max |x| of every linear layer's input over the given batches. A model whose
    /// activations overflow (NaN or ∞) has no ranges to quantize by: refused, naming the input.
    public static func observeRanges(_ model: EncoderModel, batches: [TokenBatch]) throws -> [LinearInput: [Float]] {
        var ranges: [LinearInput: [Float]] = [:]
        var overflow: LinearInput?
        for b in batches {
            let acts = try EncoderActivations(model: model, maxB: b.B, maxS: b.S, training: false)
            let observe: ActivationObserver = { input, x, rows, cols in
                var r = ranges[input] ?? [Float](repeating: 0, count: cols)
                for n in 0..<rows where b.attentionMask[n] != 0 {
                    for j in 0..<cols {
                        let v = abs(x[n * cols + j])
                        if !v.isFinite { overflow = overflow ?? input }
                        r[j] = max(r[j], v)
                    }
                }
                ranges[input] = r
            }
            try model.forward(b, acts, observer: observe)
            model.forwardHeadTransform(acts, observer: observe)
            if let input = overflow { throw InputError.nonFiniteOutput(name: "the input of \(input.description) on the calibration tokens") }
        }
        return ranges
    }
}
