import Foundation
import DistilleryTensor
import DistilleryFormats

// Hugging Face config.json files, one Codable type per family with the exact Hugging Face keys
// and defaults, each normalising into EncoderConfig and back.

public struct BertConfig: Codable, Sendable, Equatable {
    public var modelType = "bert"
    public var architectures: [String]?
    /// Class names by id ("0": "negative", …), and the reverse map Hugging Face also writes.
    public var id2label: [String: String]?
    public var label2id: [String: Int]?
    public var problemType: String?
    public var classifierDropout: Float?
    public var vocabSize = 30522
    public var hiddenSize = 768
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var intermediateSize = 3072
    public var hiddenAct = "gelu"
    public var hiddenDropoutProb: Float = 0.1
    public var attentionProbsDropoutProb: Float = 0.1
    public var maxPositionEmbeddings = 512
    public var typeVocabSize = 2
    public var layerNormEps: Float = 1e-12
    public var padTokenId: Int? = 0
    public var positionEmbeddingType: String? = "absolute"
    public var isDecoder: Bool? = false
    public var tieWordEmbeddings: Bool? = true

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", architectures, id2label, label2id, problemType = "problem_type", classifierDropout = "classifier_dropout"
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        case hiddenAct = "hidden_act", hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type", isDecoder = "is_decoder"
        case tieWordEmbeddings = "tie_word_embeddings"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BertConfig()
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        id2label = try c.decodeIfPresent([String: String].self, forKey: .id2label)
        problemType = try c.decodeIfPresent(String.self, forKey: .problemType)
        classifierDropout = try c.decodeIfPresent(Float.self, forKey: .classifierDropout)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        hiddenDropoutProb = try c.decodeIfPresent(Float.self, forKey: .hiddenDropoutProb) ?? d.hiddenDropoutProb
        attentionProbsDropoutProb = try c.decodeIfPresent(Float.self, forKey: .attentionProbsDropoutProb) ?? d.attentionProbsDropoutProb
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? d.typeVocabSize
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? d.padTokenId
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? d.positionEmbeddingType
        isDecoder = try c.decodeIfPresent(Bool.self, forKey: .isDecoder) ?? d.isDecoder
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
    }

    public func encoderConfig(path: String) throws -> EncoderConfig {
        if let t = positionEmbeddingType, t != "absolute" {
            throw ConfigError.unsupported(path: path, field: "position_embedding_type", value: t, reason: "only absolute positions are implemented")
        }
        if isDecoder == true {
            throw ConfigError.unsupported(path: path, field: "is_decoder", value: "true", reason: "Distillery runs encoders")
        }
        if tieWordEmbeddings == false {
            throw ConfigError.unsupported(path: path, field: "tie_word_embeddings", value: "false", reason: "the MLM decoder must be tied to the word embeddings")
        }
        guard let act = Activation(huggingFace: hiddenAct) else {
            throw ConfigError.unsupported(path: path, field: "hidden_act", value: hiddenAct, reason: "use gelu, gelu_new or relu")
        }
        return EncoderConfig(family: .bert, vocabSize: vocabSize, hiddenSize: hiddenSize, numLayers: numHiddenLayers,
                             numHeads: numAttentionHeads, intermediateSize: intermediateSize,
                             maxPositions: maxPositionEmbeddings, typeVocabSize: typeVocabSize, activation: act,
                             layerNormEps: layerNormEps, sharing: .none, hiddenDropout: hiddenDropoutProb,
                             attentionDropout: attentionProbsDropoutProb, padTokenId: padTokenId ?? 0,
                             labels: try labelNames(id2label, path: path), classifierDropout: classifierDropout ?? hiddenDropoutProb)
    }

    public init(_ e: EncoderConfig) {
        architectures = [e.architecture]
        (id2label, label2id, problemType) = labelMaps(e)
        classifierDropout = e.hasClassifier ? e.classifierDropout : nil
        vocabSize = e.vocabSize; hiddenSize = e.hiddenSize; numHiddenLayers = e.numLayers
        numAttentionHeads = e.numHeads; intermediateSize = e.intermediateSize
        hiddenAct = e.activation.rawValue; hiddenDropoutProb = e.hiddenDropout
        attentionProbsDropoutProb = e.attentionDropout; maxPositionEmbeddings = e.maxPositions
        typeVocabSize = e.typeVocabSize; layerNormEps = e.layerNormEps; padTokenId = e.padTokenId
    }
}

