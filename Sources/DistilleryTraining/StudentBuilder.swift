import Foundation
import DistilleryTensor
import DistilleryModels

/// How a student is made from the teacher.
public enum StudentSpec: Sendable, Equatable {
    /// DistilBERT-style: a chosen list of teacher layers, embeddings and MLM head copied.
    case layers(LayerSelection)
    /// ALBERT-style: factorized embeddings from the teacher's word embeddings' truncated SVD,
    /// cross-layer sharing, shared weights from a chosen teacher layer.
    case albert(AlbertStudent)
    /// Any configuration, randomly initialised (BERT's normal(0, 0.02)).
    case config(EncoderConfig)
}

public struct LayerSelection: Sendable, Equatable {
    public var layers: [Int]
    /// The student's family: the teacher's, or distilbert (no token types, no pooler: the
    /// type-0 embedding is folded into the position embeddings, exact for single segments).
    public var family: ModelFamily?
    public var keepPooler = false
    public init(layers: [Int], family: ModelFamily? = nil, keepPooler: Bool = false) {
        self.layers = layers; self.family = family; self.keepPooler = keepPooler
    }
}

public struct AlbertStudent: Sendable, Equatable {
    public var embeddingSize: Int
    public var hiddenSize: Int?
    public var layers: Int?
    public var heads: Int?
    public var intermediateSize: Int?
    /// How the student's layers share weights (`LayerSharing.studentChoices`).
    public var sharing: LayerSharing = .all
    /// Teacher layer the shared weights start from (default: the middle layer).
    public var initLayer: Int?
    public init(embeddingSize: Int, hiddenSize: Int? = nil, layers: Int? = nil, heads: Int? = nil,
                intermediateSize: Int? = nil, sharing: LayerSharing = .all, initLayer: Int? = nil) {
        self.embeddingSize = embeddingSize; self.hiddenSize = hiddenSize; self.layers = layers; self.heads = heads
        self.intermediateSize = intermediateSize; self.sharing = sharing; self.initLayer = initLayer
    }
}

public enum StudentError: Error, CustomStringConvertible, Equatable {
    case layerOutOfRange(layer: Int, teacherLayers: Int)
    case noLayers
    case albertTeacher
    case embeddingSize(Int, max: Int)
    case initLayer(Int, teacherLayers: Int)

    public var description: String {
        switch self {
        case let .layerOutOfRange(l, n): return "student layer list names teacher layer \(l), but the teacher has layers 0…\(n - 1)"
        case .noLayers: return "the student layer list is empty"
        case .albertTeacher: return "a layer-selection student needs a BERT or DistilBERT teacher (ALBERT teachers share their layers); use builder = \"albert\""
        case let .embeddingSize(e, m): return "embedding_size \(e) must be between 1 and \(m) (the teacher's hidden size)"
        case let .initLayer(l, n): return "init_layer \(l) is not a teacher layer (0…\(n - 1))"
        }
    }
}

public enum StudentBuilder {
    /// The student's configuration, without building its weights (for validating a recipe).
    public static func plannedConfig(_ spec: StudentSpec, teacher tc: EncoderConfig) throws -> EncoderConfig {
        switch spec {
        case .config(let c): try c.validate(); return c
        case .layers(let s):
            if tc.family == .albert { throw StudentError.albertTeacher }
            if s.layers.isEmpty { throw StudentError.noLayers }
            for l in s.layers where l < 0 || l >= tc.numLayers { throw StudentError.layerOutOfRange(layer: l, teacherLayers: tc.numLayers) }
            var c = tc
            c.family = s.family ?? tc.family
            c.numLayers = s.layers.count
            c.sharing = .none
            if c.family == .distilbert { c.typeVocabSize = 0 }
            // A classifier teacher's head (pooler and classifier) comes along; otherwise the
            // pooler only when asked (it serves no loss).
            c.hasPooler = tc.hasClassifier || (s.keepPooler && c.family != .distilbert && tc.hasPooler)
            if c.family == .distilbert && tc.family != .distilbert && tc.hasClassifier {
                c.classifierDropout = max(c.classifierDropout, 0.2)
            }
            try c.validate()
            return c
        case .albert(let s):
            return try albertConfig(s, teacher: tc)
        }
    }

