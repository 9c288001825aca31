/// The two-way table between Distillery's parameter names and Hugging Face tensor names, one
/// per model family.
///
/// Hugging Face names are kept without the base-model prefix (`bert.`, `albert.`,
/// `distilbert.`); `prefixed` adds it where Hugging Face's *ForMaskedLM classes write it.
public struct HuggingFaceNames: Sendable {
    public let family: ModelFamily
    /// Whether file names carry the family's prefix (models with a task head).
    public let prefixesEncoder: Bool
    /// (our slot name, Hugging Face name), in slot order. With `unrolled`, a shared block
    /// appears under several Hugging Face names.
    public let pairs: [(ours: String, hf: String)]
    private let toOursIndex: [String: String]

    /// The table for `layout`. `unrolled` maps every applied layer of an ALBERT model with
    /// attention-only or FFN-only sharing to its own Hugging Face layer group, the form
    /// Hugging Face can load.
    public init(layout: ParameterLayout, unrolled: Bool = false) {
        let c = layout.config
        family = c.family
        prefixesEncoder = c.prefixesEncoder
        var pairs: [(String, String)] = []
        func add(_ ours: String, _ hf: String) { pairs.append((ours, hf)) }

        // Embeddings
        add("embeddings.word", "embeddings.word_embeddings.weight")
        add("embeddings.position", "embeddings.position_embeddings.weight")
        if c.hasTokenTypes { add("embeddings.token_type", "embeddings.token_type_embeddings.weight") }
        add("embeddings.norm.weight", "embeddings.LayerNorm.weight")
        add("embeddings.norm.bias", "embeddings.LayerNorm.bias")
        if c.hasEmbeddingProjection {
            add("embeddings.projection.weight", "encoder.embedding_hidden_mapping_in.weight")
            add("embeddings.projection.bias", "encoder.embedding_hidden_mapping_in.bias")
        }

        // Transformer blocks: (our attention block, our ffn block, Hugging Face layer prefix)
        var blocks: [(a: Int, f: Int, hf: String)] = []
        switch c.family {
        case .bert:
            blocks = (0..<layout.attention.count).map { ($0, $0, "encoder.layer.\($0).") }
        case .distilbert:
            blocks = (0..<layout.attention.count).map { ($0, $0, "transformer.layer.\($0).") }
        case .albert:
            switch c.sharing {
            case let .groups(_, inner):
                blocks = (0..<layout.attention.count).map {
                    ($0, $0, "encoder.albert_layer_groups.\($0 / inner).albert_layers.\($0 % inner).")
                }
            case .none:
                blocks = (0..<c.numLayers).map { ($0, $0, "encoder.albert_layer_groups.\($0).albert_layers.0.") }
            case .attention, .ffn:
                if unrolled {
                    blocks = layout.steps.enumerated().map { ($1.attention, $1.ffn, "encoder.albert_layer_groups.\($0).albert_layers.0.") }
                } else {
                    // Distillery's own checkpoints keep the sharing: block b lives in group b.
                    let n = max(layout.attention.count, layout.ffn.count)
                    blocks = (0..<n).map { (min($0, layout.attention.count - 1), min($0, layout.ffn.count - 1),
                                            "encoder.albert_layer_groups.\($0).albert_layers.0.") }
                }
            }
        }
        var seenAttention = Set<Int>(), seenFFN = Set<Int>()
        let sharedOnce = c.family == .albert && !unrolled && (c.sharing == .attention || c.sharing == .ffn)
        for (a, f, p) in blocks {
            if !sharedOnce || seenAttention.insert(a).inserted {
                let o = "attention.\(a)."
                let names: [String]
                switch c.family {
                case .bert: names = ["attention.self.query", "attention.self.key", "attention.self.value",
                                     "attention.output.dense", "attention.output.LayerNorm"]
                case .distilbert: names = ["attention.q_lin", "attention.k_lin", "attention.v_lin",
                                           "attention.out_lin", "sa_layer_norm"]
                case .albert: names = ["attention.query", "attention.key", "attention.value",
                                       "attention.dense", "attention.LayerNorm"]
                }
                for (ours, hf) in zip(["query", "key", "value", "output", "norm"], names) {
                    add(o + ours + ".weight", p + hf + ".weight")
                    add(o + ours + ".bias", p + hf + ".bias")
                }
            }
            if !sharedOnce || seenFFN.insert(f).inserted {
                let o = "ffn.\(f)."
                let names: [String]
                switch c.family {
                case .bert: names = ["intermediate.dense", "output.dense", "output.LayerNorm"]
                case .distilbert: names = ["ffn.lin1", "ffn.lin2", "output_layer_norm"]
                case .albert: names = ["ffn", "ffn_output", "full_layer_layer_norm"]
                }
                for (ours, hf) in zip(["intermediate", "output", "norm"], names) {
                    add(o + ours + ".weight", p + hf + ".weight")
                    add(o + ours + ".bias", p + hf + ".bias")
                }
            }
        }

        if c.hasPooler {
            switch c.family {
            case .bert: add("pooler.weight", "pooler.dense.weight"); add("pooler.bias", "pooler.dense.bias")
            case .albert: add("pooler.weight", "pooler.weight"); add("pooler.bias", "pooler.bias")
            case .distilbert: add("pooler.weight", "pre_classifier.weight"); add("pooler.bias", "pre_classifier.bias")
            }
        }
        if c.hasClassifier {
            add("classifier.weight", "classifier.weight")
            add("classifier.bias", "classifier.bias")
        }
        if c.hasMLMHead {
            let h = Self.headNames(c.family)
            add("head.transform.weight", h.transform + ".weight")
            add("head.transform.bias", h.transform + ".bias")
            add("head.norm.weight", h.norm + ".weight")
            add("head.norm.bias", h.norm + ".bias")
            add("head.bias", h.bias)
        }
        self.pairs = pairs
        var rev: [String: String] = [:]
        for (o, h) in pairs { rev[h] = o }
        toOursIndex = rev
    }

