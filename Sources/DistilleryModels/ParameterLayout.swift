import DistilleryTensor

/// What a parameter is part of, for breakdowns and for weight-decay rules.
public enum ParameterGroup: String, Codable, Sendable, CaseIterable {
    case wordEmbeddings = "word embeddings"
    case positionEmbeddings = "position embeddings"
    case typeEmbeddings = "token type embeddings"
    case embeddingProjection = "factorized projection"
    case attention
    case ffn = "FFN"
    case layerNorm = "LayerNorms"
    case pooler
    case mlmHead = "MLM head"
    case classifier
    /// Training-only projection from student to teacher width (never exported).
    case distillProjection = "distillation projection"
}

extension ParameterGroup {
    /// Tables an int8 checkpoint keeps in fp32 (see `Quantizer.quantizedSlots`): the token-type
    /// table, whose row is added to every token of its segment.
    public static let keptFP32InInt8: Set<ParameterGroup> = [.typeEmbeddings]
}

/// One named parameter tensor inside the contiguous parameter buffer.
public struct ParameterSlot: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public let group: ParameterGroup
    /// AdamW weight decay applies (not to biases or LayerNorm weights).
    public let decay: Bool
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

// Offsets of each block's tensors in the parameter buffer. The same offsets address the
// gradient buffer and the Adam moments.

public struct EmbeddingSlots: Sendable {
    public let word: Int            // [V×E]
    public let position: Int        // [P×E]
    public let tokenType: Int?      // [T×E]
    public let normWeight: Int      // [E]
    public let normBias: Int        // [E]
    public let projectionWeight: Int?  // [H×E]  (ALBERT)
    public let projectionBias: Int?    // [H]
}

public struct AttentionSlots: Sendable {
    /// query, key, value weights, adjacent: one [3H×H] matrix.
    public let qkvWeight: Int
    /// query, key, value biases, adjacent: [3H].
    public let qkvBias: Int
    public let outputWeight: Int    // [H×H]
    public let outputBias: Int      // [H]
    public let normWeight: Int      // [H]
    public let normBias: Int        // [H]
}

public struct FFNSlots: Sendable {
    public let inputWeight: Int     // [I×H]
    public let inputBias: Int       // [I]
    public let outputWeight: Int    // [H×I]
    public let outputBias: Int      // [H]
    public let normWeight: Int      // [H]
    public let normBias: Int        // [H]
}

public struct PoolerSlots: Sendable {
    public let weight: Int          // [H×H]
    public let bias: Int            // [H]
}

/// A sequence-classification head after the pooler: logits = W · dropout(pooled) + b.
public struct ClassifierSlots: Sendable {
    public let weight: Int          // [C×H]
    public let bias: Int            // [C]
}

/// The MLM head: transform (dense, activation, LayerNorm) then the decoder tied to the word
/// embeddings plus its own bias. Ht = E for ALBERT, H otherwise.
public struct HeadSlots: Sendable {
    public let transformWeight: Int // [Ht×H]
    public let transformBias: Int   // [Ht]
    public let normWeight: Int      // [Ht]
    public let normBias: Int        // [Ht]
    public let bias: Int            // [V]
}

/// A matrix of the model as the layer schedule multiplies it: linear weights [rows × cols]
/// (query, key and value together as one [3H × H]) and embedding tables [rows × E].
public struct MatrixSite: Sendable, Equatable {
    /// Offset of the first slot (the query weight for QKV).
    public let offset: Int
    public let rows: Int
    public let cols: Int
    /// The slots it covers, in order.
    public let slots: [String]
    /// Embedding tables are gathered by row, never multiplied (except the word table, which is
    /// also the tied MLM decoder).
    public let isEmbedding: Bool
}

/// One applied transformer layer: which attention and FFN blocks it runs.
public struct LayerStep: Sendable, Equatable {
    public let attention: Int
    public let ffn: Int
}

