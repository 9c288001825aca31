import DistilleryTensor

/// Something that turns token batches into last hidden states and MLM logits: the fp32 encoder
/// and the int8 one both do, so evaluation and comparison treat them alike.
public protocol EncoderRunner: AnyObject {
    var config: EncoderConfig { get }
    /// Runs `batch`; copies the last hidden state [N×H] into `hidden` and, when `logits` is
    /// given and the model has an MLM head, the logits of `logitRows` into it [rows×V].
    func encode(_ batch: TokenBatch, hidden: UnsafeMutablePointer<Float>, logitRows: [Int], logits: UnsafeMutablePointer<Float>?) throws
}

/// Inference with an fp32 encoder, keeping one activation workspace across calls.
public final class EncoderSession: EncoderRunner {
    public let model: EncoderModel
    private var acts: EncoderActivations?
    private var gathered: FloatBuffer?

    public init(_ model: EncoderModel) { self.model = model }
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
