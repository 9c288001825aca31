import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText
import DistilleryQuant

/// Held-out quality of a model, alone and against a reference (its teacher, or the fp32
/// model it was quantized from). Fields are nil where they do not apply.
public struct EvalReport: Codable, Sendable, Equatable {
    public var sequences = 0
    public var tokens = 0
    public var targets = 0
    /// Masked-LM accuracy and loss at the masked positions.
    public var mlmAccuracy: Double?
    public var mlmLoss: Double?
    /// At the masked positions: same arg max as the reference, and KL(reference ‖ model).
    public var top1Agreement: Double?
    public var kl: Double?
    /// Mean cosine between the last hidden states of model and reference over real tokens.
    public var hiddenCosine: Double?
    /// Mean cosine between mean-pooled sentence embeddings.
    public var sentenceCosine: Double?
    public init() {}
}

/// Batches of held-out sequences with fixed MLM targets, so evaluations are comparable.
public struct EvalSet: Sendable {
    public struct Batch: Sendable {
        /// The text as it is (for hidden-state and sentence-embedding fidelity).
        public var plain: TokenBatch
        /// The same with MLM masking applied, and the targets [B·S] (negative: not a target).
        public var masked: TokenBatch
        public var labels: [Int32]
        public init(plain: TokenBatch, masked: TokenBatch, labels: [Int32]) {
            self.plain = plain; self.masked = masked; self.labels = labels
        }
    }
    public var batches: [Batch]
    public init(batches: [Batch]) { self.batches = batches }

    /// The first `maxBatches` × `batchSize` sequences of `data` (file order chooses them),
    /// batched by length (`lengthOrderedBatches`, longest first), masked with a fixed key.
    /// Every metric is a mean over all the set's tokens or sequences, so the grouping changes
    /// no definition; grouped by length, a batch pads to a length close to its own sequences'
    /// (the demo's held-out text in file order padded 20,480 positions for 14,746 tokens). The
    /// masks are drawn as before the grouping, over batches in file order keyed by their index,
    /// and move with their sequences: the same tokens are masked, so MLM figures stay
    /// comparable with earlier versions'.
    public static func make(_ data: TokenDataset, tokenizer: BertTokenizer, batchSize: Int, maxBatches: Int,
                            policy: MaskingPolicy = MaskingPolicy(), withTokenTypes: Bool) -> EvalSet {
        guard batchSize > 0, maxBatches > 0 else { return EvalSet(batches: []) }
        let masker = MLMMasker(policy: policy, tokenizer: tokenizer)
        let (wanted, overflow) = batchSize.multipliedReportingOverflow(by: maxBatches)
        let chosen = overflow ? data.count : min(data.count, wanted)
        // Each chosen sequence's masked ids and labels over its own length.
        var maskedIds: [[Int32]] = [], maskedLabels: [[Int32]] = []
        maskedIds.reserveCapacity(chosen); maskedLabels.reserveCapacity(chosen)
        for (j, first) in stride(from: 0, to: chosen, by: batchSize).enumerated() {
            let idx = Array(first..<min(chosen, first + batchSize))
            let c = data.collate(idx, padId: tokenizer.padId)
            let m = masker.apply(TokenBatchView(inputIds: c.ids, attentionMask: c.mask), key: streamKey(0xE7A1, UInt64(j)))
            for (b, i) in idx.enumerated() {
                let row = (b * c.S)..<(b * c.S + data.length(i))
                maskedIds.append(Array(m.inputIds[row]))
                maskedLabels.append(Array(m.labels[row]))
            }
        }
        var out: [Batch] = []
        for idx in lengthOrderedBatches(count: chosen, batchSize: batchSize, length: data.length).reversed() {
            let c = data.collate(idx, padId: tokenizer.padId)
            var ids = c.ids, labels = [Int32](repeating: -100, count: c.B * c.S)
            for (b, i) in idx.enumerated() {
                let row = (b * c.S)..<(b * c.S + data.length(i))
                ids.replaceSubrange(row, with: maskedIds[i])
                labels.replaceSubrange(row, with: maskedLabels[i])
            }
            let types = withTokenTypes ? [Int32](repeating: 0, count: c.B * c.S) : nil
            out.append(Batch(plain: TokenBatch(B: c.B, S: c.S, inputIds: c.ids, attentionMask: c.mask, tokenTypes: types),
                             masked: TokenBatch(B: c.B, S: c.S, inputIds: ids, attentionMask: c.mask, tokenTypes: types),
                             labels: labels))
        }
        return EvalSet(batches: out)
    }

