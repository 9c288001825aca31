import DistilleryTensor
import DistilleryFormats

/// Something that turns token batches into last hidden states and MLM logits: the fp32 encoder
/// and the int8 one both do, so evaluation and comparison treat them alike.
public protocol EncoderRunner: AnyObject {
    var config: EncoderConfig { get }
    /// Runs `batch`; copies the last hidden state [N×H] into `hidden` and, when `logits` is
    /// given and the model has an MLM head, the logits of `logitRows` into it [rows×V].
    func encode(_ batch: TokenBatch, hidden: UnsafeMutablePointer<Float>, logitRows: [Int], logits: UnsafeMutablePointer<Float>?) throws
    /// `distill forward`'s outputs: hidden_states.0…L [B×S×H] and, with an MLM head, logits [B×S×V].
    func referenceOutputs(_ batch: TokenBatch) throws -> [OwnedTensor]
}

/// Inference with an fp32 encoder, keeping one activation workspace across calls.
public final class EncoderSession: EncoderRunner {
    public let model: EncoderModel
    private var acts: EncoderActivations?
    private var gathered: FloatBuffer?

    public init(_ model: EncoderModel) { self.model = model }
    public func referenceOutputs(_ batch: TokenBatch) throws -> [OwnedTensor] { try model.referenceOutputs(batch) }
    public var config: EncoderConfig { model.config }

    public func encode(_ batch: TokenBatch, hidden: UnsafeMutablePointer<Float>, logitRows: [Int], logits: UnsafeMutablePointer<Float>?) throws {
        try model.validate(batch)
        if acts == nil || acts!.maxB < batch.B || acts!.maxS < batch.S {
            acts = EncoderActivations(config: model.config, maxB: batch.B, maxS: batch.S, training: false)
        }
        let a = acts!, N = batch.B * batch.S, H = config.hiddenSize
        model.forward(batch, a)
        hidden.update(from: a.lastHidden, count: N * H)
        guard let logits, config.hasMLMHead, !logitRows.isEmpty else { return }
        model.forwardHeadTransform(a)
        let Ht = config.headWidth
        if gathered == nil || gathered!.count < logitRows.count * Ht { gathered = FloatBuffer(count: logitRows.count * Ht) }
        for (i, r) in logitRows.enumerated() { (gathered!.base + i * Ht).update(from: a.headOutput + r * Ht, count: Ht) }
        model.decoderLogits(logits, headOutput: gathered!.base, rows: logitRows.count)
    }
}

extension TokenBatch {
    /// B × S random token ids in [0, V), every position real (for timing).
    public static func random(B: Int, S: Int, config: EncoderConfig, seed: UInt64 = 7) -> TokenBatch {
        var rng = SplitMix64(seed: seed)
        let ids = (0..<(B * S)).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
        return TokenBatch(B: B, S: S, inputIds: ids, attentionMask: [Float](repeating: 1, count: B * S),
                          tokenTypes: config.hasTokenTypes ? [Int32](repeating: 0, count: B * S) : nil)
    }
}

/// Forward-pass timings of a runner on one batch shape.
public struct ForwardTiming: Codable, Sendable, Equatable {
    public let batch: Int
    public let sequence: Int
    public let medianMs: Double
    public let minMs: Double
    public let tokensPerSecond: Double

    /// Seconds per call of `encode` (hidden states only, no MLM head) on random tokens.
    public static func measure(_ runner: EncoderRunner, B: Int, S: Int, warmup: Int, iterations: Int) throws -> ForwardTiming {
        let batch = TokenBatch.random(B: B, S: S, config: runner.config)
        let hidden = FloatBuffer(count: B * S * runner.config.hiddenSize)
        let times = try Timing.measure(warmup: warmup, iterations: max(1, iterations)) {
            try runner.encode(batch, hidden: hidden.base, logitRows: [], logits: nil)
        }
        let median = times.median
        return ForwardTiming(batch: B, sequence: S, medianMs: median * 1e3, minMs: (times.min() ?? 0) * 1e3,
                             tokensPerSecond: Double(B * S) / median)
    }
}