public struct DistilBertConfig: Codable, Sendable, Equatable {
    public var modelType = "distilbert"
    public var architectures: [String]?
    /// Class names by id ("0": "negative", …), and the reverse map Hugging Face also writes.
    public var id2label: [String: String]?
    public var label2id: [String: Int]?
    public var problemType: String?
    public var seqClassifDropout: Float?
    public var vocabSize = 30522
    public var maxPositionEmbeddings = 512
    public var sinusoidalPosEmbds = false
    public var nLayers = 6
    public var nHeads = 12
    public var dim = 768
    public var hiddenDim = 3072
    public var dropout: Float = 0.1
    public var attentionDropout: Float = 0.1
    public var activation = "gelu"
    public var padTokenId: Int? = 0
    public var tieWordEmbeddings: Bool? = true

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", architectures, id2label, label2id, problemType = "problem_type", seqClassifDropout = "seq_classif_dropout"
        case vocabSize = "vocab_size", maxPositionEmbeddings = "max_position_embeddings"
        case sinusoidalPosEmbds = "sinusoidal_pos_embds", nLayers = "n_layers", nHeads = "n_heads"
        case dim, hiddenDim = "hidden_dim", dropout, attentionDropout = "attention_dropout", activation
        case padTokenId = "pad_token_id", tieWordEmbeddings = "tie_word_embeddings"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DistilBertConfig()
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        id2label = try c.decodeIfPresent([String: String].self, forKey: .id2label)
        problemType = try c.decodeIfPresent(String.self, forKey: .problemType)
        seqClassifDropout = try c.decodeIfPresent(Float.self, forKey: .seqClassifDropout)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        sinusoidalPosEmbds = try c.decodeIfPresent(Bool.self, forKey: .sinusoidalPosEmbds) ?? d.sinusoidalPosEmbds
        nLayers = try c.decodeIfPresent(Int.self, forKey: .nLayers) ?? d.nLayers
        nHeads = try c.decodeIfPresent(Int.self, forKey: .nHeads) ?? d.nHeads
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? d.dim
        hiddenDim = try c.decodeIfPresent(Int.self, forKey: .hiddenDim) ?? d.hiddenDim
        dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? d.dropout
        attentionDropout = try c.decodeIfPresent(Float.self, forKey: .attentionDropout) ?? d.attentionDropout
        activation = try c.decodeIfPresent(String.self, forKey: .activation) ?? d.activation
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? d.padTokenId
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
    }

    public func encoderConfig(path: String) throws -> EncoderConfig {
        if sinusoidalPosEmbds {
            throw ConfigError.unsupported(path: path, field: "sinusoidal_pos_embds", value: "true", reason: "only learned position embeddings are implemented")
        }
        if tieWordEmbeddings == false {
            throw ConfigError.unsupported(path: path, field: "tie_word_embeddings", value: "false", reason: "the MLM decoder must be tied to the word embeddings")
        }
        guard let act = Activation(huggingFace: activation) else {
            throw ConfigError.unsupported(path: path, field: "activation", value: activation, reason: "use gelu or relu")
        }
        return EncoderConfig(family: .distilbert, vocabSize: vocabSize, hiddenSize: dim, numLayers: nLayers,
                             numHeads: nHeads, intermediateSize: hiddenDim, maxPositions: maxPositionEmbeddings,
                             typeVocabSize: 0, activation: act, layerNormEps: 1e-12, sharing: .none,
                             hiddenDropout: dropout, attentionDropout: attentionDropout, padTokenId: padTokenId ?? 0,
                             labels: try labelNames(id2label, path: path), classifierDropout: seqClassifDropout ?? 0.2)
    }

    public init(_ e: EncoderConfig) {
        architectures = [e.architecture]
        (id2label, label2id, problemType) = labelMaps(e)
        seqClassifDropout = e.hasClassifier ? e.classifierDropout : nil
        vocabSize = e.vocabSize; maxPositionEmbeddings = e.maxPositions; nLayers = e.numLayers
        nHeads = e.numHeads; dim = e.hiddenSize; hiddenDim = e.intermediateSize
        dropout = e.hiddenDropout; attentionDropout = e.attentionDropout
        activation = e.activation.rawValue; padTokenId = e.padTokenId
    }
}

