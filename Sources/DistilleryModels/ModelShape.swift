import Foundation
import DistilleryTensor

/// The shape of a model, as far as its parameter count goes, for every family `distill params`
/// knows: the encoders Distillery runs (counted from their real `ParameterLayout`, so a count
/// cannot drift from what is loaded) and the families it only counts (counted tensor by tensor
/// as transformers builds them; Tests/Scripts/param_counts.py holds the reference numbers).
///
/// Dimensions keep their Hugging Face meaning: `positions` is max_position_embeddings (BART adds
/// its offset of 2 rows; DeBERTa may use it only for relative positions), `headDim` is set only
/// where the attention width is not hidden_size (T5's d_kv, DeBERTa-v2's attention_head_size).
public struct ModelShape: Codable, Sendable, Equatable {
    public enum Family: String, Codable, Sendable, CaseIterable {
        // Run by Distillery.
        case bert, distilbert, albert
        // Counted only.
        case roberta, electra, xlnet, deberta, debertaV2 = "deberta-v2", xlm, bart, t5, openaiGPT = "openai-gpt", gpt2, gpt3

        /// The encoder family Distillery runs, if it is one.
        public var runFamily: ModelFamily? { ModelFamily(rawValue: rawValue) }
        public var isSeq2Seq: Bool { self == .bart || self == .t5 }
        public var isDecoderOnly: Bool { self == .gpt2 || self == .openaiGPT || self == .gpt3 }
        /// The stack's section name in breakdowns.
        var stack: String { isDecoderOnly ? "decoder" : "encoder" }

        public var title: String {
            switch self {
            case .bert: return "BERT"
            case .distilbert: return "DistilBERT"
            case .albert: return "ALBERT"
            case .roberta: return "RoBERTa"
            case .electra: return "ELECTRA"
            case .xlnet: return "XLNet"
            case .deberta: return "DeBERTa"
            case .debertaV2: return "DeBERTa-v2/v3"
            case .xlm: return "XLM"
            case .bart: return "BART"
            case .t5: return "T5"
            case .gpt2: return "GPT-2"
            case .openaiGPT: return "GPT"
            case .gpt3: return "GPT-3"
            }
        }

        /// config.json's name for a dimension (the GPT-3 paper's, for GPT-3), for messages.
        public func key(_ f: Field) -> String {
            switch (self, f) {
            case (_, .vocab): return self == .gpt3 ? "n_vocab" : "vocab_size"
            case (.distilbert, .hidden): return "dim"
            case (.xlm, .hidden): return "emb_dim"
            case (.xlnet, .hidden), (.bart, .hidden), (.t5, .hidden), (.gpt3, .hidden): return "d_model"
            case (.gpt2, .hidden), (.openaiGPT, .hidden): return "n_embd"
            case (_, .hidden): return "hidden_size"
            case (_, .embedding): return "embedding_size"
            case (.distilbert, .layers), (.xlm, .layers), (.gpt3, .layers): return "n_layers"
            case (.xlnet, .layers), (.gpt2, .layers), (.openaiGPT, .layers): return "n_layer"
            case (.bart, .layers): return "encoder_layers"
            case (.t5, .layers): return "num_layers"
            case (_, .layers): return "num_hidden_layers"
            case (.t5, .decoderLayers): return "num_decoder_layers"
            case (_, .decoderLayers): return "decoder_layers"
            case (.distilbert, .heads), (.xlm, .heads), (.gpt3, .heads): return "n_heads"
            case (.xlnet, .heads), (.gpt2, .heads), (.openaiGPT, .heads): return "n_head"
            case (.bart, .heads): return "encoder_attention_heads"
            case (.t5, .heads): return "num_heads"
            case (_, .heads): return "num_attention_heads"
            case (.t5, .headDim): return "d_kv"
            case (_, .headDim): return "attention_head_size"
            case (.distilbert, .intermediate): return "hidden_dim"
            case (.xlnet, .intermediate): return "d_inner"
            case (.bart, .intermediate): return "encoder_ffn_dim"
            case (.t5, .intermediate), (.gpt3, .intermediate): return "d_ff"
            case (.gpt2, .intermediate): return "n_inner"
            case (.xlm, .intermediate), (.openaiGPT, .intermediate): return "4 × hidden (fixed)"
            case (_, .intermediate): return "intermediate_size"
            case (_, .decoderIntermediate): return "decoder_ffn_dim"
            case (.gpt2, .positions), (.openaiGPT, .positions): return "n_positions"
            case (.gpt3, .positions): return "n_ctx"
            case (_, .positions): return "max_position_embeddings"
            case (_, .typeVocab): return "type_vocab_size"
            case (_, .languages): return "n_langs"
            case (_, .labels): return "num_labels"
            }
        }
    }

