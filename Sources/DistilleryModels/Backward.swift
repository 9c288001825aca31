import DistilleryTensor

extension EncoderModel {
    /// Backpropagates through the encoder: the forward list reversed. `dLast` [N×H] is the
    /// gradient of the loss with respect to the last hidden state (it is used as scratch).
    /// Parameter gradients are added into `grads`, addressed by the same slot offsets as the
    /// parameters, so a block shared by several layers simply receives several contributions.
    /// `keys` must be those the forward pass used.
    /// `taps` add loss gradients that enter below the top: with respect to intermediate hidden
    /// states and to a step's q | k | v projections (layer-matching losses).
    /// `onLayerDone(k)` is called after layer step k's backward (k descending), for data-parallel
    /// training to start sending the gradients that are final by then; with `inputWordGradients`
    /// [V×E] the word table's gradient from the inputs goes there instead of into `grads` (whose
    /// word slot then holds the tied decoder's part alone, final before this backward pass starts).
    public func backward(_ a: EncoderActivations, dLast: UnsafeMutablePointer<Float>, grads: FloatBuffer,
                         dropout keys: DropoutKeys? = nil, taps: BackwardTaps? = nil, onLayerDone: ((Int) -> Void)? = nil,
                         inputWordGradients: UnsafeMutablePointer<Float>? = nil) {
        precondition(a.training, "backward needs training activations")
        precondition(trainable, "backward needs trainable (fp32 or bf16) matrices")
        let c = config, L = layout
        let B = a.B, S = a.S, N = B * S
        let H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize
        let pHidden = keys == nil ? 0 : c.hiddenDropout
        let pAttention = keys == nil ? 0 : c.attentionDropout
        @inline(__always) func g(_ offset: Int) -> UnsafeMutablePointer<Float> { grads.base + offset }
        /// Backward of `linear` through the matrix at `weight` (gradients added at its offsets).
        @inline(__always) func linearBack(dinp: UnsafeMutablePointer<Float>?, weight: Int, bias: Int, dout: UnsafePointer<Float>,
                                          inp: UnsafePointer<Float>, N: Int, overwriteInput: Bool = false) {
            matrix(weight).backward(dinp: dinp, dweight: g(weight), dbias: g(bias), dout: dout, inp: inp, N: N,
                                    overwriteInput: overwriteInput, scratch: a.linearScratch)
        }
        let shape = AttentionShape(B: B, S: S, H: H, NH: c.numHeads)
        let dRes = a.f(a.dRes), dLn1 = a.f(a.dLn1), dTmp = a.f(a.dTmp), dCtx = a.f(a.dCtx)
        let dQKV = a.f(a.dQKV)
        // The FFN activation is recomputed from its pre-activation, then its gradient replaces it.
        let act = a.f(a.ffnAct)

        var dOut = dLast                     // gradient w.r.t. the output of the current step
        var dIn = a.f(a.dHiddenA)            // gradient w.r.t. its input, built below
        for k in stride(from: L.steps.count - 1, through: 0, by: -1) {
            let step = L.steps[k], s = a.steps[k]
            let at = L.attention[step.attention], ff = L.ffn[step.ffn]
            if let t = taps?.hidden[k + 1] { addInPlace(dOut, t, count: N * H) }
            // Recompute this layer's input (the previous layer's LayerNorm-2 output) and its
            // LayerNorm-1 output from the kept sums and statistics.
            var x = a.hidden(step: 0)
            if k > 0 {
                let prev = a.steps[k - 1], pf = L.ffn[L.steps[k - 1].ffn]
                x = a.f(a.xRecompute)
                layerNormApply(x, a.f(prev.ffnRes), mean: a.f(prev.ln2Mean), rstd: a.f(prev.ln2Rstd),
                               weight: p(pf.normWeight), bias: p(pf.normBias), N: N, C: H)
            }
            let ln1Out = a.f(a.ln1Out)
            layerNormApply(ln1Out, a.f(s.attnRes), mean: a.f(s.ln1Mean), rstd: a.f(s.ln1Rstd),
                           weight: p(at.normWeight), bias: p(at.normBias), N: N, C: H)

            // out = LN2(ffnRes), ffnRes = ln1Out + dropout(act · W2ᵀ + b2)
            dRes.update(repeating: 0, count: N * H)
            layerNormBackward(dinp: dRes, dweight: g(ff.normWeight), dbias: g(ff.normBias), dout: dOut,
                              inp: a.f(s.ffnRes), weight: p(ff.normWeight), mean: a.f(s.ln2Mean), rstd: a.f(s.ln2Rstd), N: N, C: H)
            dLn1.update(from: dRes, count: N * H)
            dTmp.update(from: dRes, count: N * H)
            if let keys, pHidden > 0 { dropout(dTmp, count: N * H, p: pHidden, key: keys.key(step: k, .ffnOutput), offset: keys.rowOffset * S * H) }
            activationForward(act, pre: nil, a.f(s.ffnPre), bias: nil, N: N, C: I, c.activation)
            linearBack(dinp: act, weight: ff.outputWeight, bias: ff.outputBias, dout: dTmp, inp: act, N: N, overwriteInput: true)
            activationBackward(dinp: act, dout: act, pre: a.f(s.ffnPre), count: N * I, c.activation, overwrite: true)
            linearBack(dinp: dLn1, weight: ff.inputWeight, bias: ff.inputBias, dout: act, inp: ln1Out, N: N)

            // ln1Out = LN1(attnRes), attnRes = x + dropout(ctx · Woᵀ + bo)
            dIn.update(repeating: 0, count: N * H)
            layerNormBackward(dinp: dIn, dweight: g(at.normWeight), dbias: g(at.normBias), dout: dLn1,
                              inp: a.f(s.attnRes), weight: p(at.normWeight), mean: a.f(s.ln1Mean), rstd: a.f(s.ln1Rstd), N: N, C: H)
            dTmp.update(from: dIn, count: N * H)
            if let keys, pHidden > 0, c.dropoutAfterAttentionOutput {
                dropout(dTmp, count: N * H, p: pHidden, key: keys.key(step: k, .attentionOutput), offset: keys.rowOffset * S * H)
            }
            dCtx.update(repeating: 0, count: N * H)
            linearBack(dinp: dCtx, weight: at.outputWeight, bias: at.outputBias, dout: dTmp, inp: a.f(s.ctx), N: N)
            dQKV.update(repeating: 0, count: N * 3 * H)
            let drop = (keys != nil && pAttention > 0) ? AttentionDropout(p: pAttention, key: keys!.key(step: k, .attentionProbs), offset: keys!.rowOffset * c.numHeads * S * S) : nil
            attentionBackward(dqkv: dQKV, dctx: dCtx, qkv: a.f(s.qkv), mask: a.mask.base, shape, scratch: a.attentionScratch, dropout: drop)
            if let t = taps?.qkv[k] { addInPlace(dQKV, t, count: N * 3 * H) }
            linearBack(dinp: dIn, weight: at.qkvWeight, bias: at.qkvBias, dout: dQKV, inp: x, N: N)

            // The input gradient becomes the next (lower) step's output gradient.
            let done = dOut
            dOut = dIn
            dIn = done == dLast ? a.f(a.dHiddenB) : done
            onLayerDone?(k)
        }

        // Embeddings: hidden0 = projection(dropout(LN(word + position + type))).
        if let t = taps?.hidden[0] { addInPlace(dOut, t, count: N * H) }
        let emb = L.embeddings!
        var dEmbOut = dOut
        if let w = emb.projectionWeight, let b = emb.projectionBias {
            dEmbOut = a.f(a.dEmbA)
            dEmbOut.update(repeating: 0, count: N * E)
            linearBack(dinp: dEmbOut, weight: w, bias: b, dout: dOut, inp: a.f(a.embOut), N: N)
        }
        if let keys, pHidden > 0 { dropout(dEmbOut, count: N * E, p: pHidden, key: keys.key(step: -1, .embeddings), offset: keys.rowOffset * S * E) }
        let dSum = a.f(a.dEmbB)
        dSum.update(repeating: 0, count: N * E)
        layerNormBackward(dinp: dSum, dweight: g(emb.normWeight), dbias: g(emb.normBias), dout: dEmbOut,
                          inp: a.f(a.embSum), weight: p(emb.normWeight), mean: a.f(a.embMean), rstd: a.f(a.embRstd), N: N, C: E)
        embeddingBackward(dwte: inputWordGradients ?? g(emb.word), dwpe: g(emb.position), dwtt: emb.tokenType.map { g($0) }, dout: dSum,
                          ids: a.ids.base, types: c.hasTokenTypes ? a.types.base : nil, B: B, S: S, C: E)
    }

