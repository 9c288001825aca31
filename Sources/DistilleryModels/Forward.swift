import DistilleryTensor

/// Keys for dropout masks: one stream per (iteration, applied layer, site). `rowOffset` is the
/// index of the batch's first sequence in the larger batch it is a share of (data-parallel
/// ranks): its elements draw from the stream where they sit in that batch, so a sequence gets
/// the same masks whichever rank holds it (the share must be padded to the whole batch's S).
public struct DropoutKeys: Sendable {
    public let seed: UInt64
    public let iteration: UInt64
    public let rowOffset: Int
    public init(seed: UInt64, iteration: UInt64, rowOffset: Int = 0) {
        self.seed = seed; self.iteration = iteration; self.rowOffset = rowOffset
    }

    enum Site: UInt64 { case embeddings = 0, attentionProbs = 1, attentionOutput = 2, ffnOutput = 3, classifier = 4 }
    func key(step: Int, _ site: Site) -> UInt64 { streamKey(seed, iteration, UInt64(step + 1), site.rawValue) }
}

/// The input of a linear layer, for observers of activations (quantization calibration).
public enum LinearInput: Hashable, Sendable {
    case qkv(attention: Int)
    case attentionOutput(attention: Int)
    case ffnInput(ffn: Int)
    case ffnOutput(ffn: Int)
    case headTransform
}

extension LinearInput: CustomStringConvertible {
    /// "layer 2's FFN output", for messages.
    public var description: String {
        switch self {
        case .qkv(let l): return "layer \(l)'s query/key/value projection"
        case .attentionOutput(let l): return "layer \(l)'s attention output projection"
        case .ffnInput(let l): return "layer \(l)'s FFN input projection"
        case .ffnOutput(let l): return "layer \(l)'s FFN output projection"
        case .headTransform: return "the MLM head's transform"
        }
    }
}

/// Receives a linear layer's input [rows × cols] during a forward pass.
public typealias ActivationObserver = (LinearInput, UnsafePointer<Float>, _ rows: Int, _ cols: Int) -> Void

extension EncoderModel {
    /// y [N × rows] = x · Wᵀ + bias through the matrix at `weight`, in its format.
    @inline(__always)
    func linear(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, weight: Int, bias: Int?, N: Int,
                _ a: EncoderActivations, ldInp: Int? = nil) {
        let w = matrix(weight)
        w.forward(out, ldOut: w.rows, inp, ldInp: ldInp ?? w.cols, N: N, bias: bias.map { p($0) }, scratch: a.linearScratch)
    }

