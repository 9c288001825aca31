import DistilleryTensor
import DistilleryFormats

// Running a model without training: `encode` for evaluation and comparison, and the outputs
// `distill forward` writes. The model keeps one inference workspace, grown to the largest batch
// seen (and remade when its matrices change format).

extension EncoderModel {
    /// The inference workspace for batches of up to B × S tokens.
    func inferenceActivations(B: Int, S: Int) throws -> EncoderActivations {
        if let a = inference, a.maxB >= B, a.maxS >= S, a.linearScratchFloats >= linearScratch(rows: a.maxB * a.maxS) { return a }
        let a = try EncoderActivations(model: self, maxB: max(B, inference?.maxB ?? 0), maxS: max(S, inference?.maxS ?? 0), training: false)
        inference = a
        return a
    }

    /// Runs `batch`; copies the last hidden state [N×H] into `hidden` and, when `logits` is given
    /// and the model has an MLM head, the logits of `logitRows` into it [rows×V].
    public func encode(_ batch: TokenBatch, hidden: UnsafeMutablePointer<Float>, logitRows: [Int] = [],
                       logits: UnsafeMutablePointer<Float>? = nil) throws {
        let a = try inferenceActivations(B: batch.B, S: batch.S)
        let N = batch.B * batch.S, H = config.hiddenSize
        try forward(batch, a)
        hidden.update(from: a.lastHidden, count: N * H)
        guard let logits, config.hasMLMHead, !logitRows.isEmpty else { return }
        forwardHeadTransform(a)
        let Ht = config.headWidth, V = config.vocabSize
        // Gathered rows in chunks of the workspace's capacity.
        let capacity = a.maxB * a.maxS
        if gathered == nil || gathered!.count < min(capacity, logitRows.count) * Ht {
            gathered = FloatBuffer(count: min(capacity, logitRows.count) * Ht)
        }
        let g = gathered!.base
        var start = 0
        while start < logitRows.count {
            let n = min(capacity, logitRows.count - start)
            for i in 0..<n { (g + i * Ht).update(from: a.headOutput + logitRows[start + i] * Ht, count: Ht) }
            decoderLogits(logits + start * V, headOutput: g, rows: n, a)
            start += n
        }
    }

    /// Class logits [B×C] of a batch (models with a sequence-classification head).
    public func classify(_ batch: TokenBatch, into logits: UnsafeMutablePointer<Float>) throws {
        precondition(config.hasClassifier, "classify needs a classification head")
        let a = try inferenceActivations(B: batch.B, S: batch.S)
        try forward(batch, a)
        forwardClassifier(a)
        logits.update(from: classifierLogits(a), count: batch.B * config.numLabels)
    }

    /// `distill forward`'s outputs: F32 `hidden_states.0` (embedding output) … `hidden_states.L`,
    /// shape [B, S, H], `logits` [B, S, V] when the model has an MLM head, and `class_logits`
    /// [B, C] when it has a sequence classifier.
    public func referenceOutputs(_ batch: TokenBatch) throws -> [OwnedTensor] {
        let a = try inferenceActivations(B: batch.B, S: batch.S)
        let B = batch.B, S = batch.S, H = config.hiddenSize, N = B * S
        var out: [OwnedTensor] = []
        try forward(batch, a, onHiddenState: { i, h in
            out.append(OwnedTensor(name: "hidden_states.\(i)", shape: [B, S, H],
                                   floats: Array(UnsafeBufferPointer(start: h, count: N * H))))
        })
        if config.hasMLMHead {
            forwardHeadTransform(a)
            let logits = FloatBuffer(count: N * config.vocabSize)
            decoderLogits(logits.base, headOutput: a.headOutput, rows: N, a)
            out.append(OwnedTensor(name: "logits", shape: [B, S, config.vocabSize], floats: logits.toArray()))
        }
        if config.hasClassifier {
            forwardClassifier(a)
            out.append(OwnedTensor(name: "class_logits", shape: [B, config.numLabels],
                                   floats: Array(UnsafeBufferPointer(start: classifierLogits(a), count: B * config.numLabels))))
        }
        for t in out where !t.data.withUnsafeBytes({ $0.bindMemory(to: Float.self).allSatisfy(\.isFinite) }) {
            throw InputError.nonFiniteOutput(name: t.name)
        }
        return out
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
