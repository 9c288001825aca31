import Foundation
import DistilleryTensor

/// The encoder families Distillery reads and writes.
public enum ModelFamily: String, Codable, Sendable, CaseIterable {
    case bert, distilbert, albert

    /// The prefix Hugging Face puts before encoder tensors in models with a head.
    public var basePrefix: String { rawValue }

    public var maskedLMArchitecture: String {
        switch self {
        case .bert: return "BertForMaskedLM"
        case .distilbert: return "DistilBertForMaskedLM"
        case .albert: return "AlbertForMaskedLM"
        }
    }

    public var baseArchitecture: String {
        switch self {
        case .bert: return "BertModel"
        case .distilbert: return "DistilBertModel"
        case .albert: return "AlbertModel"
        }
    }
}

/// What follows the pooler's dense layer.
public enum PoolerActivation: String, Codable, Sendable { case tanh, relu }

/// How the applied layers map onto parameter blocks.
public enum LayerSharing: Sendable, Equatable, Codable {
    /// Every layer has its own weights (BERT, DistilBERT).
    case none
    /// ALBERT: layer i runs group i / (L / groups), each group being `inner` sub-layers.
    case groups(count: Int, inner: Int)
    /// One attention block serves every layer; each layer has its own feed-forward block.
    case attention
    /// One feed-forward block serves every layer; each layer has its own attention block.
    case ffn

    /// ALBERT's default: one block shared by every layer.
    public static let all = LayerSharing.groups(count: 1, inner: 1)

    /// What a recipe can ask of an ALBERT student, by name: "all" (one shared block), "none"
    /// (every layer its own), "attention" or "ffn" (that block shared, the other per layer).
    public static let studentChoices: [(name: String, sharing: LayerSharing)] = [
        ("all", .all), ("attention", .attention), ("ffn", .ffn), ("none", .none),
    ]

    public init?(studentChoice name: String) {
        guard let c = Self.studentChoices.first(where: { $0.name == name }) else { return nil }
        self = c.sharing
    }

    private enum CodingKeys: String, CodingKey { case kind, groups, inner }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "none": self = .none
        case "groups": self = .groups(count: try c.decode(Int.self, forKey: .groups), inner: try c.decode(Int.self, forKey: .inner))
        case "attention": self = .attention
        case "ffn": self = .ffn
        case let k:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown layer sharing '\(k)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .none: try c.encode("none", forKey: .kind)
        case let .groups(g, i):
            try c.encode("groups", forKey: .kind); try c.encode(g, forKey: .groups); try c.encode(i, forKey: .inner)
        case .attention: try c.encode("attention", forKey: .kind)
        case .ffn: try c.encode("ffn", forKey: .kind)
        }
    }
}

/// The one encoder configuration BERT, DistilBERT and ALBERT normalise into.
///
/// Dimensions, named once: V vocabulary, H hidden width, E embedding width (= H except in
/// ALBERT), L layers, NH attention heads, I feed-forward width, P positions, T token types
/// (0: the model takes none).
public struct EncoderConfig: Codable, Sendable, Equatable {
    public var family: ModelFamily
    public var vocabSize: Int
    public var hiddenSize: Int
    public var embeddingSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var activation: Activation
    public var layerNormEps: Float
    public var sharing: LayerSharing
    public var hiddenDropout: Float
    public var attentionDropout: Float
    public var padTokenId: Int
    /// A masked-language-model head whose decoder is tied to the word embeddings.
    public var hasMLMHead: Bool
    /// The pooler (BERT, ALBERT: tanh(W·h[CLS] + b)); for DistilBERT classifiers the
    /// pre-classifier (relu(W·h[CLS] + b)).
    public var hasPooler: Bool
    /// Classes of a sequence-classification head (C; 0: none): logits = W_c · dropout(pooled) + b_c.
    public var numLabels: Int
    /// The classes' names (id2label), C of them.
    public var labels: [String]
    /// Dropout before the classifier (classifier_dropout / seq_classif_dropout / classifier_dropout_prob).
    public var classifierDropout: Float