    /// The dimensions every family has some of (what-if options and messages name them).
    public enum Field: String, Sendable, CaseIterable {
        case vocab, hidden, embedding, layers, decoderLayers, heads, headDim, intermediate, decoderIntermediate
        case positions, typeVocab, languages, labels
    }

    /// Which Hugging Face class is counted.
    public enum Head: String, Codable, Sendable {
        /// The base class (FooModel): BERT, ALBERT and RoBERTa have a pooler, the rest no head.
        case base
        /// The masked- or causal-LM class (FooForMaskedLM, FooLMHeadModel, T5/BART
        /// ForConditionalGeneration); its decoder is tied to the word embeddings unless
        /// `tieWordEmbeddings` is false.
        case lm
        /// ELECTRA's pre-training discriminator (ElectraForPreTraining).
        case discriminator
    }

    /// DeBERTa's disentangled attention (DeBERTa and DeBERTa-v2 config fields).
    public struct DebertaOptions: Codable, Sendable, Equatable {
        public var relativeAttention: Bool
        /// Relative distances each side (< 1: max_position_embeddings).
        public var maxRelativePositions: Int
        /// DeBERTa-v2 log buckets each side (≤ 0: none).
        public var positionBuckets: Int
        /// An absolute position table added to the input.
        public var positionBiasedInput: Bool
        /// pos_att_type: content→position and position→content terms.
        public var c2p: Bool, p2c: Bool
        /// DeBERTa-v2: positions use the content key/query projections (no separate ones).
        public var shareAttentionKey: Bool
        /// DeBERTa-v2: a LayerNorm on the relative embeddings (norm_rel_ebd "layer_norm").
        public var normRelativeEmbeddings: Bool
        /// The MLM head transformers builds by default (`legacy`): a transform to the embedding
        /// width and a decoder that is the word table when tied; otherwise an H-wide head over
        /// the word table.
        public var legacyHead: Bool

        public init(relativeAttention: Bool = true, maxRelativePositions: Int = -1, positionBuckets: Int = -1,
                    positionBiasedInput: Bool = false, c2p: Bool = true, p2c: Bool = true,
                    shareAttentionKey: Bool = false, normRelativeEmbeddings: Bool = false, legacyHead: Bool = true) {
            self.relativeAttention = relativeAttention; self.maxRelativePositions = maxRelativePositions
            self.positionBuckets = positionBuckets; self.positionBiasedInput = positionBiasedInput
            self.c2p = c2p; self.p2c = p2c; self.shareAttentionKey = shareAttentionKey
            self.normRelativeEmbeddings = normRelativeEmbeddings; self.legacyHead = legacyHead
        }
    }

    /// T5's relative position buckets and feed-forward form.
    public struct T5Options: Codable, Sendable, Equatable {
        public var relativeBuckets: Int
        /// feed_forward_proj "gated-…" (T5 v1.1, Flan-T5): two input matrices.
        public var gatedFFN: Bool
        public init(relativeBuckets: Int = 32, gatedFFN: Bool = false) {
            self.relativeBuckets = relativeBuckets; self.gatedFFN = gatedFFN
        }
    }

