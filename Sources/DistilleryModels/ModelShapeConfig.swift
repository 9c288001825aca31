import Foundation
import DistilleryTensor

// config.json files of every family `distill params` counts. The families Distillery runs are
// read by their own Codable types (HuggingFaceConfig.swift), checked as loading checks them; the
// families it only counts are read here, field by field, with transformers' defaults for what a
// file leaves out, refusing any field that would change the count in a way not modelled.

/// A JSON value as config.json holds it, so each field can be read with a message naming it.
enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var text: String {
        switch self {
        case .null: return "null"
        case let .bool(b): return String(b)
        case let .int(i): return String(i)
        case let .double(d): return String(d)
        case let .string(s): return "'\(s)'"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// The fields of one config.json, read with the path and field named in every error.
struct ConfigFields {
    let path: String
    let values: [String: JSONValue]

    init(_ data: Data, path: String) throws {
        self.path = path
        let v: JSONValue
        do { v = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw ParameterCountError.unreadable(path: path, reason: "not JSON (\(describe(error)))")
        }
        guard case let .object(o) = v else { throw ParameterCountError.unreadable(path: path, reason: "not a JSON object") }
        values = o
    }

    func bad(_ key: String, _ v: JSONValue, _ why: String) -> ParameterCountError {
        .invalidValue(source: path, field: key, value: v.text, reason: why)
    }

    /// An integer field (absent or null: `fallback`).
    func int(_ key: String, _ fallback: Int) throws -> Int { try optionalInt(key) ?? fallback }

    func optionalInt(_ key: String) throws -> Int? {
        switch values[key] {
        case nil, .null?: return nil
        case let .int(i)?: return i
        case let v?:
            if case let .double(d) = v, d.rounded() == d, d.isFinite {
                // 768.0 is 768 (and then range-checked); 1e30 is no model's.
                if abs(d) < 1e18 { return Int(d) }
                throw bad(key, v, "exceeds any model `distill params` counts")
            }
            throw bad(key, v, "should be an integer")
        }
    }

    func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        switch values[key] {
        case nil, .null?: return fallback
        case let .bool(b)?: return b
        case let v?: throw bad(key, v, "should be true or false")
        }
    }

    func string(_ key: String) throws -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case let .string(s)?: return s
        case let v?: throw bad(key, v, "should be a string")
        }
    }

    /// A list given as "a|b" or ["a", "b"] (DeBERTa's pos_att_type), lowercased.
    func list(_ key: String) throws -> [String] {
        switch values[key] {
        case nil, .null?: return []
        case let .string(s)?: return s.lowercased().split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        case let .array(a)?:
            return try a.map { e in
                guard case let .string(s) = e else { throw bad(key, e, "should list strings") }
                return s.lowercased().trimmingCharacters(in: .whitespaces)
            }
        case let v?: throw bad(key, v, "should be a string such as 'c2p|p2c' or a list")
        }
    }

    /// Refuses a field that changes the count in a way `distill params` does not model.
    func refuse(_ key: String, unless ok: (JSONValue) -> Bool, _ why: String) throws {
        if let v = values[key], v != .null, !ok(v) {
            throw ParameterCountError.unsupported(source: path, field: key, value: v.text, reason: why)
        }
    }
}

/// 4 × d_model, the FFN of GPT and XLM (and of GPT-2 without n_inner); for a d_model out of
/// range, a placeholder: validation then refuses d_model itself.
private func fourTimes(_ d: Int) -> Int { (1...(1 << 16)).contains(d) ? 4 * d : 1 }

extension ModelShape.Head {
    /// The class a config.json's `architectures` names: an LM head (…ForMaskedLM, …LMHeadModel,
    /// …ForConditionalGeneration; BERT's …ForPreTraining, whose MLM head Distillery loads),
    /// ELECTRA's discriminator (ElectraForPreTraining), or the base class.
    public init(architectures: [String]) {
        if architectures.contains("ElectraForPreTraining") { self = .discriminator; return }
        let lm = ["ForMaskedLM", "LMHeadModel", "ForConditionalGeneration", "ForPreTraining"]
        self = architectures.contains { a in lm.contains { a.hasSuffix($0) } } ? .lm : .base
    }
}

extension ModelShape {
    /// The shape a config.json describes, with the heads its `architectures` name, or, when
    /// `head` is given, that class. The families Distillery runs are checked as loading checks
    /// them (a model too large for memory is refused); the others are range-checked.
    public static func load(configPath path: String, head: Head? = nil) throws -> ModelShape {
        let data: Data
        do { data = try readFile(path) } catch { throw ParameterCountError.unreadable(path: path, reason: "\(error)") }
        return try decode(configJSON: data, path: path, head: head)
    }