    /// Evaluation batches from a file: a prepared .tok file as it is (its vocabulary must be the
    /// tokenizer's), or text tokenized into a temporary file first.
    public static func load(_ path: String, tokenizer: BertTokenizer, maxSequenceLength: Int = 128, batchSize: Int = 16,
                            maxBatches: Int = 16, policy: MaskingPolicy = MaskingPolicy(), withTokenTypes: Bool,
                            progress: ((Int, Int) -> Void)? = nil) throws -> EvalSet {
        if path.hasSuffix(".tok") {
            let d = try TokenDataset(path: path)
            try d.checkVocabulary(tokenizer.vocabulary)
            if d.count == 0 { throw EvaluationError.noData(path: path) }
            let set = make(d, tokenizer: tokenizer, batchSize: batchSize, maxBatches: maxBatches, policy: policy, withTokenTypes: withTokenTypes)
            if let longest = set.batches.map(\.plain.S).max(), longest > maxSequenceLength {
                throw EvaluationError.sequencesTooLong(path: path, length: longest, limit: maxSequenceLength)
            }
            return set
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("distill-eval-\(UUID().uuidString)").path
        try FileManager.default.createFolder(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tok = dir + "/data.tok"
        _ = try Corpus.prepare(inputs: [path], tokenizer: tokenizer, maxSequenceLength: maxSequenceLength, output: tok, progress: progress)
        let d = try TokenDataset(path: tok)
        if d.count == 0 { throw EvaluationError.noData(path: path) }
        return make(d, tokenizer: tokenizer, batchSize: batchSize, maxBatches: maxBatches, policy: policy, withTokenTypes: withTokenTypes)
    }
}

public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    case noVocabulary(model: String)
    case noData(path: String)
    case differentVocabulary(model: String, reference: String)
    case vocabularyLargerThanModel(model: String, tokens: Int, embeddings: Int)
    case sequencesTooLong(path: String, length: Int, limit: Int)

    public var description: String {
        switch self {
        case let .noVocabulary(m): return "\(m): no vocabulary comes with this model (a folder needs vocab.txt; a checkpoint records it in its metadata)"
        case let .noData(p): return "\(p): no text to evaluate on (the file holds no non-empty lines)"
        case let .differentVocabulary(m, r): return "\(m) and \(r) use different vocabularies, so their token-level outputs cannot be compared"
        case let .vocabularyLargerThanModel(m, t, e): return "\(m): the vocabulary has \(t) tokens but the model only \(e) embeddings"
        case let .sequencesTooLong(p, l, n): return "\(p): holds sequences of \(l) tokens; the models take at most \(n) (prepare it with a smaller --max-seq-len)"
        }
    }
}

extension BertTokenizer {
    /// Checks the tokenizer files a model carries, where it carries any, as the commands that
    /// read text will, so that convert and quantize do not write a checkpoint those commands
    /// then refuse: the vocabulary reads, and has no more tokens than the model embeddings.
    public static func checkFiles(of path: String, files: TokenizerFiles, vocabSize: Int) throws {
        guard files.vocabulary != nil else { return }
        let t = try of(model: path, files: files)
        if t.vocabulary.count > vocabSize {
            throw EvaluationError.vocabularyLargerThanModel(model: path, tokens: t.vocabulary.count, embeddings: vocabSize)
        }
    }

    /// The tokenizer that came with a model (its vocab.txt and tokenizer_config.json).
    public static func of(model path: String, files: TokenizerFiles) throws -> BertTokenizer {
        guard let vocabulary = files.vocabulary else { throw EvaluationError.noVocabulary(model: path) }
        return try BertTokenizer.from(vocabularyText: vocabulary, configText: files.config, origin: path)
    }

    /// The tokenizer for evaluating several models on the same text: the first model's, which
    /// every model must be able to take (others that carry a vocabulary must carry the same).
    public static func shared(by models: [LoadedModel]) throws -> BertTokenizer {
        let first = models[0]
        let tokenizer = try of(model: first.path, files: first.tokenizer)
        for m in models {
            if m.path != first.path, m.tokenizer.vocabulary != nil,
               try of(model: m.path, files: m.tokenizer).vocabulary.hash != tokenizer.vocabulary.hash {
                throw EvaluationError.differentVocabulary(model: m.path, reference: first.path)
            }
            if tokenizer.vocabulary.count > m.model.config.vocabSize {
                throw EvaluationError.vocabularyLargerThanModel(model: m.path, tokens: tokenizer.vocabulary.count, embeddings: m.model.config.vocabSize)
            }
        }
        return tokenizer
    }
}

/// How a sequence's last hidden states become one vector: the sentence embedding that
/// `distill eval` compares and `distill probe` classifies.
public enum Pooling: String, Sendable, Codable, CaseIterable {
    /// The mean over real (unpadded) tokens, as sentence-transformers pools.
    case mean
    /// The first row, the [CLS] token as the encoder leaves it (not a pooler's tanh layer, which
    /// a headless student does not have).
    case cls