    enum CodingKeys: String, CodingKey {
        case family = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case embeddingSize = "embedding_size"
        case numLayers = "num_hidden_layers"
        case numHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case maxPositions = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size"
        case activation = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case sharing = "layer_sharing"
        case hiddenDropout = "hidden_dropout_prob"
        case attentionDropout = "attention_probs_dropout_prob"
        case padTokenId = "pad_token_id"
        case hasMLMHead = "mlm_head"
        case hasPooler = "pooler"
        case numLabels = "num_labels"
        case labels = "id2label"
        case classifierDropout = "classifier_dropout"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        family = try c.decode(ModelFamily.self, forKey: .family)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        embeddingSize = try c.decode(Int.self, forKey: .embeddingSize)
        numLayers = try c.decode(Int.self, forKey: .numLayers)
        numHeads = try c.decode(Int.self, forKey: .numHeads)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        maxPositions = try c.decode(Int.self, forKey: .maxPositions)
        typeVocabSize = try c.decode(Int.self, forKey: .typeVocabSize)
        activation = try c.decode(Activation.self, forKey: .activation)
        layerNormEps = try c.decode(Float.self, forKey: .layerNormEps)
        sharing = try c.decode(LayerSharing.self, forKey: .sharing)
        hiddenDropout = try c.decode(Float.self, forKey: .hiddenDropout)
        attentionDropout = try c.decode(Float.self, forKey: .attentionDropout)
        padTokenId = try c.decode(Int.self, forKey: .padTokenId)
        hasMLMHead = try c.decode(Bool.self, forKey: .hasMLMHead)
        hasPooler = try c.decode(Bool.self, forKey: .hasPooler)
        // Written since classification heads came; absent in older checkpoints.
        numLabels = try c.decodeIfPresent(Int.self, forKey: .numLabels) ?? 0
        labels = try c.decodeIfPresent([String].self, forKey: .labels) ?? EncoderConfig.defaultLabels(numLabels)
        classifierDropout = try c.decodeIfPresent(Float.self, forKey: .classifierDropout) ?? hiddenDropout
    }

    /// Hugging Face's names for unnamed classes: LABEL_0, LABEL_1, …
    public static func defaultLabels(_ n: Int) -> [String] { (0..<max(0, min(n, 100_000))).map { "LABEL_\($0)" } }

    public init(family: ModelFamily, vocabSize: Int, hiddenSize: Int, embeddingSize: Int? = nil,
                numLayers: Int, numHeads: Int, intermediateSize: Int, maxPositions: Int = 512,
                typeVocabSize: Int = 2, activation: Activation = .gelu, layerNormEps: Float = 1e-12,
                sharing: LayerSharing = .none, hiddenDropout: Float = 0.1, attentionDropout: Float = 0.1,
                padTokenId: Int = 0, hasMLMHead: Bool = true, hasPooler: Bool = false, numLabels: Int = 0,
                labels: [String]? = nil, classifierDropout: Float? = nil) {
        self.family = family; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
        self.embeddingSize = embeddingSize ?? hiddenSize; self.numLayers = numLayers
        self.numHeads = numHeads; self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions; self.typeVocabSize = typeVocabSize
        self.activation = activation; self.layerNormEps = layerNormEps; self.sharing = sharing
        self.hiddenDropout = hiddenDropout; self.attentionDropout = attentionDropout
        self.padTokenId = padTokenId; self.hasMLMHead = hasMLMHead; self.hasPooler = hasPooler || numLabels > 0
        self.numLabels = numLabels; self.labels = labels ?? Self.defaultLabels(numLabels)
        self.classifierDropout = classifierDropout ?? hiddenDropout
    }