    static func albertConfig(_ spec: AlbertStudent, teacher tc: EncoderConfig) throws -> EncoderConfig {
        let Ht = tc.hiddenSize, E = spec.embeddingSize
        guard E >= 1 && E <= Ht else { throw StudentError.embeddingSize(E, max: Ht) }
        let H = spec.hiddenSize ?? Ht
        let L = spec.layers ?? tc.numLayers
        let sharing = spec.sharing
        if let l = spec.initLayer, !(0..<tc.numLayers).contains(l) { throw StudentError.initLayer(l, teacherLayers: tc.numLayers) }
        let c = EncoderConfig(family: .albert, vocabSize: tc.vocabSize, hiddenSize: H, embeddingSize: E, numLayers: L,
                              numHeads: spec.heads ?? (H == Ht ? tc.numHeads : max(1, H / 64)),
                              intermediateSize: spec.intermediateSize ?? (H == Ht ? tc.intermediateSize : 4 * H),
                              maxPositions: tc.maxPositions, typeVocabSize: tc.typeVocabSize, activation: tc.activation,
                              layerNormEps: tc.layerNormEps, sharing: sharing, hiddenDropout: tc.hiddenDropout,
                              attentionDropout: tc.attentionDropout, padTokenId: tc.padTokenId,
                              hasMLMHead: tc.hasMLMHead, hasPooler: tc.hasClassifier, numLabels: tc.numLabels,
                              labels: tc.hasClassifier ? tc.labels : nil)
        try c.validate()
        return c
    }

    public static func build(_ spec: StudentSpec, teacher: EncoderModel, seed: UInt64) throws -> EncoderModel {
        switch spec {
        case .layers(let s): return try layers(s, teacher: teacher)
        case .albert(let s): return try albert(s, teacher: teacher, seed: seed)
        case .config(let c):
            try c.validate()
            let m = EncoderModel(config: c)
            m.initializeRandomly(seed: seed)
            return m
        }
    }

    static func copy(_ from: EncoderModel, _ fromOffset: Int, _ to: EncoderModel, _ toOffset: Int, _ count: Int) {
        to.p(toOffset).update(from: from.p(fromOffset), count: count)
    }

    /// The teacher's block (attention, ffn) indices of teacher layer l.
    static func teacherBlocks(_ t: EncoderModel, layer l: Int) -> LayerStep {
        t.layout.steps[l]
    }

    static func copyAttention(_ t: EncoderModel, _ a: Int, _ s: EncoderModel, _ b: Int) {
        let x = t.layout.attention[a], y = s.layout.attention[b], H = t.config.hiddenSize
        copy(t, x.qkvWeight, s, y.qkvWeight, 3 * H * H); copy(t, x.qkvBias, s, y.qkvBias, 3 * H)
        copy(t, x.outputWeight, s, y.outputWeight, H * H); copy(t, x.outputBias, s, y.outputBias, H)
        copy(t, x.normWeight, s, y.normWeight, H); copy(t, x.normBias, s, y.normBias, H)
    }

    static func copyFFN(_ t: EncoderModel, _ a: Int, _ s: EncoderModel, _ b: Int) {
        let x = t.layout.ffn[a], y = s.layout.ffn[b], H = t.config.hiddenSize, I = t.config.intermediateSize
        copy(t, x.inputWeight, s, y.inputWeight, I * H); copy(t, x.inputBias, s, y.inputBias, I)
        copy(t, x.outputWeight, s, y.outputWeight, H * I); copy(t, x.outputBias, s, y.outputBias, H)
        copy(t, x.normWeight, s, y.normWeight, H); copy(t, x.normBias, s, y.normBias, H)
    }