    public var family: Family
    public var head: Head
    /// Whether the model has a pooler, for models read from files (which have what their
    /// tensors have); nil: the class's own (BERT, ALBERT and RoBERTa base classes have one).
    public var pooler: Bool?
    /// Classes of a sequence-classification head (the encoders Distillery runs).
    public var numLabels: Int
    public var vocabSize: Int
    public var hiddenSize: Int
    /// E, the embedding width: hidden_size except where factorized (ALBERT, ELECTRA, DeBERTa).
    public var embeddingSize: Int
    /// Layers of the encoder (the decoder, for GPT).
    public var layers: Int
    /// Decoder layers of BART and T5; 0 otherwise.
    public var decoderLayers: Int
    public var heads: Int
    /// Width of one head where it is not hidden_size / heads.
    public var headDim: Int?
    public var intermediateSize: Int
    /// BART's decoder_ffn_dim; 0 otherwise.
    public var decoderIntermediateSize: Int
    public var positions: Int
    public var typeVocabSize: Int
    /// ALBERT's cross-layer sharing.
    public var sharing: LayerSharing
    /// An LM head's decoder is the word table (false: its own matrix).
    public var tieWordEmbeddings: Bool
    public var deberta: DebertaOptions?
    public var t5: T5Options?
    /// XLM's language embeddings (rows; 0: none).
    public var languages: Int

    public init(family: Family, head: Head = .base, pooler: Bool? = nil, numLabels: Int = 0, vocabSize: Int,
                hiddenSize: Int, embeddingSize: Int? = nil, layers: Int, decoderLayers: Int = 0, heads: Int,
                headDim: Int? = nil, intermediateSize: Int, decoderIntermediateSize: Int = 0, positions: Int,
                typeVocabSize: Int = 0, sharing: LayerSharing = .none, tieWordEmbeddings: Bool = true,
                deberta: DebertaOptions? = nil, t5: T5Options? = nil, languages: Int = 0) {
        self.family = family; self.head = head; self.pooler = pooler; self.numLabels = numLabels
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.embeddingSize = embeddingSize ?? hiddenSize
        self.layers = layers; self.decoderLayers = decoderLayers; self.heads = heads; self.headDim = headDim
        self.intermediateSize = intermediateSize; self.decoderIntermediateSize = decoderIntermediateSize
        self.positions = positions; self.typeVocabSize = typeVocabSize; self.sharing = sharing
        self.tieWordEmbeddings = tieWordEmbeddings; self.deberta = deberta; self.t5 = t5; self.languages = languages
    }

    /// The shape of an encoder Distillery runs, heads as it has them.
    public init(encoder c: EncoderConfig) {
        let family: Family = switch c.family { case .bert: .bert; case .distilbert: .distilbert; case .albert: .albert }
        self.init(family: family, head: c.hasMLMHead ? .lm : .base, pooler: c.hasPooler, numLabels: c.numLabels,
                  vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, embeddingSize: c.embeddingSize, layers: c.numLayers,
                  heads: c.numHeads, intermediateSize: c.intermediateSize, positions: c.maxPositions,
                  typeVocabSize: c.typeVocabSize, sharing: c.sharing)
    }

    /// The width of the attention (query/key/value outputs).
    public var attentionWidth: Int { headDim.map { heads * $0 } ?? hiddenSize }

    /// Whether the counted class has a pooler.
    public var hasPooler: Bool {
        pooler ?? (head == .base && [.bert, .albert, .roberta].contains(family))
    }

    /// The configuration Distillery would run, for the families it runs (nil otherwise).
    public var encoderConfig: EncoderConfig? {
        guard let f = family.runFamily else { return nil }
        let albert = f == .albert
        return EncoderConfig(family: f, vocabSize: vocabSize, hiddenSize: hiddenSize, embeddingSize: embeddingSize,
                             numLayers: layers, numHeads: heads, intermediateSize: intermediateSize, maxPositions: positions,
                             typeVocabSize: typeVocabSize, activation: albert ? .geluTanh : .gelu, sharing: sharing,
                             hiddenDropout: albert ? 0 : 0.1, attentionDropout: albert ? 0 : 0.1,
                             hasMLMHead: head == .lm, hasPooler: hasPooler, numLabels: numLabels)
    }

    /// The sequence length the model was built for (its learned positions; T5 and XLNet have
    /// none: nil).
    public var context: Int? {
        switch family {
        case .t5, .xlnet: return nil
        case .deberta, .debertaV2: return deberta?.positionBiasedInput == true ? positions : nil
        default: return positions
        }
    }