    /// Backward of `forwardHeadTransform`: dHead [N×Ht] (gradient w.r.t. the head output; used
    /// as scratch) → parameter gradients, and adds into dLast [N×H].
    public func backwardHeadTransform(_ a: EncoderActivations, dHead: UnsafeMutablePointer<Float>,
                                      dLast: UnsafeMutablePointer<Float>, grads: FloatBuffer) {
        guard let h = layout.head else { return }
        let N = a.N, Ht = config.headWidth
        @inline(__always) func g(_ offset: Int) -> UnsafeMutablePointer<Float> { grads.base + offset }
        let dAct = a.f(a.dHeadB)
        dAct.update(repeating: 0, count: N * Ht)
        layerNormBackward(dinp: dAct, dweight: g(h.normWeight), dbias: g(h.normBias), dout: dHead,
                          inp: a.f(a.headAct), weight: p(h.normWeight), mean: a.f(a.headMean), rstd: a.f(a.headRstd), N: N, C: Ht)
        activationBackward(dinp: dAct, dout: dAct, pre: a.f(a.headPre), count: N * Ht, config.activation, overwrite: true)
        matrix(h.transformWeight).backward(dinp: dLast, dweight: g(h.transformWeight), dbias: g(h.transformBias), dout: dAct,
                                           inp: a.lastHidden, N: N, overwriteInput: false, scratch: a.linearScratch)
    }