    /// The pooler (or DistilBERT's pre-classifier) and the classifier, where both models have
    /// them at the same width.
    static func copyClassificationHead(_ t: EncoderModel, _ s: EncoderModel) {
        let H = t.config.hiddenSize
        guard s.config.hiddenSize == H else { return }
        if let tp = t.layout.pooler, let sp = s.layout.pooler {
            copy(t, tp.weight, s, sp.weight, H * H); copy(t, tp.bias, s, sp.bias, H)
        }
        if let tk = t.layout.classifier, let sk = s.layout.classifier, t.config.numLabels == s.config.numLabels {
            copy(t, tk.weight, s, sk.weight, t.config.numLabels * H); copy(t, tk.bias, s, sk.bias, t.config.numLabels)
        }
    }

    static func layers(_ spec: LayerSelection, teacher t: EncoderModel) throws -> EncoderModel {
        let tc = t.config
        let s = EncoderModel(config: try plannedConfig(.layers(spec), teacher: tc))
        let te = t.layout.embeddings!, se = s.layout.embeddings!
        let E = tc.embeddingSize
        copy(t, te.word, s, se.word, tc.vocabSize * E)
        copy(t, te.position, s, se.position, tc.maxPositions * E)
        if let tt = te.tokenType {
            if let st = se.tokenType { copy(t, tt, s, st, tc.typeVocabSize * E) } else {
                // No token types in the student: fold type 0 into every position.
                for p in 0..<tc.maxPositions { for e in 0..<E { s.p(se.position + p * E + e)[0] += t.p(tt + e)[0] } }
            }
        }
        copy(t, te.normWeight, s, se.normWeight, E); copy(t, te.normBias, s, se.normBias, E)
        for (i, l) in spec.layers.enumerated() {
            let b = teacherBlocks(t, layer: l)
            copyAttention(t, b.attention, s, i)
            copyFFN(t, b.ffn, s, i)
        }
        if s.config.poolerActivation == tc.poolerActivation {
            copyClassificationHead(t, s)
        } else if s.config.hasPooler {
            // BERT's tanh pooler and DistilBERT's ReLU pre-classifier are different layers: a
            // new head, drawn as a fine-tuning run would draw it.
            let fresh = EncoderModel(config: s.config)
            fresh.initializeRandomly(seed: 0x4845_4144)
            for slots in [s.layout.pooler.map { [$0.weight, $0.bias] }, s.layout.classifier.map { [$0.weight, $0.bias] }] {
                for o in slots ?? [] { let slot = s.layout.slots.first { $0.offset == o }!; copy(fresh, o, s, o, slot.count) }
            }
        }
        if let th = t.layout.head, let sh = s.layout.head {
            let H = tc.hiddenSize, Ht = tc.headWidth
            copy(t, th.transformWeight, s, sh.transformWeight, Ht * H); copy(t, th.transformBias, s, sh.transformBias, Ht)
            copy(t, th.normWeight, s, sh.normWeight, Ht); copy(t, th.normBias, s, sh.normBias, Ht)
            copy(t, th.bias, s, sh.bias, tc.vocabSize)
        }
        return s
    }