    // MARK: checks

    /// Upper bounds, as for the encoders Distillery runs (`EncoderConfig.limits`): far beyond any
    /// published model, low enough that no count overflows 64 bits.
    public static let limits: [Field: ClosedRange<Int>] = [
        .vocab: 1...Int(Int32.max), .hidden: 1...(1 << 16), .embedding: 1...(1 << 16), .layers: 1...4096,
        .decoderLayers: 1...4096, .heads: 1...4096, .headDim: 1...(1 << 16), .intermediate: 1...(1 << 20),
        .decoderIntermediate: 1...(1 << 20), .positions: 1...(1 << 20), .typeVocab: 0...(1 << 16),
        .languages: 0...(1 << 16), .labels: 0...100_000,
    ]

    /// Checks every dimension is in range and the dimensions fit together, naming the field as
    /// `source` (a config.json, a preset) spells it.
    public func validate(source: String) throws {
        func bad(_ f: Field, _ v: Int, _ why: String) -> ParameterCountError {
            .invalidValue(source: source, field: family.key(f), value: String(v), reason: why)
        }
        func check(_ f: Field, _ v: Int) throws {
            let r = Self.limits[f]!
            if v < r.lowerBound { throw bad(f, v, r.lowerBound == 0 ? "must not be negative" : "must be at least \(r.lowerBound)") }
            if v > r.upperBound { throw bad(f, v, "exceeds any model `distill params` counts (at most \(grouped(r.upperBound)))") }
        }
        try check(.vocab, vocabSize)
        try check(.hidden, hiddenSize)
        try check(.embedding, embeddingSize)
        try check(.layers, layers)
        try check(.heads, heads)
        try check(.intermediate, intermediateSize)
        try check(.typeVocab, typeVocabSize)
        try check(.languages, languages)
        try check(.labels, numLabels)
        if family.isSeq2Seq {
            try check(.decoderLayers, decoderLayers)
            if family == .bart { try check(.decoderIntermediate, decoderIntermediateSize) }
        } else if decoderLayers != 0 {
            throw bad(.decoderLayers, decoderLayers, "\(family.title) has no separate decoder")
        }
        if family == .t5 || family == .xlnet {
            if positions != 0 { throw bad(.positions, positions, "\(family.title) has no position table") }
        } else {
            try check(.positions, positions)
        }
        if let d = headDim {
            try check(.headDim, d)
            if heads * d > 1 << 20 { throw bad(.headDim, d, "\(heads) heads × \(d) exceeds any model (at most \(grouped(1 << 20)))") }
        } else if family != .gpt3 && hiddenSize % heads != 0 {
            // (The GPT-3 paper's table prints heads that do not divide d_model; its counts do not
            // depend on how d_model is split.)
            throw bad(.heads, heads, "\(family.key(.hidden)) \(hiddenSize) is not divisible by \(heads) heads")
        }
        if embeddingSize != hiddenSize && ![.albert, .electra, .deberta, .debertaV2].contains(family) {
            throw bad(.embedding, embeddingSize, "only ALBERT, ELECTRA and DeBERTa factorize embeddings; \(family.title) needs it equal to \(family.key(.hidden))")
        }
        if head == .discriminator && family != .electra {
            throw ParameterCountError.unsupported(source: source, field: "architectures", value: "discriminator head",
                                                  reason: "only ELECTRA has a pre-training discriminator")
        }
        if numLabels > 0 && family.runFamily == nil {
            throw bad(.labels, numLabels, "classification heads are counted for the encoders Distillery runs")
        }
        if let o = deberta {
            let r = 1...(1 << 20)
            if o.maxRelativePositions > r.upperBound {
                throw ParameterCountError.invalidValue(source: source, field: "max_relative_positions", value: String(o.maxRelativePositions),
                                                       reason: "exceeds any model (at most \(grouped(r.upperBound)))")
            }
            if o.positionBuckets > r.upperBound {
                throw ParameterCountError.invalidValue(source: source, field: "position_buckets", value: String(o.positionBuckets),
                                                       reason: "exceeds any model (at most \(grouped(r.upperBound)))")
            }
        }
        if let o = t5, !(1...(1 << 16)).contains(o.relativeBuckets) {
            throw ParameterCountError.invalidValue(source: source, field: "relative_attention_num_buckets", value: String(o.relativeBuckets),
                                                   reason: "must be 1…65,536")
        }
        if let c = encoderConfig {
            do { try c.validateShape() } catch let e as ConfigError { throw ParameterCountError.invalidConfig(source: source, e) }
        }
    }

