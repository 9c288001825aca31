import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText

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
    public var batches: [(batch: TokenBatch, labels: [Int32])]

    /// The first `maxBatches` batches of `data` in file order, masked with a fixed key.
    public static func make(_ data: TokenDataset, tokenizer: BertTokenizer, batchSize: Int, maxBatches: Int,
                            policy: MaskingPolicy = MaskingPolicy(), withTokenTypes: Bool) -> EvalSet {
        let masker = MLMMasker(policy: policy, tokenizer: tokenizer)
        var out: [(TokenBatch, [Int32])] = []
        var start = 0
        while start < data.count && out.count < maxBatches {
            let idx = Array(start..<min(data.count, start + batchSize))
            let c = data.collate(idx, padId: tokenizer.padId)
            let m = masker.apply(TokenBatchView(inputIds: c.ids, attentionMask: c.mask), key: streamKey(0xE7A1, UInt64(out.count)))
            let b = TokenBatch(B: c.B, S: c.S, inputIds: m.inputIds, attentionMask: c.mask,
                               tokenTypes: withTokenTypes ? [Int32](repeating: 0, count: c.B * c.S) : nil)
            out.append((b, m.labels))
            start += batchSize
        }
        return EvalSet(batches: out)
    }
}

public enum Evaluator {
    public static func evaluate(_ model: EncoderRunner, reference: EncoderRunner?, on set: EvalSet) throws -> EvalReport {
        var r = EvalReport()
        let c = model.config
        let V = c.vocabSize, H = c.hiddenSize
        let sameWidth = reference.map { $0.config.hiddenSize == H } ?? false
        let bothHeads = c.hasMLMHead && (reference?.config.hasMLMHead ?? false) && reference?.config.vocabSize == V
        var correct = 0, agree = 0
        var lossSum = 0.0, klSum = 0.0, cosSum = 0.0, sentSum = 0.0
        for (batch, labels) in set.batches {
            let N = batch.B * batch.S
            let rows = (0..<N).filter { labels[$0] >= 0 }
            let hidden = FloatBuffer(count: N * H), refHidden = FloatBuffer(count: N * (reference?.config.hiddenSize ?? 0))
            let logits = FloatBuffer(count: c.hasMLMHead ? rows.count * V : 0)
            let refLogits = FloatBuffer(count: bothHeads ? rows.count * V : 0)
            try model.encode(batch, hidden: hidden.base, logitRows: rows, logits: c.hasMLMHead ? logits.base : nil)
            if let reference { try reference.encode(batch, hidden: refHidden.base, logitRows: rows, logits: bothHeads ? refLogits.base : nil) }
            r.sequences += batch.B
            r.tokens += batch.tokenCount
            r.targets += rows.count
            if c.hasMLMHead && !rows.isEmpty {
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
            if sameWidth {
                for b in 0..<batch.B {
                    var sm = [Double](repeating: 0, count: H), tm = [Double](repeating: 0, count: H)
                    var n = 0
                    for s in 0..<batch.S where batch.attentionMask[b * batch.S + s] != 0 {
                        let row = b * batch.S + s
                        let x = hidden.base + row * H, y = refHidden.base + row * H
                        cosSum += cosine(x, y, H)
                        for h in 0..<H { sm[h] += Double(x[h]); tm[h] += Double(y[h]) }
                        n += 1
                    }
                    if n > 0 { sentSum += cosine(sm, tm) }
                }
            }
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
        return r
    }

    static func cosine(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        var d = 0.0, x = 0.0, y = 0.0
        for i in 0..<n { d += Double(a[i]) * Double(b[i]); x += Double(a[i]) * Double(a[i]); y += Double(b[i]) * Double(b[i]) }
        return d / max(1e-30, (x * y).squareRoot())
    }

    static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        var d = 0.0, x = 0.0, y = 0.0
        for i in a.indices { d += a[i] * b[i]; x += a[i] * a[i]; y += b[i] * b[i] }
        return d / max(1e-30, (x * y).squareRoot())
    }
}