public struct AlbertConfig: Codable, Sendable, Equatable {
    public var modelType = "albert"
    public var architectures: [String]?
    /// Class names by id ("0": "negative", …), and the reverse map Hugging Face also writes.
    public var id2label: [String: String]?
    public var label2id: [String: Int]?
    public var problemType: String?
    public var classifierDropoutProb: Float?
    public var vocabSize = 30000
    public var embeddingSize = 128
    public var hiddenSize = 4096
    public var numHiddenLayers = 12
    public var numHiddenGroups = 1
    public var numAttentionHeads = 64
    public var intermediateSize = 16384
    public var innerGroupNum = 1
    public var hiddenAct = "gelu_new"
    public var hiddenDropoutProb: Float = 0
    public var attentionProbsDropoutProb: Float = 0
    public var maxPositionEmbeddings = 512
    public var typeVocabSize = 2
    public var layerNormEps: Float = 1e-12
    public var padTokenId: Int? = 0
    public var positionEmbeddingType: String? = "absolute"
    public var tieWordEmbeddings: Bool? = true

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", architectures, id2label, label2id, problemType = "problem_type", classifierDropoutProb = "classifier_dropout_prob"
        case vocabSize = "vocab_size", embeddingSize = "embedding_size", hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers", numHiddenGroups = "num_hidden_groups"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        case innerGroupNum = "inner_group_num", hiddenAct = "hidden_act"
        case hiddenDropoutProb = "hidden_dropout_prob", attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type", tieWordEmbeddings = "tie_word_embeddings"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AlbertConfig()
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        id2label = try c.decodeIfPresent([String: String].self, forKey: .id2label)
        problemType = try c.decodeIfPresent(String.self, forKey: .problemType)
        classifierDropoutProb = try c.decodeIfPresent(Float.self, forKey: .classifierDropoutProb)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        embeddingSize = try c.decodeIfPresent(Int.self, forKey: .embeddingSize) ?? d.embeddingSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numHiddenGroups = try c.decodeIfPresent(Int.self, forKey: .numHiddenGroups) ?? d.numHiddenGroups
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        innerGroupNum = try c.decodeIfPresent(Int.self, forKey: .innerGroupNum) ?? d.innerGroupNum
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        hiddenDropoutProb = try c.decodeIfPresent(Float.self, forKey: .hiddenDropoutProb) ?? d.hiddenDropoutProb
        attentionProbsDropoutProb = try c.decodeIfPresent(Float.self, forKey: .attentionProbsDropoutProb) ?? d.attentionProbsDropoutProb
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? d.typeVocabSize
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? d.padTokenId
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? d.positionEmbeddingType
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
    }

    public func encoderConfig(path: String) throws -> EncoderConfig {
        if let t = positionEmbeddingType, t != "absolute" {
            throw ConfigError.unsupported(path: path, field: "position_embedding_type", value: t, reason: "only absolute positions are implemented")
        }
        if tieWordEmbeddings == false {
            throw ConfigError.unsupported(path: path, field: "tie_word_embeddings", value: "false", reason: "the MLM decoder must be tied to the word embeddings")
        }
        guard let act = Activation(huggingFace: hiddenAct) else {
            throw ConfigError.unsupported(path: path, field: "hidden_act", value: hiddenAct, reason: "use gelu, gelu_new or relu")
        }
        return EncoderConfig(family: .albert, vocabSize: vocabSize, hiddenSize: hiddenSize, embeddingSize: embeddingSize,
                             numLayers: numHiddenLayers, numHeads: numAttentionHeads, intermediateSize: intermediateSize,
                             maxPositions: maxPositionEmbeddings, typeVocabSize: typeVocabSize, activation: act,
                             layerNormEps: layerNormEps, sharing: .groups(count: numHiddenGroups, inner: innerGroupNum),
                             hiddenDropout: hiddenDropoutProb, attentionDropout: attentionProbsDropoutProb,
                             padTokenId: padTokenId ?? 0, labels: try labelNames(id2label, path: path),
                             classifierDropout: classifierDropoutProb ?? 0.1)
    }

    /// Hugging Face ALBERT knows only layer groups: attention-only or FFN-only sharing is written
    /// unrolled, one group per layer (see `HuggingFaceExport`).
    public init(_ e: EncoderConfig) {
        architectures = [e.architecture]
        (id2label, label2id, problemType) = labelMaps(e)
        classifierDropoutProb = e.hasClassifier ? e.classifierDropout : nil
        vocabSize = e.vocabSize; embeddingSize = e.embeddingSize; hiddenSize = e.hiddenSize
        numHiddenLayers = e.numLayers; numAttentionHeads = e.numHeads; intermediateSize = e.intermediateSize
        switch e.sharing {
        case let .groups(g, inner): numHiddenGroups = g; innerGroupNum = inner
        default: numHiddenGroups = e.numLayers; innerGroupNum = 1
        }
        hiddenAct = e.activation.rawValue; hiddenDropoutProb = e.hiddenDropout
        attentionProbsDropoutProb = e.attentionDropout; maxPositionEmbeddings = e.maxPositions
        typeVocabSize = e.typeVocabSize; layerNormEps = e.layerNormEps; padTokenId = e.padTokenId
    }
}