    // MARK: counting

    /// The breakdown of this shape's parameters. `source` names it in messages.
    public func breakdown(name: String, source: String? = nil) throws -> ParameterBreakdown {
        try validate(source: source ?? name)
        if let c = encoderConfig { return ParameterBreakdown(name: name, layout: ParameterLayout(config: c)) }
        var b = BreakdownBuilder()
        var notes: [String] = []
        let V = vocabSize, H = hiddenSize, E = embeddingSize, L = layers, I = intermediateSize, P = positions
        let A = attentionWidth
        var widths = L * A
        // The LM head's decoder width: the embedding width for ELECTRA's generator head.
        var lmWidth = H
        // transformers 5 ties T5's LM head whatever tie_word_embeddings says (false only turns
        // off T5's output scaling), and DeBERTa's non-legacy head always decodes with the word table.
        var tiedHead = tieWordEmbeddings || family == .t5
        switch family {
        case .bert, .distilbert, .albert:
            preconditionFailure("counted from the layout above")

        case .roberta, .electra:
            b.table("embeddings", "word", rows: V, width: E)
            b.table("embeddings", "position", rows: P, width: E)
            if typeVocabSize > 0 { b.table("embeddings", "token type", rows: typeVocabSize, width: E) }
            b.norms("embeddings", E)
            if family == .electra && E != H {
                b.matrix("embeddings", "factorized projection", .embeddings, rows: H, cols: E, bias: true)
            }
            Self.layers(&b, "encoder", L, hidden: H, attention: A, ffn: I, normsPerLayer: 2)
            if hasPooler { b.matrix("heads", "pooler", .heads, rows: H, cols: H, bias: true) }
            switch head {
            case .base: break
            case .lm:
                // RoBERTa's lm_head (dense, LayerNorm, bias) and ELECTRA's generator head (H→E).
                lmWidth = family == .electra ? E : H
                b.matrix("heads", "MLM head", .heads, rows: lmWidth, cols: H, bias: true)
                b.vector("heads", "MLM head", .heads, lmWidth, count: 2)
                b.vector("heads", "MLM head", .heads, V)
                // RoBERTa's untied decoder has a bias of its own besides the head's.
                if family == .roberta && !tieWordEmbeddings { b.vector("heads", "LM decoder (untied)", .heads, V) }
            case .discriminator:
                b.matrix("heads", "discriminator head", .heads, rows: H, cols: H, bias: true)
                b.matrix("heads", "discriminator head", .heads, rows: 1, cols: H, bias: true)
            }

        case .xlnet:
            b.table("embeddings", "word", rows: V, width: H)
            b.vector("embeddings", "mask", .embeddings, H, lookup: true)
            // q, k, v, o [d_model × heads × d_head], no biases.
            b.matrix("encoder", "attention", .attention, rows: A, cols: H, count: 3 * L)
            b.matrix("encoder", "attention", .attention, rows: H, cols: A, count: L)
            // Relative positions: the projection r and the biases r_w, r_r; segments: r_s, seg_embed.
            b.matrix("encoder", "relative attention", .attention, rows: A, cols: H, count: L)
            b.vector("encoder", "relative attention", .attention, A, count: 2 * L)
            b.vector("encoder", "relative segments", .attention, 3 * A, count: L)
            b.matrix("encoder", "FFN", .ffn, rows: I, cols: H, count: L, bias: true)
            b.matrix("encoder", "FFN", .ffn, rows: H, cols: I, count: L, bias: true)
            b.norms("encoder", H, count: 2 * L)
            if head == .lm { b.vector("heads", "LM head", .heads, V) }

        case .deberta, .debertaV2:
            let o = deberta ?? DebertaOptions()
            b.table("embeddings", "word", rows: V, width: E)
            if o.positionBiasedInput { b.table("embeddings", "position", rows: P, width: E) }
            if typeVocabSize > 0 { b.table("embeddings", "token type", rows: typeVocabSize, width: E) }
            if E != H { b.matrix("embeddings", "factorized projection", .embeddings, rows: H, cols: E) }
            b.norms("embeddings", H)
            if o.relativeAttention {
                let k = o.maxRelativePositions < 1 ? P : o.maxRelativePositions
                let rows = family == .debertaV2 && o.positionBuckets > 0 ? 2 * o.positionBuckets : 2 * k
                b.table("embeddings", "relative positions", rows: rows, width: H)
            }
            // (transformers builds this LayerNorm even without relative attention.)
            if family == .debertaV2 && o.normRelativeEmbeddings { b.norms("embeddings", H) }
            if family == .deberta {
                // in_proj [3A × H] without bias, then separate query and value biases.
                b.matrix("encoder", "attention", .attention, rows: 3 * A, cols: H, count: L)
                b.vector("encoder", "attention", .attention, A, count: 2 * L)
                b.matrix("encoder", "attention", .attention, rows: H, cols: H, count: L, bias: true)
                if o.relativeAttention && o.c2p { b.matrix("encoder", "relative attention", .attention, rows: A, cols: H, count: L) }
                if o.relativeAttention && o.p2c { b.matrix("encoder", "relative attention", .attention, rows: A, cols: H, count: L, bias: true) }
            } else {
                b.matrix("encoder", "attention", .attention, rows: A, cols: H, count: 3 * L, bias: true)
                b.matrix("encoder", "attention", .attention, rows: H, cols: H, count: L, bias: true)
                if o.relativeAttention && !o.shareAttentionKey {
                    let n = (o.c2p ? 1 : 0) + (o.p2c ? 1 : 0)
                    b.matrix("encoder", "relative attention", .attention, rows: A, cols: H, count: n * L, bias: true)
                }
            }
            b.matrix("encoder", "FFN", .ffn, rows: I, cols: H, count: L, bias: true)
            b.matrix("encoder", "FFN", .ffn, rows: H, cols: I, count: L, bias: true)
            b.norms("encoder", H, count: 2 * L)
            if head == .lm {
                // The legacy head maps to E and decodes with the E-wide word table (its own, with
                // a second bias, when untied); the other is H wide and always uses the word table.
                lmWidth = o.legacyHead ? E : H
                b.matrix("heads", "MLM head", .heads, rows: lmWidth, cols: H, bias: true)
                b.vector("heads", "MLM head", .heads, lmWidth, count: 2)
                b.vector("heads", "MLM head", .heads, V)
                if !o.legacyHead { tiedHead = true }
                if !tieWordEmbeddings && o.legacyHead { b.vector("heads", "LM decoder (untied)", .heads, V) }
            }

        case .xlm:
            b.table("embeddings", "word", rows: V, width: H)
            b.table("embeddings", "position", rows: P, width: H)
            if languages > 1 { b.table("embeddings", "language", rows: languages, width: H) }
            b.norms("embeddings", H)
            Self.layers(&b, "encoder", L, hidden: H, attention: A, ffn: I, normsPerLayer: 2)
            if head == .lm { b.vector("heads", "LM head", .heads, V) }

        case .bart:
            b.table("embeddings", "word", rows: V, width: H)
            let Ld = decoderLayers
            // Learned positions with BART's offset of 2 rows, and a LayerNorm on the embeddings, per
            // stack; untied, each stack has its own token table besides the shared one.
            for (stack, n, ffn) in [("encoder", L, I), ("decoder", Ld, decoderIntermediateSize)] {
                if !tieWordEmbeddings { b.table(stack, "word (untied)", rows: V, width: H) }
                b.table(stack, "position", rows: P + 2, width: H)
                b.norms(stack, H)
                Self.layers(&b, stack, n, hidden: H, attention: A, ffn: ffn, normsPerLayer: stack == "decoder" ? 3 : 2,
                            crossAttention: stack == "decoder")
            }
            widths = L * A + 2 * Ld * A
            if tieWordEmbeddings { notes.append("word embeddings shared by encoder and decoder: counted once") }

        case .t5:
            let o = t5 ?? T5Options()
            b.table("embeddings", "word", rows: V, width: H)
            let Ld = decoderLayers
            for (stack, n) in [("encoder", L), ("decoder", Ld)] {
                // One bucket table per stack, in its first block: [buckets × heads].
                b.matrix(stack, "relative position bias", .embeddings, rows: o.relativeBuckets, cols: heads, lookup: true)
                Self.layers(&b, stack, n, hidden: H, attention: A, ffn: I, normsPerLayer: stack == "decoder" ? 3 : 2,
                            crossAttention: stack == "decoder", biases: false, normBias: false, gated: o.gatedFFN)
                b.norms(stack, H, bias: false)
            }
            widths = L * A + 2 * Ld * A
            notes.append("word embeddings shared by encoder and decoder: counted once")

        case .gpt2, .openaiGPT, .gpt3:
            b.table("embeddings", "word", rows: V, width: H)
            b.table("embeddings", "position", rows: P, width: H)
            Self.layers(&b, "decoder", L, hidden: H, attention: A, ffn: I, normsPerLayer: 2)
            if family != .openaiGPT { b.norms("decoder", H) }
        }
        if head == .lm {
            if tiedHead {
                notes.append("LM decoder tied to the word embeddings: counted once, under embeddings")
            } else {
                b.matrix("heads", "LM decoder (untied)", .heads, rows: V, cols: lmWidth)
            }
        }
        if b.overflowed { throw ParameterCountError.tooLarge(source: source ?? name) }
        return b.breakdown(name: name, attentionWidths: widths, notes: notes)
    }

