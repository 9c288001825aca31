/// Parameter counts broken down by component, stored (shared weights once) and applied (shared
/// weights once per use in a forward pass).
public struct ParameterBreakdown: Codable, Sendable, Equatable {
    public struct Component: Codable, Sendable, Equatable {
        public let name: String
        public let stored: Int
        public let applied: Int
    }
    public let name: String
    public let components: [Component]
    public var total: Int { components.reduce(0) { $0 + $1.stored } }
    public var applied: Int { components.reduce(0) { $0 + $1.applied } }

    /// The component order of every table.
    public static let order: [ParameterGroup] = [
        .wordEmbeddings, .positionEmbeddings, .typeEmbeddings, .embeddingProjection,
        .attention, .ffn, .layerNorm, .pooler, .mlmHead, .classifier,
    ]

    public init(name: String, components: [Component]) {
        self.name = name; self.components = components
    }

    /// The breakdown of an encoder's layout.
    public init(name: String, layout: ParameterLayout) {
        var attentionUses: [Int: Int] = [:], ffnUses: [Int: Int] = [:]
        for s in layout.steps { attentionUses[s.attention, default: 0] += 1; ffnUses[s.ffn, default: 0] += 1 }
        var stored: [ParameterGroup: Int] = [:], applied: [ParameterGroup: Int] = [:]
        for slot in layout.slots where slot.group != .distillProjection {
            var uses = 1
            let parts = slot.name.split(separator: ".")
            if parts.count > 1, let i = Int(parts[1]) {
                if parts[0] == "attention" { uses = attentionUses[i] ?? 0 }
                if parts[0] == "ffn" { uses = ffnUses[i] ?? 0 }
            }
            stored[slot.group, default: 0] += slot.count
            applied[slot.group, default: 0] += slot.count * uses
        }
        self.init(name: name, components: Self.order.map {
            Component(name: $0.rawValue, stored: stored[$0] ?? 0, applied: applied[$0] ?? 0)
        })
    }
}

/// GPT-style decoders, for comparing parameter counts only (Distillery does not run them).
public struct DecoderShape: Sendable, Equatable {
    public let vocabSize: Int, positions: Int, hiddenSize: Int, layers: Int
    /// GPT-2 has a final LayerNorm; the original GPT does not.
    public let finalLayerNorm: Bool

    /// Per layer: LayerNorm, fused QKV and output projections, LayerNorm, a 4H MLP. The LM
    /// head is tied to the token embeddings, so it adds nothing.
    public func breakdown(name: String) -> ParameterBreakdown {
        let H = hiddenSize, L = layers
        let attention = L * (H * 3 * H + 3 * H + H * H + H)
        let ffn = L * (H * 4 * H + 4 * H + 4 * H * H + H)
        let norms = L * 4 * H + (finalLayerNorm ? 2 * H : 0)
        let values: [ParameterGroup: Int] = [.wordEmbeddings: vocabSize * H, .positionEmbeddings: positions * H,
                                             .attention: attention, .ffn: ffn, .layerNorm: norms]
        return ParameterBreakdown(name: name, components: ParameterBreakdown.order.map {
            .init(name: $0.rawValue, stored: values[$0] ?? 0, applied: values[$0] ?? 0)
        })
    }
}

/// Well-known model shapes, by their Hugging Face names.
public enum Presets {
    public enum Shape: Sendable {
        case encoder(EncoderConfig)
        case decoder(DecoderShape)
    }

    /// `withHead` picks the *ForMaskedLM class (MLM head, no pooler) over the base class
    /// (pooler, no head), the two forms Hugging Face counts.
    public static func shape(_ name: String, withHead: Bool) -> Shape? {
        func bert(_ H: Int, _ L: Int, _ NH: Int, _ I: Int) -> EncoderConfig {
            EncoderConfig(family: .bert, vocabSize: 30522, hiddenSize: H, numLayers: L, numHeads: NH,
                          intermediateSize: I, hasMLMHead: withHead, hasPooler: !withHead)
        }
        func albert(_ H: Int, _ L: Int, _ NH: Int, _ I: Int) -> EncoderConfig {
            EncoderConfig(family: .albert, vocabSize: 30000, hiddenSize: H, embeddingSize: 128, numLayers: L,
                          numHeads: NH, intermediateSize: I, activation: .geluTanh, sharing: .groups(count: 1, inner: 1),
                          hiddenDropout: 0, attentionDropout: 0, hasMLMHead: withHead, hasPooler: !withHead)
        }
        switch name {
        case "bert-base-uncased": return .encoder(bert(768, 12, 12, 3072))
        case "bert-large-uncased": return .encoder(bert(1024, 24, 16, 4096))
        case "all-MiniLM-L6-v2": return .encoder(bert(384, 6, 12, 1536))
        case "distilbert-base-uncased":
            return .encoder(EncoderConfig(family: .distilbert, vocabSize: 30522, hiddenSize: 768, numLayers: 6, numHeads: 12,
                                          intermediateSize: 3072, typeVocabSize: 0, hasMLMHead: withHead, hasPooler: false))
        case "albert-base-v2": return .encoder(albert(768, 12, 12, 3072))
        case "albert-large-v2": return .encoder(albert(1024, 24, 16, 4096))
        case "albert-xlarge-v2": return .encoder(albert(2048, 24, 16, 8192))
        case "albert-xxlarge-v2": return .encoder(albert(4096, 12, 64, 16384))
        case "gpt2": return .decoder(DecoderShape(vocabSize: 50257, positions: 1024, hiddenSize: 768, layers: 12, finalLayerNorm: true))
        case "gpt2-medium": return .decoder(DecoderShape(vocabSize: 50257, positions: 1024, hiddenSize: 1024, layers: 24, finalLayerNorm: true))
        case "gpt2-large": return .decoder(DecoderShape(vocabSize: 50257, positions: 1024, hiddenSize: 1280, layers: 36, finalLayerNorm: true))
        case "gpt2-xl": return .decoder(DecoderShape(vocabSize: 50257, positions: 1024, hiddenSize: 1600, layers: 48, finalLayerNorm: true))
        case "openai-gpt": return .decoder(DecoderShape(vocabSize: 40478, positions: 512, hiddenSize: 768, layers: 12, finalLayerNorm: false))
        default: return nil
        }
    }

    public static let names = ["bert-base-uncased", "bert-large-uncased", "distilbert-base-uncased", "albert-base-v2",
                               "albert-large-v2", "albert-xlarge-v2", "albert-xxlarge-v2", "all-MiniLM-L6-v2",
                               "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "openai-gpt"]
}

extension EncoderConfig {
    /// Floating-point operations of one encoder forward pass over B × S tokens (a multiply-add
    /// counts 2): the linear layers, the attention products, and ALBERT's projection.
    public func forwardFLOPs(B: Int, S: Int) -> Double {
        let N = Double(B * S), H = Double(hiddenSize), I = Double(intermediateSize)
        let steps = Double(ParameterLayout(config: self).steps.count)
        let linear = 2 * N * (4 * H * H + 2 * H * I)
        let attention = 2 * 2 * Double(B) * Double(S) * Double(S) * H
        let projection = hasEmbeddingProjection ? 2 * N * Double(embeddingSize) * H : 0
        return steps * (linear + attention) + projection
    }
}