    /// A sequence-classification head (pooler + classifier).
    public var hasClassifier: Bool { numLabels > 0 }
    /// Models with a task head (MLM or classification) store the encoder under the family's
    /// prefix ("bert.", …); base models store it unprefixed.
    public var prefixesEncoder: Bool { hasMLMHead || hasClassifier }
    /// The pooler's activation: tanh, or for DistilBERT's pre-classifier ReLU.
    public var poolerActivation: PoolerActivation { family == .distilbert ? .relu : .tanh }
    /// The Hugging Face class a model of this configuration is saved as.
    public var architecture: String {
        let base = family.baseArchitecture.replacingOccurrences(of: "Model", with: "")
        if hasClassifier { return base + "ForSequenceClassification" }
        return hasMLMHead ? family.maskedLMArchitecture : family.baseArchitecture
    }

    /// ALBERT always has the E→H projection (even when E = H); the others never do.
    public var hasEmbeddingProjection: Bool { family == .albert }
    public var hasTokenTypes: Bool { typeVocabSize > 0 }
    public var headDim: Int { hiddenSize / numHeads }
    /// Width of the MLM head's transform: E for ALBERT (its decoder is the E-wide word table).
    public var headWidth: Int { family == .albert ? embeddingSize : hiddenSize }
    /// DistilBERT applies no dropout after the attention output projection.
    public var dropoutAfterAttentionOutput: Bool { family != .distilbert }

    /// Upper bounds on each dimension: far above any real model, low enough that products of
    /// them cannot overflow and that token ids fit in Int32.
    public static let limits: [(field: String, max: Int)] = [
        ("vocab_size", Int(Int32.max)), ("hidden_size", 1 << 16), ("embedding_size", 1 << 16), ("num_hidden_layers", 4096),
        ("num_attention_heads", 4096), ("intermediate_size", 1 << 20), ("max_position_embeddings", 1 << 20), ("type_vocab_size", 1 << 16),
    ]

    /// Checks the dimensions fit together and the model fits in memory, before anything is
    /// allocated.
    public func validate() throws {
        try validateShape()
        try MemoryBudget.check(parameterBytes, for: "a model of this configuration (\(largestComponent))")
    }

    /// Checks the dimensions are in range and fit together (what counting a model needs; running
    /// it also needs the memory `validate` checks).
    public func validateShape() throws {
        func bad(_ field: String, _ why: String) -> ConfigError { .invalidValue(field: field, reason: why) }
        let values = [vocabSize, hiddenSize, embeddingSize, numLayers, numHeads, intermediateSize, maxPositions, typeVocabSize]
        for ((field, limit), v) in zip(Self.limits, values) {
            if field == "type_vocab_size" { if v < 0 { throw bad(field, "must not be negative, got \(v)") } } else if v <= 0 {
                throw bad(field, "must be positive, got \(v)")
            }
            if v > limit { throw bad(field, "\(v) is beyond any model Distillery can run (at most \(limit))") }
        }
        if hiddenSize % numHeads != 0 {
            throw bad("num_attention_heads", "hidden_size \(hiddenSize) is not divisible by \(numHeads) heads")
        }
        if family != .albert && embeddingSize != hiddenSize {
            throw bad("embedding_size", "only ALBERT factorizes embeddings; \(family.rawValue) needs embedding_size = hidden_size")
        }
        if !(0..<1).contains(hiddenDropout) { throw bad("hidden_dropout_prob", "must be in [0, 1)") }
        if !(0..<1).contains(attentionDropout) { throw bad("attention_probs_dropout_prob", "must be in [0, 1)") }
        if !(layerNormEps > 0 && layerNormEps.isFinite && layerNormEps < 1) {
            throw bad("layer_norm_eps", "must be a small positive number (PyTorch's default is 1e-12), got \(layerNormEps)")
        }
        if numLabels < 0 || numLabels > 100_000 { throw bad("num_labels", "must be 0…100,000, got \(numLabels)") }
        // (Without a classifier, names from config.json wait for the weights to say how many.)
        if numLabels > 0 && labels.count != numLabels { throw bad("id2label", "names \(labels.count) classes for \(numLabels) labels") }
        if numLabels > 0 {
            var seen = Set<String>()
            if let twice = labels.first(where: { !seen.insert($0).inserted }) {
                throw bad("id2label", "names the class '\(twice)' more than once: predictions could not be told apart")
            }
        }
        if numLabels > 0 && !hasPooler { throw bad("num_labels", "a classifier reads the pooled [CLS] vector: the model needs its pooler") }
        if !(0..<1).contains(classifierDropout) { throw bad("classifier_dropout", "must be in [0, 1)") }
        if padTokenId < 0 || padTokenId >= vocabSize { throw bad("pad_token_id", "\(padTokenId) is not a token id (0…\(vocabSize - 1))") }
        switch sharing {
        case .none: break
        case let .groups(g, inner):
            if family != .albert { throw bad("layer_sharing", "layer groups are an ALBERT feature") }
            if g <= 0 || g > numLayers { throw bad("num_hidden_groups", "must be 1…num_hidden_layers (\(numLayers)), got \(g)") }
            if inner <= 0 || inner > 64 { throw bad("inner_group_num", "must be 1…64, got \(inner)") }
        case .attention, .ffn:
            if family != .albert { throw bad("layer_sharing", "cross-layer sharing is an ALBERT feature") }
        }
    }