    /// `n` transformer layers: self-attention (and cross-attention) of width `attention`, an FFN
    /// of width `ffn`, `normsPerLayer` norms.
    static func layers(_ b: inout BreakdownBuilder, _ stack: String, _ n: Int, hidden H: Int, attention A: Int, ffn I: Int,
                       normsPerLayer: Int, crossAttention: Bool = false, biases: Bool = true, normBias: Bool = true,
                       gated: Bool = false) {
        for component in crossAttention ? ["attention", "cross-attention"] : ["attention"] {
            b.matrix(stack, component, .attention, rows: A, cols: H, count: 3 * n, bias: biases)
            b.matrix(stack, component, .attention, rows: H, cols: A, count: n, bias: biases)
        }
        b.matrix(stack, "FFN", .ffn, rows: I, cols: H, count: (gated ? 2 : 1) * n, bias: biases)
        b.matrix(stack, "FFN", .ffn, rows: H, cols: I, count: n, bias: biases)
        b.norms(stack, H, count: normsPerLayer * n, bias: normBias)
    }
}

/// What `distill params` cannot count, each naming the file, preset, field or option to fix.
public indirect enum ParameterCountError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case unknownModelType(path: String, modelType: String?)
    case invalidValue(source: String, field: String, value: String, reason: String)
    case unsupported(source: String, field: String, value: String, reason: String)
    case invalidConfig(source: String, ConfigError)
    case tooLarge(source: String)
    case notAModel(name: String, reason: String)
    /// A command-line option out of range or not applicable.
    case badOption(option: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read config: \(r)"
        case let .unknownModelType(p, t):
            return "\(p): model_type \(t.map { "'\($0)' is not a family `distill params` knows" } ?? "is missing"); it counts "
                + ModelShape.Family.allCases.filter { $0 != .gpt3 }.map(\.rawValue).joined(separator: ", ")
                + " (bert, distilbert and albert are also run by Distillery)"
        case let .invalidValue(s, f, v, r): return "\(s): \(f) = \(v): \(r)"
        case let .unsupported(s, f, v, r): return "\(s): \(f) = \(v) is not supported: \(r)"
        case let .invalidConfig(s, e): return "\(s): \(e)"
        case let .tooLarge(s): return "\(s): the parameter count does not fit in 64 bits"
        case let .notAModel(n, r): return "\(n): \(r)"
        case let .badOption(o, r): return "\(o): \(r)"
        }
    }
}