    /// Runs the encoder over `batch`. With `dropout` (training) dropout is applied as the
    /// reference models apply it. `onHiddenState(i, h)` receives each reported hidden state
    /// [N×H] as it is produced: i = 0 is the embedding output, i = 1…L the layers.
    /// Token ids, types and the length are checked against the model first.
    public func forward(_ batch: TokenBatch, _ a: EncoderActivations, dropout keys: DropoutKeys? = nil,
                        observer: ActivationObserver? = nil,
                        onHiddenState: ((Int, UnsafePointer<Float>) -> Void)? = nil,
                        onQKV: ((Int, UnsafePointer<Float>) -> Void)? = nil) throws {
        try validate(batch)
        precondition(batch.B <= a.maxB && batch.S <= a.maxS, "batch larger than the activation capacity")
        precondition(keys == nil || a.training, "dropout needs training activations")
        precondition(a.linearScratchFloats >= linearScratch(rows: a.maxB * a.maxS, training: a.training),
                     "activations made before the matrices changed format")
        let c = config, L = layout
        let B = batch.B, S = batch.S, N = B * S
        let H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize, eps = c.layerNormEps
        a.B = B; a.S = S
        batch.inputIds.withUnsafeBufferPointer { a.ids.base.update(from: $0.baseAddress!, count: N) }
        batch.attentionMask.withUnsafeBufferPointer { a.mask.base.update(from: $0.baseAddress!, count: N) }
        if c.hasTokenTypes {
            if let t = batch.tokenTypes {
                t.withUnsafeBufferPointer { a.types.base.update(from: $0.baseAddress!, count: N) }
            } else {
                a.types.base.update(repeating: 0, count: N)
            }
        }
        let pHidden = keys == nil ? 0 : c.hiddenDropout
        let pAttention = keys == nil ? 0 : c.attentionDropout

        // Embeddings: gather, LayerNorm, dropout, then ALBERT's E→H projection.
        let emb = L.embeddings!
        embed(a, B: B, S: S)
        layerNormForward(a.f(a.embNorm), mean: a.f(a.embMean), rstd: a.f(a.embRstd), a.f(a.embSum),
                         weight: p(emb.normWeight), bias: p(emb.normBias), N: N, C: E, eps: eps)
        // Training activations of a model with hidden dropout keep the embedding output apart
        // (the dropped-out copy the backward pass reads): fill it whether or not dropout runs.
        let embNorm = a.f(a.embNorm), embOut = a.f(a.embOut)
        if embOut != embNorm {
            embOut.update(from: embNorm, count: N * E)
            if let keys, pHidden > 0 {
                DistilleryTensor.dropout(embOut, count: N * E, p: pHidden, key: keys.key(step: -1, .embeddings), offset: keys.rowOffset * S * E)
            }
        }
        if let w = emb.projectionWeight {
            linear(a.hidden(step: 0), a.f(a.embOut), weight: w, bias: emb.projectionBias, N: N, a)
        }
        onHiddenState?(0, a.hidden(step: 0))

        let shape = AttentionShape(B: B, S: S, H: H, NH: c.numHeads)
        for (k, step) in L.steps.enumerated() {
            let x = a.hidden(step: k), out = a.hidden(step: k + 1)
            let s = a.steps[k]
            let at = L.attention[step.attention], ff = L.ffn[step.ffn]
            let tmp = a.f(a.tmp), act = a.f(a.ffnAct)

            // Attention: packed QKV projection, softmax(q kᵀ/√D) v, output projection.
            observer?(.qkv(attention: step.attention), x, N, H)
            linear(a.f(s.qkv), x, weight: at.qkvWeight, bias: at.qkvBias, N: N, a)
            onQKV?(k, a.f(s.qkv))
            let drop = (keys != nil && pAttention > 0) ? AttentionDropout(p: pAttention, key: keys!.key(step: k, .attentionProbs), offset: keys!.rowOffset * c.numHeads * S * S) : nil
            attentionForward(ctx: a.f(s.ctx), qkv: a.f(s.qkv), mask: a.mask.base, shape, scratch: a.attentionScratch, dropout: drop)
            observer?(.attentionOutput(attention: step.attention), a.f(s.ctx), N, H)
            linear(tmp, a.f(s.ctx), weight: at.outputWeight, bias: at.outputBias, N: N, a)
            if let keys, pHidden > 0, c.dropoutAfterAttentionOutput {
                DistilleryTensor.dropout(tmp, count: N * H, p: pHidden, key: keys.key(step: k, .attentionOutput), offset: keys.rowOffset * S * H)
            }
            let ln1Out = a.f(a.ln1Out)
            residualLayerNormForward(ln1Out, mean: a.f(s.ln1Mean), rstd: a.f(s.ln1Rstd), sum: a.f(s.attnRes), x, tmp,
                                     weight: p(at.normWeight), bias: p(at.normBias), N: N, C: H, eps: eps)

            // Feed-forward: act(x W1ᵀ + b1) W2ᵀ + b2, residual, LayerNorm.
            observer?(.ffnInput(ffn: step.ffn), ln1Out, N, H)
            linear(a.f(s.ffnPre), ln1Out, weight: ff.inputWeight, bias: nil, N: N, a)
            // The biased pre-activation is kept (in place) only for the backward pass.
            activationForward(act, pre: a.training ? a.f(s.ffnPre) : nil, a.f(s.ffnPre), bias: p(ff.inputBias), N: N, C: I, c.activation)
            observer?(.ffnOutput(ffn: step.ffn), act, N, I)
            linear(tmp, act, weight: ff.outputWeight, bias: ff.outputBias, N: N, a)
            if let keys, pHidden > 0 {
                DistilleryTensor.dropout(tmp, count: N * H, p: pHidden, key: keys.key(step: k, .ffnOutput), offset: keys.rowOffset * S * H)
            }
            residualLayerNormForward(out, mean: a.f(s.ln2Mean), rstd: a.f(s.ln2Rstd), sum: a.f(s.ffnRes), ln1Out, tmp,
                                     weight: p(ff.normWeight), bias: p(ff.normBias), N: N, C: H, eps: eps)
            onHiddenState?(k + 1, out)
        }
    }

    /// embSum [N×E] = word[ids] + position[n mod S] + type[types]: one fused kernel when the
    /// tables are fp32, row gathers from their formats otherwise.
    func embed(_ a: EncoderActivations, B: Int, S: Int) {
        let e = layout.embeddings!, N = B * S, E = config.embeddingSize
        let word = matrix(e.word), position = matrix(e.position), type = e.tokenType.map { matrix($0) }
        if let w = word as? FP32Matrix, let pos = position as? FP32Matrix, type == nil || type is FP32Matrix {
            embeddingForward(a.f(a.embSum), ids: a.ids.base, types: config.hasTokenTypes ? a.types.base : nil,
                             wte: w.base, wpe: pos.base, wtt: (type as? FP32Matrix)?.base, B: B, S: S, C: E)
            return
        }
        for n in 0..<N { a.positions.base[n] = Int32(n % S) }
        word.gatherRows(a.ids.base, count: N, into: a.f(a.embSum), accumulate: false)
        position.gatherRows(a.positions.base, count: N, into: a.f(a.embSum), accumulate: true)
        type?.gatherRows(a.types.base, count: N, into: a.f(a.embSum), accumulate: true)
    }