/// Class names from a config's id2label ({"0": "neg", "1": "pos"}): ids 0…C−1 in order; the
/// classifier's rows decide how many classes there are (a config without a classifier may still
/// carry Hugging Face's default two).
func labelNames(_ id2label: [String: String]?, path: String) throws -> [String]? {
    guard let m = id2label, !m.isEmpty else { return nil }
    guard m.count <= 100_000 else { throw ConfigError.invalid(path: path, field: "id2label", reason: "\(m.count) classes") }
    if let bad = m.keys.sorted().first(where: { k in Int(k).map { $0 < 0 || $0 >= m.count } ?? true }) {
        throw ConfigError.invalid(path: path, field: "id2label", reason: "class ids are 0…\(m.count - 1) (one per class), and '\(bad)' is not one")
    }
    var names: [String] = []
    for i in 0..<m.count {
        guard let n = m[String(i)] else {
            throw ConfigError.invalid(path: path, field: "id2label", reason: "class ids must be 0…\(m.count - 1); \(i) is missing")
        }
        names.append(n)
    }
    return names
}

/// id2label, label2id and problem_type as Hugging Face writes them for a classifier.
func labelMaps(_ e: EncoderConfig) -> ([String: String]?, [String: Int]?, String?) {
    guard e.hasClassifier else { return (nil, nil, nil) }
    var id2label: [String: String] = [:], label2id: [String: Int] = [:]
    for (i, n) in e.labels.enumerated() { id2label[String(i)] = n; label2id[n] = i }
    return (id2label, label2id, "single_label_classification")
}

/// A config.json read from disk: the family's own struct and the normalised config.
public struct HuggingFaceConfig: Sendable {
    public let encoder: EncoderConfig
    public let architectures: [String]

    public static func load(path: String) throws -> HuggingFaceConfig {
        let data: Data
        do { data = try readFile(path) } catch { throw ConfigError.unreadable(path: path, reason: "\(error)") }
        return try decode(data, path: path)
    }

    /// Decodes a config.json and checks it (dimensions, limits, memory) before anything is built.
    public static func decode(_ data: Data, path: String) throws -> HuggingFaceConfig {
        let c = try decodeUnchecked(data, path: path)
        do { try c.encoder.validate() } catch let e as ConfigError { throw ConfigError.inFile(path: path, e) }
        return c
    }