    public func ours(forHF name: String) -> String? { toOursIndex[name] }

    /// Our slot name → the name a file of this model stores it under (the first, for shared
    /// slots in an unrolled table).
    public func fileNames() -> [String: String] {
        var out: [String: String] = [:]
        for (o, h) in pairs where out[o] == nil { out[o] = fileName(h) }
        return out
    }

    /// The name a file of this model stores the Hugging Face tensor `hf` under.
    public func fileName(_ hf: String) -> String { prefixed(hf, withHead: prefixesEncoder) }

    /// The Hugging Face names of the MLM head, and the names under which Hugging Face may also
    /// store the tied decoder (weight = word embeddings, bias = the head bias).
    public static func headNames(_ f: ModelFamily) -> (transform: String, norm: String, bias: String,
                                                        decoderWeight: String, decoderBias: String?) {
        switch f {
        case .bert: return ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                            "cls.predictions.bias", "cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
        case .distilbert: return ("vocab_transform", "vocab_layer_norm", "vocab_projector.bias",
                                  "vocab_projector.weight", nil)
        case .albert: return ("predictions.dense", "predictions.LayerNorm", "predictions.bias",
                              "predictions.decoder.weight", "predictions.decoder.bias")
        }
    }

    /// Whether a (prefix-free) name belongs to the sequence-classification head (stored at the
    /// top level, unprefixed).
    public static func isClassifierName(_ name: String) -> Bool { name.hasPrefix("classifier.") || name.hasPrefix("pre_classifier.") }

    /// Whether a (prefix-free) name belongs to the MLM head.
    public static func isHeadName(_ name: String, family: ModelFamily) -> Bool {
        switch family {
        case .bert: return name.hasPrefix("cls.predictions.")
        case .distilbert: return name.hasPrefix("vocab_")
        case .albert: return name.hasPrefix("predictions.")
        }
    }

    public static func isPoolerName(_ name: String) -> Bool { name.hasPrefix("pooler.") || name.hasPrefix("pre_classifier.") }

    /// Names Hugging Face stores that are buffers, not parameters.
    public static func isBuffer(_ name: String) -> Bool {
        name == "embeddings.position_ids" || name == "embeddings.token_type_ids"
    }

    /// Pre-training heads other than the MLM head (next-sentence / sentence-order prediction).
    public static func isOtherPretrainingHead(_ name: String) -> Bool {
        name.hasPrefix("cls.seq_relationship.") || name.hasPrefix("sop_classifier.")
    }

    /// The name as a Hugging Face *ForMaskedLM model stores it: encoder tensors under the base
    /// prefix, head tensors at the top level. Headless models store names unprefixed.
    public func prefixed(_ hf: String, withHead: Bool) -> String {
        if !withHead || Self.isHeadName(hf, family: family) || Self.isClassifierName(hf) { return hf }
        return family.basePrefix + "." + hf
    }
}