    /// The MLM head's transform (dense, activation, LayerNorm) over the last hidden state:
    /// headOutput [N×Ht].
    public func forwardHeadTransform(_ a: EncoderActivations, observer: ActivationObserver? = nil) {
        guard let h = layout.head else { return }
        let N = a.N, H = config.hiddenSize, Ht = config.headWidth
        observer?(.headTransform, a.lastHidden, N, H)
        linear(a.f(a.headPre), a.lastHidden, weight: h.transformWeight, bias: nil, N: N, a)
        activationForward(a.f(a.headAct), pre: a.f(a.headPre), a.f(a.headPre), bias: p(h.transformBias), N: N, C: Ht, config.activation)
        layerNormForward(a.f(a.headOut), mean: a.f(a.headMean), rstd: a.f(a.headRstd), a.f(a.headAct),
                         weight: p(h.normWeight), bias: p(h.normBias), N: N, C: Ht, eps: config.layerNormEps)
    }

    /// logits [rows×V] = headOutput[rows] · word embeddingsᵀ + bias (the tied decoder), rows ≤
    /// the activations' capacity (their product scratch is used).
    public func decoderLogits(_ out: UnsafeMutablePointer<Float>, headOutput: UnsafePointer<Float>, rows: Int, _ a: EncoderActivations) {
        precondition(rows <= a.maxB * a.maxS, "more logit rows than the activations hold")
        decoderLogits(out, headOutput: headOutput, rows: rows, scratch: a.linearScratch)
    }

    /// The same with the product's scratch given (`decoderScratch(rows:)` floats): the
    /// distillation step keeps its logits where the activations' scratch lives.
    public func decoderLogits(_ out: UnsafeMutablePointer<Float>, headOutput: UnsafePointer<Float>, rows: Int,
                              scratch: UnsafeMutablePointer<Float>) {
        guard let h = layout.head else { return }
        let w = matrix(layout.embeddings.word)
        w.forward(out, ldOut: w.rows, headOutput, ldInp: w.cols, N: rows, bias: p(h.bias), scratch: scratch)
    }

    /// Floats of scratch the tied decoder's forward (and, for training, backward) product needs
    /// for `rows` rows.
    public func decoderScratch(rows: Int, training: Bool) -> Int {
        let w = matrix(layout.embeddings.word)
        return max(w.scratchFloats(maxRows: rows), training ? w.backwardScratchFloats(maxRows: rows) : 0)
    }

    /// The sequence-classification head over the last hidden state:
    ///   clsIn [B×H] = h[CLS] rows,  pooled = act(clsIn · W_pᵀ + b_p)   (tanh; ReLU for DistilBERT)
    ///   logits [B×C] = dropout(pooled) · W_cᵀ + b_c
    /// With `dropout` (training) the classifier dropout is applied as the reference does.
    public func forwardClassifier(_ a: EncoderActivations, dropout keys: DropoutKeys? = nil) {
        guard let k = layout.classifier, let pl = layout.pooler else { return }
        let B = a.B, S = a.S, H = config.hiddenSize
        let clsIn = a.f(a.clsIn), pre = a.f(a.poolPre), pooled = a.f(a.pooled), dropped = a.f(a.pooledDrop)
        for b in 0..<B { (clsIn + b * H).update(from: a.lastHidden + b * S * H, count: H) }
        linear(pre, clsIn, weight: pl.weight, bias: pl.bias, N: B, a)
        for i in 0..<(B * H) { pooled[i] = config.poolerActivation == .tanh ? tanhScalar(pre[i]) : max(0, pre[i]) }
        dropped.update(from: pooled, count: B * H)
        if let keys, config.classifierDropout > 0 {
            DistilleryTensor.dropout(dropped, count: B * H, p: config.classifierDropout, key: keys.key(step: -1, .classifier), offset: keys.rowOffset * H)
        }
        linear(a.f(a.clsLogits), dropped, weight: k.weight, bias: k.bias, N: B, a)
    }

    /// The class logits of the last `forwardClassifier` [B×C].
    public func classifierLogits(_ a: EncoderActivations) -> UnsafeMutablePointer<Float> { a.f(a.clsLogits) }
}