    /// The model_type of a config.json (nil: none).
    public static func modelType(configJSON data: Data, path: String) throws -> String? {
        try ConfigFields(data, path: path).string("model_type")
    }

    public static func decode(configJSON data: Data, path: String, head forced: Head? = nil) throws -> ModelShape {
        let f = try ConfigFields(data, path: path)
        let modelType = try f.string("model_type")
        var architectures: [String] = []
        if case let .array(a)? = f.values["architectures"] {
            architectures = a.compactMap { if case let .string(s) = $0 { return s } else { return nil } }
        }
        let head = forced ?? Head(architectures: architectures)
        var s: ModelShape
        switch modelType {
        case "bert", "distilbert", "albert":
            // What Distillery would load, checked as loading checks it.
            var c = try HuggingFaceConfig.decode(data, path: path).encoder
            c.hasMLMHead = head == .lm
            c.hasPooler = head == .base && c.family != .distilbert
            s = ModelShape(encoder: c)
            s.pooler = nil
        case "roberta", "electra":
            let electra = modelType == "electra"
            try f.refuse("position_embedding_type", unless: { $0 == .string("absolute") }, "only absolute positions are counted")
            try f.refuse("is_decoder", unless: { $0 == .bool(false) }, "decoder (cross-attention) layers are not counted")
            try f.refuse("add_cross_attention", unless: { $0 == .bool(false) }, "cross-attention layers are not counted")
            let H = try f.int("hidden_size", electra ? 256 : 768)
            s = ModelShape(family: electra ? .electra : .roberta, head: head, vocabSize: try f.int("vocab_size", electra ? 30522 : 50265),
                           hiddenSize: H, embeddingSize: electra ? try f.int("embedding_size", 128) : H,
                           layers: try f.int("num_hidden_layers", 12), heads: try f.int("num_attention_heads", electra ? 4 : 12),
                           intermediateSize: try f.int("intermediate_size", electra ? 1024 : 3072),
                           positions: try f.int("max_position_embeddings", 512), typeVocabSize: try f.int("type_vocab_size", 2))
        case "xlnet":
            let D = try f.int("d_model", 1024), n = try f.int("n_head", 16)
            // transformers refuses a d_head other than d_model / n_head.
            if let d = try f.optionalInt("d_head"), n > 0, d != D / n {
                throw ParameterCountError.invalidValue(source: path, field: "d_head", value: String(d),
                                                       reason: "must be d_model / n_head = \(D / n), as transformers requires")
            }
            s = ModelShape(family: .xlnet, head: head, vocabSize: try f.int("vocab_size", 32000), hiddenSize: D,
                           layers: try f.int("n_layer", 24), heads: n, intermediateSize: try f.int("d_inner", 4096), positions: 0)
        case "deberta", "deberta-v2":
            let v2 = modelType == "deberta-v2"
            try f.refuse("talking_head", unless: { $0 == .bool(false) }, "talking-heads projections are not counted")
            try f.refuse("conv_kernel_size", unless: { $0 == .int(0) }, "DeBERTa-v2's convolution layer is not counted")
            let attention = try f.list("pos_att_type")
            for a in attention where !["c2p", "p2c"].contains(a) {
                throw ParameterCountError.unsupported(source: path, field: "pos_att_type", value: "'\(a)'", reason: "counted terms are c2p and p2c")
            }
            let o = DebertaOptions(relativeAttention: try f.bool("relative_attention", false),
                                   maxRelativePositions: try f.int("max_relative_positions", -1),
                                   positionBuckets: v2 ? try f.int("position_buckets", -1) : -1,
                                   positionBiasedInput: try f.bool("position_biased_input", true),
                                   c2p: attention.contains("c2p"), p2c: attention.contains("p2c"),
                                   shareAttentionKey: v2 ? try f.bool("share_att_key", false) : false,
                                   normRelativeEmbeddings: v2 ? (try f.string("norm_rel_ebd") ?? "none").lowercased()
                                       .split(separator: "|").contains { $0.trimmingCharacters(in: .whitespaces) == "layer_norm" } : false,
                                   legacyHead: try f.bool("legacy", true))
            let H = try f.int("hidden_size", v2 ? 1536 : 768)
            s = ModelShape(family: v2 ? .debertaV2 : .deberta, head: head, vocabSize: try f.int("vocab_size", v2 ? 128100 : 50265),
                           hiddenSize: H, embeddingSize: try f.int("embedding_size", H), layers: try f.int("num_hidden_layers", v2 ? 24 : 12),
                           heads: try f.int("num_attention_heads", v2 ? 24 : 12),
                           headDim: v2 ? try f.optionalInt("attention_head_size") : nil,
                           intermediateSize: try f.int("intermediate_size", v2 ? 6144 : 3072),
                           positions: try f.int("max_position_embeddings", 512), typeVocabSize: try f.int("type_vocab_size", 0), deberta: o)
        case "xlm":
            try f.refuse("is_encoder", unless: { $0 == .bool(true) }, "XLM decoders (cross-attention layers) are not counted")
            if head == .lm { try f.refuse("asm", unless: { $0 == .bool(false) }, "the adaptive-softmax LM head is not counted") }
            let D = try f.int("emb_dim", 2048), langs = try f.int("n_langs", 1)
            s = ModelShape(family: .xlm, head: head, vocabSize: try f.int("vocab_size", 30145), hiddenSize: D,
                           layers: try f.int("n_layers", 12), heads: try f.int("n_heads", 16),
                           intermediateSize: fourTimes(D), positions: try f.int("max_position_embeddings", 512),
                           languages: try f.bool("use_lang_emb", true) && langs > 1 ? langs : 0)
        case "bart":
            let D = try f.int("d_model", 1024)
            // Heads do not change the count, but transformers refuses heads that do not divide d_model.
            let decoderHeads = try f.int("decoder_attention_heads", 16)
            if decoderHeads <= 0 || (D > 0 && D % decoderHeads != 0) {
                throw ParameterCountError.invalidValue(source: path, field: "decoder_attention_heads", value: String(decoderHeads),
                                                       reason: "must be positive and divide d_model \(D)")
            }
            s = ModelShape(family: .bart, head: head, vocabSize: try f.int("vocab_size", 50265), hiddenSize: D,
                           layers: try f.int("encoder_layers", 12), decoderLayers: try f.int("decoder_layers", 12),
                           heads: try f.int("encoder_attention_heads", 16), intermediateSize: try f.int("encoder_ffn_dim", 4096),
                           decoderIntermediateSize: try f.int("decoder_ffn_dim", 4096),
                           positions: try f.int("max_position_embeddings", 1024), tieWordEmbeddings: try f.bool("tie_word_embeddings", true))
        case "t5":
            let proj = try f.string("feed_forward_proj") ?? "relu"
            let parts = proj.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 1 || (parts.count == 2 && parts[0] == "gated") else {
                throw ParameterCountError.unsupported(source: path, field: "feed_forward_proj", value: "'\(proj)'",
                                                      reason: "transformers takes 'ACT' or 'gated-ACT', e.g. relu or gated-gelu")
            }
            let L = try f.int("num_layers", 6)
            s = ModelShape(family: .t5, head: head, vocabSize: try f.int("vocab_size", 32128), hiddenSize: try f.int("d_model", 512),
                           layers: L, decoderLayers: try f.int("num_decoder_layers", L), heads: try f.int("num_heads", 8),
                           headDim: try f.int("d_kv", 64), intermediateSize: try f.int("d_ff", 2048), positions: 0,
                           // transformers 5 ties T5's LM head always (tie_word_embeddings false
                           // only turns off its output scaling).
                           tieWordEmbeddings: true,
                           t5: T5Options(relativeBuckets: try f.int("relative_attention_num_buckets", 32), gatedFFN: parts.count == 2))
        case "gpt2", "openai-gpt":
            let gpt2 = modelType == "gpt2"
            try f.refuse("add_cross_attention", unless: { $0 == .bool(false) }, "cross-attention layers are not counted")
            let D = try f.int("n_embd", 768)
            s = ModelShape(family: gpt2 ? .gpt2 : .openaiGPT, head: head, vocabSize: try f.int("vocab_size", gpt2 ? 50257 : 40478),
                           hiddenSize: D, layers: try f.int("n_layer", 12), heads: try f.int("n_head", 12),
                           intermediateSize: gpt2 ? try f.optionalInt("n_inner") ?? fourTimes(D) : fourTimes(D),
                           positions: try f.int("n_positions", gpt2 ? 1024 : 512),
                           tieWordEmbeddings: try f.bool("tie_word_embeddings", true))
        default:
            throw ParameterCountError.unknownModelType(path: path, modelType: modelType)
        }
        if [ModelShape.Family.roberta, .electra, .xlnet, .deberta, .debertaV2, .xlm].contains(s.family) {
            s.tieWordEmbeddings = try f.bool("tie_word_embeddings", true)
        }
        try s.validate(source: path)
        return s
    }
}