    /// Pools `hidden` [B·S×H] into `out` [B×H] (Float64, overwritten). A sequence with no real
    /// token pools to zeros.
    public func pool(_ hidden: UnsafePointer<Float>, mask: [Float], B: Int, S: Int, H: Int,
                     into out: UnsafeMutablePointer<Double>) {
        precondition(mask.count == B * S)
        mask.withUnsafeBufferPointer { m in
            for i in 0..<B {
                let o = out + i * H
                o.update(repeating: 0, count: H)
                switch self {
                case .cls:
                    guard S > 0, m[i * S] != 0 else { continue }
                    let x = hidden + i * S * H
                    for h in 0..<H { o[h] = Double(x[h]) }
                case .mean:
                    var n = 0
                    for s in 0..<S where m[i * S + s] != 0 {
                        let x = hidden + (i * S + s) * H
                        for h in 0..<H { o[h] += Double(x[h]) }
                        n += 1
                    }
                    if n > 1 { for h in 0..<H { o[h] /= Double(n) } }
                }
            }
        }
    }

    /// The same into an array of B × H values.
    public func pool(_ hidden: UnsafePointer<Float>, mask: [Float], B: Int, S: Int, H: Int, into out: inout [Double]) {
        precondition(out.count >= B * H)
        out.withUnsafeMutableBufferPointer { pool(hidden, mask: mask, B: B, S: S, H: H, into: $0.baseAddress!) }
    }
}

/// A fixed reference's last hidden states on one EvalSet's plain batches, kept between
/// evaluations of a model that changes against one that does not (the frozen teacher while a
/// student trains): the reference's pass over the held-out text is then paid once, not at every
/// evaluation. Holds at most `budgetBytes`; batches past it are recomputed each time. Only
/// valid for the one set and the one reference it was made for; a reference that changes its
/// weights needs a new cache.
public final class ReferenceHiddenCache {
    public let reference: EncoderModel
    public let budgetBytes: Int
    private var stored: [Int: FloatBuffer] = [:]
    private var bytes = 0
    /// Batches served from the cache, and batches the reference ran for.
    public private(set) var hits = 0, misses = 0

    public init(reference: EncoderModel, budgetBytes: Int = 256 << 20) {
        self.reference = reference
        self.budgetBytes = budgetBytes
    }