    /// Bytes of the fp32 parameters, computed with overflow checks (nil: beyond 64 bits).
    public var parameterBytes: Int? {
        let (blocksA, blocksF) = ParameterLayout.blockCounts(self)
        let H = hiddenSize, E = embeddingSize, I = intermediateSize
        let p = MemoryBudget.product
        let floats = MemoryBudget.sum([
            p(vocabSize, E), p(maxPositions, E), p(typeVocabSize, E), p(4, E), p(H, E + 1),
            p(blocksA, 4 * H * H + 6 * H), p(blocksF, 2 * H * I + I + 3 * H),
            p(H, H + 1), p(E + H, H + 1), p(vocabSize, 1), p(numLabels, H + 1),
        ])
        return floats.flatMap { MemoryBudget.product($0, 4) }
    }

    /// The field behind the largest part of the model, for messages.
    var largestComponent: String {
        let (blocksA, blocksF) = ParameterLayout.blockCounts(self)
        let parts: [(String, Double)] = [
            ("vocab_size \(vocabSize) × embedding_size \(embeddingSize)", Double(vocabSize) * Double(embeddingSize)),
            ("max_position_embeddings \(maxPositions) × embedding_size \(embeddingSize)", Double(maxPositions) * Double(embeddingSize)),
            ("type_vocab_size \(typeVocabSize) × embedding_size \(embeddingSize)", Double(typeVocabSize) * Double(embeddingSize)),
            ("\(blocksA) attention blocks × hidden_size \(hiddenSize)²", Double(blocksA) * 4 * Double(hiddenSize) * Double(hiddenSize)),
            ("\(blocksF) FFN blocks × hidden_size \(hiddenSize) × intermediate_size \(intermediateSize)",
             Double(blocksF) * 2 * Double(hiddenSize) * Double(intermediateSize)),
        ]
        return parts.max { $0.1 < $1.1 }!.0
    }
}

public indirect enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case unknownModelType(path: String, modelType: String?)
    case unsupported(path: String, field: String, value: String, reason: String)
    case invalidValue(field: String, reason: String)
    case invalid(path: String, field: String, reason: String)
    case inFile(path: String, ConfigError)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read config: \(r)"
        case let .unknownModelType(p, t):
            return "\(p): model_type \(t.map { "'\($0)'" } ?? "is missing"); Distillery reads bert, distilbert and albert"
        case let .unsupported(p, f, v, r): return "\(p): \(f) = \(v) is not supported: \(r)"
        case let .invalidValue(f, r): return "config field \(f): \(r)"
        case let .invalid(p, f, r): return "\(p): \(f): \(r)"
        case let .inFile(p, e): return "\(p): \(e)"
        }
    }
}