/// Every parameter of an encoder in one contiguous buffer, addressed by a slot table.
public struct ParameterLayout: Sendable {
    public let config: EncoderConfig
    public private(set) var slots: [ParameterSlot] = []
    public private(set) var count = 0
    public private(set) var embeddings: EmbeddingSlots! = nil
    public private(set) var attention: [AttentionSlots] = []
    public private(set) var ffn: [FFNSlots] = []
    public private(set) var pooler: PoolerSlots?
    public private(set) var head: HeadSlots?
    public private(set) var classifier: ClassifierSlots?
    /// Applied layers in order; shared blocks appear more than once. ALBERT's groups of
    /// several sub-layers contribute one step each (transformers 5 reports a hidden state
    /// after each).
    public let steps: [LayerStep]
    private var index: [String: Int] = [:]

    public init(config c: EncoderConfig) {
        config = c
        let (nAttention, nFFN, steps) = Self.blocks(c)
        self.steps = steps
        let V = c.vocabSize, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize

        let word = add("embeddings.word", [V, E], .wordEmbeddings, decay: true)
        let pos = add("embeddings.position", [c.maxPositions, E], .positionEmbeddings, decay: true)
        let type = c.hasTokenTypes ? add("embeddings.token_type", [c.typeVocabSize, E], .typeEmbeddings, decay: true) : nil
        let nw = add("embeddings.norm.weight", [E], .layerNorm, decay: false)
        let nb = add("embeddings.norm.bias", [E], .layerNorm, decay: false)
        var pw: Int?, pb: Int?
        if c.hasEmbeddingProjection {
            pw = add("embeddings.projection.weight", [H, E], .embeddingProjection, decay: true)
            pb = add("embeddings.projection.bias", [H], .embeddingProjection, decay: false)
        }
        embeddings = EmbeddingSlots(word: word, position: pos, tokenType: type, normWeight: nw, normBias: nb,
                                    projectionWeight: pw, projectionBias: pb)
        for a in 0..<nAttention {
            let p = "attention.\(a)."
            let q = add(p + "query.weight", [H, H], .attention, decay: true)
            _ = add(p + "key.weight", [H, H], .attention, decay: true)
            _ = add(p + "value.weight", [H, H], .attention, decay: true)
            let qb = add(p + "query.bias", [H], .attention, decay: false)
            _ = add(p + "key.bias", [H], .attention, decay: false)
            _ = add(p + "value.bias", [H], .attention, decay: false)
            let ow = add(p + "output.weight", [H, H], .attention, decay: true)
            let ob = add(p + "output.bias", [H], .attention, decay: false)
            let lw = add(p + "norm.weight", [H], .layerNorm, decay: false)
            let lb = add(p + "norm.bias", [H], .layerNorm, decay: false)
            attention.append(AttentionSlots(qkvWeight: q, qkvBias: qb, outputWeight: ow, outputBias: ob,
                                            normWeight: lw, normBias: lb))
        }
        for f in 0..<nFFN {
            let p = "ffn.\(f)."
            let iw = add(p + "intermediate.weight", [I, H], .ffn, decay: true)
            let ib = add(p + "intermediate.bias", [I], .ffn, decay: false)
            let ow = add(p + "output.weight", [H, I], .ffn, decay: true)
            let ob = add(p + "output.bias", [H], .ffn, decay: false)
            let lw = add(p + "norm.weight", [H], .layerNorm, decay: false)
            let lb = add(p + "norm.bias", [H], .layerNorm, decay: false)
            ffn.append(FFNSlots(inputWeight: iw, inputBias: ib, outputWeight: ow, outputBias: ob, normWeight: lw, normBias: lb))
        }
        if c.hasPooler {
            pooler = PoolerSlots(weight: add("pooler.weight", [H, H], .pooler, decay: true),
                                 bias: add("pooler.bias", [H], .pooler, decay: false))
        }
        if c.hasClassifier {
            classifier = ClassifierSlots(weight: add("classifier.weight", [c.numLabels, H], .classifier, decay: true),
                                         bias: add("classifier.bias", [c.numLabels], .classifier, decay: false))
        }
        if c.hasMLMHead {
            let Ht = c.headWidth
            let tw = add("head.transform.weight", [Ht, H], .mlmHead, decay: true)
            let tb = add("head.transform.bias", [Ht], .mlmHead, decay: false)
            // The head's LayerNorm counts as part of the head in breakdowns.
            let lw = add("head.norm.weight", [Ht], .mlmHead, decay: false)
            let lb = add("head.norm.bias", [Ht], .mlmHead, decay: false)
            let b = add("head.bias", [V], .mlmHead, decay: false)
            head = HeadSlots(transformWeight: tw, transformBias: tb, normWeight: lw, normBias: lb, bias: b)
        }
    }

