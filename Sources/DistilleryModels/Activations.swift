import DistilleryTensor

/// Activation memory for batches of up to maxB × maxS tokens, carved out of one arena.
///
/// Training keeps every applied layer's activations for the backward pass and holds the
/// backward scratch; inference keeps one layer's worth and alternates two hidden buffers.
/// Buffers are sized for the capacity; a smaller batch uses the first N = B·S rows of each.
public final class EncoderActivations: @unchecked Sendable {
    public let config: EncoderConfig
    public let maxB: Int, maxS: Int
    public let training: Bool
    public internal(set) var B = 0, S = 0
    public var N: Int { B * S }

    let arena: FloatBuffer
    let ids: AlignedBuffer<Int32>       // [N]
    let types: AlignedBuffer<Int32>     // [N]
    let mask: FloatBuffer               // [N]
    var hasTypes = false

    struct Step {
        var qkv = 0, probs = 0, dropped = 0, ctx = 0, attnRes = 0, ln1Mean = 0, ln1Rstd = 0
        var ln1Out = 0, ffnPre = 0, ffnAct = 0, ffnRes = 0, ln2Mean = 0, ln2Rstd = 0
    }

    // Offsets into the arena.
    var embSum = 0, embMean = 0, embRstd = 0, embNorm = 0, embOut = 0
    var hiddenOffsets: [Int] = []
    var steps: [Step] = []
    var tmp = 0
    var headPre = 0, headAct = 0, headMean = 0, headRstd = 0, headOut = 0
    // Backward scratch (training only).
    var dHiddenA = 0, dHiddenB = 0, dRes = 0, dLn1 = 0, dTmp = 0, dCtx = 0, dQKV = 0, dProbs = 0, dAct = 0
    var dEmbA = 0, dEmbB = 0, dHeadA = 0, dHeadB = 0

    public init(config c: EncoderConfig, maxB: Int, maxS: Int, training: Bool) {
        config = c; self.maxB = maxB; self.maxS = maxS; self.training = training
        let layout = ParameterLayout(config: c)
        let N = maxB * maxS, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize
        let P = maxB * c.numHeads * maxS * maxS, Ht = c.headWidth
        let dropAttention = training && c.attentionDropout > 0
        var size = 0
        func take(_ n: Int) -> Int { let o = size; size += (n + 15) & ~15; return o }

        embSum = take(N * E); embMean = take(N); embRstd = take(N); embNorm = take(N * E)
        embOut = training && c.hiddenDropout > 0 ? take(N * E) : embNorm
        let nSteps = layout.steps.count
        if training {
            hiddenOffsets = [c.hasEmbeddingProjection ? take(N * H) : embOut]
            for _ in 0..<nSteps { hiddenOffsets.append(take(N * H)) }
        } else {
            let a = take(N * H), b = take(N * H)
            hiddenOffsets = [c.hasEmbeddingProjection ? b : embOut] + (1...max(1, nSteps)).map { $0 % 2 == 1 ? a : b }
        }
        func makeStep() -> Step {
            var s = Step()
            s.qkv = take(N * 3 * H); s.probs = take(P); s.dropped = dropAttention ? take(P) : s.probs
            s.ctx = take(N * H); s.attnRes = take(N * H); s.ln1Mean = take(N); s.ln1Rstd = take(N)
            s.ln1Out = take(N * H); s.ffnPre = take(N * I); s.ffnAct = take(N * I); s.ffnRes = take(N * H)
            s.ln2Mean = take(N); s.ln2Rstd = take(N)
            return s
        }
        if training {
            steps = (0..<nSteps).map { _ in makeStep() }
        } else {
            let s = makeStep()
            steps = Array(repeating: s, count: nSteps)
        }
        tmp = take(N * H)
        if c.hasMLMHead {
            headPre = take(N * Ht); headAct = take(N * Ht); headMean = take(N); headRstd = take(N); headOut = take(N * Ht)
        }
        if training {
            dHiddenA = take(N * H); dHiddenB = take(N * H); dRes = take(N * H); dLn1 = take(N * H)
            dTmp = take(N * H); dCtx = take(N * H); dQKV = take(N * 3 * H); dProbs = take(P); dAct = take(N * I)
            dEmbA = take(N * E); dEmbB = take(N * E)
            if c.hasMLMHead { dHeadA = take(N * Ht); dHeadB = take(N * Ht) }
        }
        arena = FloatBuffer(count: size)
        ids = AlignedBuffer<Int32>(count: N)
        types = AlignedBuffer<Int32>(count: N)
        mask = FloatBuffer(count: N)
    }

    @inline(__always) func f(_ offset: Int) -> UnsafeMutablePointer<Float> { arena.base + offset }

    /// Hidden state after applied step k (k = 0: the embedding output, projected to H).
    /// In inference mode only the latest two are valid.
    public func hidden(step k: Int) -> UnsafeMutablePointer<Float> { f(hiddenOffsets[k]) }
    /// The encoder's output [N×H].
    public var lastHidden: UnsafeMutablePointer<Float> { f(hiddenOffsets[hiddenOffsets.count - 1]) }
    /// The MLM head transform's output [N×Ht] (after `forwardHeadTransform`).
    public var headOutput: UnsafeMutablePointer<Float> { f(headOut) }
    public var attentionMask: UnsafeMutablePointer<Float> { mask.base }
    public var inputIds: UnsafeMutablePointer<Int32> { ids.base }

    /// Total bytes held.
    public var bytes: Int { arena.count * 4 + ids.count * 8 + mask.count * 4 }
}