    /// Batch `index`'s hidden states [N × H]: stored ones, or `compute`d into a new buffer
    /// (kept while the budget allows).
    func hidden(batch index: Int, count: Int, compute: (FloatBuffer) throws -> Void) rethrows -> FloatBuffer {
        if let h = stored[index], h.count == count {
            hits += 1
            return h
        }
        let h = FloatBuffer(count: count)
        try compute(h)
        misses += 1
        let size = count * MemoryLayout<Float>.stride
        if bytes + size <= budgetBytes {
            stored[index] = h
            bytes += size
        }
        return h
    }
}

public enum Evaluator {
    /// MLM metrics on the masked text (models with an MLM head; top-1 agreement and KL when the
    /// reference has one over the same vocabulary); hidden-state and sentence-embedding cosines
    /// on the plain text (when the widths agree). `progress(done, total)` follows the batches.
    /// With `referenceCache` (made for this set and this reference), the reference's hidden
    /// states on the plain text are computed at the first evaluation and reused after.
    public static func evaluate(_ model: EncoderModel, reference: EncoderModel?, on set: EvalSet,
                                referenceCache: ReferenceHiddenCache? = nil,
                                progress: ((Int, Int) -> Void)? = nil) throws -> EvalReport {
        let cache = referenceCache.flatMap { c in reference.flatMap { c.reference === $0 ? c : nil } }
        var r = EvalReport()
        let c = model.config
        let V = c.vocabSize, H = c.hiddenSize
        let sameWidth = reference.map { $0.config.hiddenSize == H } ?? false
        let bothHeads = c.hasMLMHead && (reference?.config.hasMLMHead ?? false) && reference?.config.vocabSize == V
        var correct = 0, agree = 0, done = 0
        var lossSum = 0.0, klSum = 0.0, cosSum = 0.0, sentSum = 0.0
        for (index, b) in set.batches.enumerated() {
            let batch = b.masked, labels = b.labels
            let N = batch.B * batch.S
            let rows = (0..<N).filter { labels[$0] >= 0 }
            r.sequences += batch.B
            r.tokens += batch.tokenCount
            r.targets += rows.count
            let hidden = FloatBuffer(count: N * H)
            if c.hasMLMHead && !rows.isEmpty {
                let logits = FloatBuffer(count: rows.count * V), refLogits = FloatBuffer(count: bothHeads ? rows.count * V : 0)
                try model.encode(batch, hidden: hidden.base, logitRows: rows, logits: logits.base)
                if bothHeads, let reference {
                    let refHidden = FloatBuffer(count: N * reference.config.hiddenSize)
                    try reference.encode(batch, hidden: refHidden.base, logitRows: rows, logits: refLogits.base)
                }
                var am = [Int32](repeating: 0, count: rows.count), lse = [Double](repeating: 0, count: rows.count)
                rowArgmaxAndLogSumExp(logits.base, rows: rows.count, V: V, argmax: &am, lse: &lse)
                for (i, n) in rows.enumerated() {
                    if am[i] == labels[n] { correct += 1 }
                    lossSum += lse[i] - Double(logits.base[i * V + Int(labels[n])])
                }
                if bothHeads {
                    var ram = [Int32](repeating: 0, count: rows.count), rlse = [Double](repeating: 0, count: rows.count)
                    rowArgmaxAndLogSumExp(refLogits.base, rows: rows.count, V: V, argmax: &ram, lse: &rlse)
                    for i in rows.indices {
                        if am[i] == ram[i] { agree += 1 }
                        // KL(ref ‖ model) = Σ p_ref (log p_ref − log p_model)
                        let z = logits.base + i * V, t = refLogits.base + i * V
                        var k = 0.0
                        for j in 0..<V {
                            let lt = Double(t[j]) - rlse[i]
                            k += exp(lt) * (lt - (Double(z[j]) - lse[i]))
                        }
                        klSum += k
                    }
                }
            }
            if sameWidth, let reference {
                let plain = b.plain
                try model.encode(plain, hidden: hidden.base, logitRows: [], logits: nil)
                let run = { (out: FloatBuffer) in try reference.encode(plain, hidden: out.base, logitRows: [], logits: nil) }
                let refHidden: FloatBuffer
                if let cache {
                    refHidden = try cache.hidden(batch: index, count: N * H, compute: run)
                } else {
                    refHidden = FloatBuffer(count: N * H)
                    try run(refHidden)
                }
                for row in 0..<N where plain.attentionMask[row] != 0 {
                    cosSum += cosine(hidden.base + row * H, refHidden.base + row * H, H)
                }
                var sm = [Double](repeating: 0, count: plain.B * H), tm = sm
                Pooling.mean.pool(hidden.base, mask: plain.attentionMask, B: plain.B, S: plain.S, H: H, into: &sm)
                Pooling.mean.pool(refHidden.base, mask: plain.attentionMask, B: plain.B, S: plain.S, H: H, into: &tm)
                sm.withUnsafeBufferPointer { x in
                    tm.withUnsafeBufferPointer { y in
                        // An all-padding row pools to zeros, whose cosine is 0.
                        for i in 0..<plain.B { sentSum += cosine(x.baseAddress! + i * H, y.baseAddress! + i * H, H) }
                    }
                }
            }
            done += 1
            progress?(done, set.batches.count)
        }
        if c.hasMLMHead && r.targets > 0 {
            r.mlmAccuracy = Double(correct) / Double(r.targets)
            r.mlmLoss = lossSum / Double(r.targets)
        }
        if bothHeads && r.targets > 0 {
            r.top1Agreement = Double(agree) / Double(r.targets)
            r.kl = klSum / Double(r.targets)
        }
        if sameWidth && r.tokens > 0 {
            r.hiddenCosine = cosSum / Double(r.tokens)
            r.sentenceCosine = sentSum / Double(r.sequences)
        }
        for (name, v) in [("MLM loss", r.mlmLoss), ("KL", r.kl), ("hidden-state cosine", r.hiddenCosine), ("sentence cosine", r.sentenceCosine)] {
            if let v, !v.isFinite { throw InputError.nonFiniteOutput(name: "the evaluation's \(name)") }
        }
        return r
    }

    static func cosine(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        var d = 0.0, x = 0.0, y = 0.0
        for i in 0..<n { d += Double(a[i]) * Double(b[i]); x += Double(a[i]) * Double(a[i]); y += Double(b[i]) * Double(b[i]) }
        return d / max(1e-30, (x * y).squareRoot())
    }

    static func cosine(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
        var d = 0.0, x = 0.0, y = 0.0
        for i in 0..<n { d += a[i] * b[i]; x += a[i] * a[i]; y += b[i] * b[i] }
        return d / max(1e-30, (x * y).squareRoot())
    }
}