    /// Scratch [N×Ht] for the head-output gradient.
    public func headGradientScratch(_ a: EncoderActivations) -> UnsafeMutablePointer<Float> { a.f(a.dHeadA) }

    /// Backward of `forwardClassifier`: dLogits [B×C] (read) → the head's parameter gradients,
    /// and adds into dLast [N×H] at the [CLS] rows. `keys` must be those the forward pass used.
    public func backwardClassifier(_ a: EncoderActivations, dLogits: UnsafePointer<Float>, dLast: UnsafeMutablePointer<Float>,
                                   grads: FloatBuffer, dropout keys: DropoutKeys? = nil) {
        guard let k = layout.classifier, let pl = layout.pooler else { return }
        let B = a.B, S = a.S, H = config.hiddenSize
        @inline(__always) func g(_ offset: Int) -> UnsafeMutablePointer<Float> { grads.base + offset }
        let dPooled = a.f(a.dPooled), dClsIn = a.f(a.dClsIn), pre = a.f(a.poolPre), pooled = a.f(a.pooled)
        dPooled.update(repeating: 0, count: B * H)
        matrix(k.weight).backward(dinp: dPooled, dweight: g(k.weight), dbias: g(k.bias), dout: dLogits, inp: a.f(a.pooledDrop), N: B,
                                  overwriteInput: false, scratch: a.linearScratch)
        if let keys, config.classifierDropout > 0 {
            dropout(dPooled, count: B * H, p: config.classifierDropout, key: keys.key(step: -1, .classifier), offset: keys.rowOffset * H)
        }
        // Through the activation: tanh' = 1 − y², ReLU' = [x > 0].
        for i in 0..<(B * H) {
            dPooled[i] *= config.poolerActivation == .tanh ? 1 - pooled[i] * pooled[i] : (pre[i] > 0 ? 1 : 0)
        }
        dClsIn.update(repeating: 0, count: B * H)
        matrix(pl.weight).backward(dinp: dClsIn, dweight: g(pl.weight), dbias: g(pl.bias), dout: dPooled, inp: a.f(a.clsIn), N: B,
                                   overwriteInput: false, scratch: a.linearScratch)
        for b in 0..<B {
            let d = dLast + b * S * H, s = dClsIn + b * H
            for h in 0..<H { d[h] += s[h] }
        }
    }
}

/// Gradients that enter the encoder's backward pass below its top, each [N×H] or [N×3H]:
/// `hidden[l]` with respect to hidden state l (0 the embedding output … L the last; the last
/// may equally be added into dLast), `qkv[k]` with respect to applied step k's projections.
public struct BackwardTaps {
    public var hidden: [UnsafePointer<Float>?]
    public var qkv: [UnsafePointer<Float>?]
    public init(layers L: Int) {
        hidden = [UnsafePointer<Float>?](repeating: nil, count: L + 1)
        qkv = [UnsafePointer<Float>?](repeating: nil, count: L)
    }
}

/// y += x over `count` floats.
@inline(__always)
func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { y[i] += x[i] }
}