    static func decodeUnchecked(_ data: Data, path: String) throws -> HuggingFaceConfig {
        struct Probe: Decodable { let model_type: String? }
        // Foundation keeps one of two values given for a key (transformers keeps the last), and
        // calls a number its field cannot hold "not valid JSON": the strict reader names both.
        // Duplicates are refused at the top level and one level down (id2label, label2id).
        let root: HeaderJSON
        do { root = try data.withUnsafeBytes { try HeaderJSON.parse($0, strictDepth: 2) } } catch let e as HeaderJSON.ParseError {
            throw ConfigError.unreadable(path: path, reason: "not valid JSON: \(e)")
        }
        let probe: Probe
        do { probe = try JSONDecoder().decode(Probe.self, from: data) } catch {
            throw ConfigError.unreadable(path: path, reason: "not a JSON object (\(describe(error)))")
        }
        do {
            switch probe.model_type {
            case "bert":
                let c = try JSONDecoder().decode(BertConfig.self, from: data)
                return HuggingFaceConfig(encoder: try c.encoderConfig(path: path), architectures: c.architectures ?? [])
            case "distilbert":
                let c = try JSONDecoder().decode(DistilBertConfig.self, from: data)
                return HuggingFaceConfig(encoder: try c.encoderConfig(path: path), architectures: c.architectures ?? [])
            case "albert":
                let c = try JSONDecoder().decode(AlbertConfig.self, from: data)
                return HuggingFaceConfig(encoder: try c.encoderConfig(path: path), architectures: c.architectures ?? [])
            default:
                throw ConfigError.unknownModelType(path: path, modelType: probe.model_type)
            }
        } catch let e as DecodingError {
            if case .dataCorrupted(let ctx) = e, ctx.codingPath.isEmpty {
                // The JSON parsed above, so a value did not fit its field's type.
                throw ConfigError.unreadable(path: path, reason: "a value does not fit its field: a fraction where a whole number belongs, or a number outside Float's or Int's range (\(Self.unusualNumbers(root)))")
            }
            throw ConfigError.unreadable(path: path, reason: describe(e))
        }
    }

    /// Top-level numbers no field can hold (past Float's or Int's range, or a non-zero that
    /// rounds to a Float 0), else the fractions (one of which may sit where a whole number
    /// belongs): where a value that does not fit its field is found.
    static func unusualNumbers(_ root: HeaderJSON) -> String {
        guard let members = root.objectValue else { return "" }
        var unfit: [String] = [], fractions: [String] = []
        for (k, v) in members {
            switch v {
            case .number(let t):
                let d = Double(t) ?? .nan, f = Float(d)
                if !f.isFinite || (f == 0 && d != 0) || (Int(t) == nil && !t.contains(".") && !t.lowercased().contains("e")) {
                    unfit.append("\(k) = \(t)")
                } else if d.rounded() != d {
                    fractions.append("\(k) = \(t)")
                }
            case .unsigned(let u) where u > UInt64(Int.max): unfit.append("\(k) = \(u)")
            default: break
            }
        }
        if !unfit.isEmpty { return "no field holds " + unfit.joined(separator: ", ") }
        return fractions.isEmpty ? "no top-level number looks unusual" : "fractions: " + fractions.joined(separator: ", ")
    }

    /// config.json text for an encoder in its family's Hugging Face form.
    public static func encode(_ e: EncoderConfig) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        switch e.family {
        case .bert: return try enc.encode(BertConfig(e))
        case .distilbert: return try enc.encode(DistilBertConfig(e))
        case .albert: return try enc.encode(AlbertConfig(e))
        }
    }
}

/// A DecodingError in one line: which field, and what was wrong.
public func describe(_ error: Error) -> String {
    guard let e = error as? DecodingError else { return "\(error)" }
    func path(_ c: [CodingKey]) -> String { c.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") }
    switch e {
    case let .typeMismatch(t, ctx): return "field '\(path(ctx.codingPath))' should be \(t)"
    case let .valueNotFound(t, ctx): return "field '\(path(ctx.codingPath))' is null, expected \(t)"
    case let .keyNotFound(k, ctx): return "missing field '\(path(ctx.codingPath + [k]))'"
    case let .dataCorrupted(ctx):
        return ctx.codingPath.isEmpty ? ctx.debugDescription : "field '\(path(ctx.codingPath))': \(ctx.debugDescription)"
    @unknown default: return "\(e)"
    }
}