    static func albert(_ spec: AlbertStudent, teacher t: EncoderModel, seed: UInt64) throws -> EncoderModel {
        let tc = t.config
        let Ht = tc.hiddenSize, E = spec.embeddingSize
        let c = try albertConfig(spec, teacher: tc)
        let H = c.hiddenSize
        let s = EncoderModel(config: c)
        s.initializeRandomly(seed: seed)
        let tL = tc.numLayers
        let initLayer = spec.initLayer ?? tL / 2

        // Factorized embeddings: the teacher's word table W [V×Ht] ≈ u·diag(σ)·vᵀ, rank E.
        let te = t.layout.embeddings!, se = s.layout.embeddings!
        let V = tc.vocabSize, teE = tc.embeddingSize
        if tc.family != .albert {
            let svd = try truncatedSVD(t.p(te.word), M: V, N: Ht, k: E)
            for v in 0..<V { for e in 0..<E { s.p(se.word)[v * E + e] = svd.u[v * E + e] * svd.s[e] } }
            // Positions and types: projected onto the same E directions, [rows×Ht]·vᵀᵀ → [rows×E].
            func project(_ from: Int, rows: Int, into to: Int) {
                svd.vt.withUnsafeBufferPointer { vt in
                    sgemm(.no, .yes, m: rows, n: E, k: Ht, t.p(from), lda: Ht, vt.baseAddress!, ldb: Ht, s.p(to), ldc: E)
                }
            }
            project(te.position, rows: tc.maxPositions, into: se.position)
            if let tt = te.tokenType, let st = se.tokenType { project(tt, rows: tc.typeVocabSize, into: st) }
            if H == Ht {
                // E→H projection = v (orthonormal columns); its bias and the LayerNorm scale carry
                // the teacher's embedding LayerNorm (β, and the overall scale of γ).
                for h in 0..<H { for e in 0..<E { s.p(se.projectionWeight!)[h * E + e] = svd.vt[e * Ht + h] } }
                copy(t, te.normBias, s, se.projectionBias!, H)
                var rms: Float = 0
                for h in 0..<Ht { rms += t.p(te.normWeight)[h] * t.p(te.normWeight)[h] }
                rms = (rms / Float(Ht)).squareRoot()
                for e in 0..<E { s.p(se.normWeight)[e] = rms * (Float(H) / Float(E)).squareRoot() }
            }
            if let th = t.layout.head, let sh = s.layout.head, H == Ht {
                // Head transform H→E: the teacher's H→H transform followed by the E directions,
                // [E×Ht]·[Ht×H] and [E×Ht]·[Ht].
                svd.vt.withUnsafeBufferPointer { vt in
                    sgemm(.no, .no, m: E, n: H, k: Ht, vt.baseAddress!, lda: Ht, t.p(th.transformWeight), ldb: H,
                          s.p(sh.transformWeight), ldc: H)
                    sgemm(.no, .no, m: E, n: 1, k: Ht, vt.baseAddress!, lda: Ht, t.p(th.transformBias), ldb: 1,
                          s.p(sh.transformBias), ldc: 1)
                }
                copy(t, th.bias, s, sh.bias, V)
            }
        } else if teE == E && H == Ht {
            // An ALBERT teacher with the same factorization: copy the embeddings as they are.
            copy(t, te.word, s, se.word, V * E); copy(t, te.position, s, se.position, tc.maxPositions * E)
            if let tt = te.tokenType, let st = se.tokenType { copy(t, tt, s, st, tc.typeVocabSize * E) }
            copy(t, te.normWeight, s, se.normWeight, E); copy(t, te.normBias, s, se.normBias, E)
            copy(t, te.projectionWeight!, s, se.projectionWeight!, H * E); copy(t, te.projectionBias!, s, se.projectionBias!, H)
            if let th = t.layout.head, let sh = s.layout.head {
                copy(t, th.transformWeight, s, sh.transformWeight, E * H); copy(t, th.transformBias, s, sh.transformBias, E)
                copy(t, th.normWeight, s, sh.normWeight, E); copy(t, th.normBias, s, sh.normBias, E)
                copy(t, th.bias, s, sh.bias, V)
            }
        }

        if H == Ht && s.config.poolerActivation == tc.poolerActivation { copyClassificationHead(t, s) }

        // Transformer blocks (same width only): shared blocks from `initLayer`, unshared ones
        // from teacher layers spread evenly over the depth.
        if H == Ht && c.intermediateSize == tc.intermediateSize && c.numHeads == tc.numHeads {
            func spread(_ i: Int, of n: Int) -> Int { n <= 1 ? initLayer : Int((Double(i) * Double(tL - 1) / Double(n - 1)).rounded()) }
            for a in 0..<s.layout.attention.count {
                let l = s.layout.attention.count == 1 ? initLayer : spread(a, of: s.layout.attention.count)
                copyAttention(t, teacherBlocks(t, layer: l).attention, s, a)
            }
            for f in 0..<s.layout.ffn.count {
                let l = s.layout.ffn.count == 1 ? initLayer : spread(f, of: s.layout.ffn.count)
                copyFFN(t, teacherBlocks(t, layer: l).ffn, s, f)
            }
        }
        return s
    }
}