    /// Attention and FFN blocks a configuration stores.
    static func blockCounts(_ c: EncoderConfig) -> (attention: Int, ffn: Int) {
        switch c.sharing {
        case .none: return (c.numLayers, c.numLayers)
        case let .groups(g, inner): return (g * inner, g * inner)
        case .attention: return (1, c.numLayers)
        case .ffn: return (c.numLayers, 1)
        }
    }

    /// ALBERT: the group layer i runs, as transformers computes it, int(i / (L / G)), which is
    /// ⌊i·G / L⌋ (groups need not divide the layers evenly: 5 layers in 2 groups run 0, 0, 0, 1, 1).
    public static func group(ofLayer i: Int, layers L: Int, groups G: Int) -> Int { i * G / L }

    private static func blocks(_ c: EncoderConfig) -> (Int, Int, [LayerStep]) {
        let L = c.numLayers
        switch c.sharing {
        case .none:
            return (L, L, (0..<L).map { LayerStep(attention: $0, ffn: $0) })
        case let .groups(g, inner):
            var steps: [LayerStep] = []
            for i in 0..<L {
                let group = Self.group(ofLayer: i, layers: L, groups: g)
                for j in 0..<inner { steps.append(LayerStep(attention: group * inner + j, ffn: group * inner + j)) }
            }
            return (g * inner, g * inner, steps)
        case .attention:
            return (1, L, (0..<L).map { LayerStep(attention: 0, ffn: $0) })
        case .ffn:
            return (L, 1, (0..<L).map { LayerStep(attention: $0, ffn: 0) })
        }
    }

    private mutating func add(_ name: String, _ shape: [Int], _ group: ParameterGroup, decay: Bool) -> Int {
        let s = ParameterSlot(name: name, shape: shape, offset: count, group: group, decay: decay)
        index[name] = slots.count
        slots.append(s)
        count += s.count
        return s.offset
    }

    /// Appends a training-only slot after the model's own (e.g. a student→teacher projection).
    public mutating func appendExtra(_ name: String, _ shape: [Int], decay: Bool) -> Int {
        add(name, shape, .distillProjection, decay: decay)
    }

    public func slot(_ name: String) -> ParameterSlot? { index[name].map { slots[$0] } }

    /// Every matrix the layer schedule multiplies or gathers from, in slot order.
    public var matrixSites: [MatrixSite] {
        let c = config, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize
        func site(_ offset: Int, _ rows: Int, _ cols: Int, embedding: Bool = false) -> MatrixSite {
            var names: [String] = []
            var o = offset
            while o < offset + rows * cols, let s = slots.first(where: { $0.offset == o }) { names.append(s.name); o += s.count }
            return MatrixSite(offset: offset, rows: rows, cols: cols, slots: names, isEmbedding: embedding)
        }
        let e = embeddings!
        var out = [site(e.word, c.vocabSize, E, embedding: true), site(e.position, c.maxPositions, E, embedding: true)]
        if let t = e.tokenType { out.append(site(t, c.typeVocabSize, E, embedding: true)) }
        if let w = e.projectionWeight { out.append(site(w, H, E)) }
        for a in attention { out += [site(a.qkvWeight, 3 * H, H), site(a.outputWeight, H, H)] }
        for f in ffn { out += [site(f.inputWeight, I, H), site(f.outputWeight, H, I)] }
        if let p = pooler { out.append(site(p.weight, H, H)) }
        if let k = classifier { out.append(site(k.weight, c.numLabels, H)) }
        if let h = head { out.append(site(h.transformWeight, c.headWidth, H)) }
        return out
    }

    /// The model's own parameters (excluding training-only extras).
    public var modelCount: Int { slots.filter { $0.group != .distillProjection }.reduce(0) { $0 + $1.count } }
}
