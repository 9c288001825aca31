import DistilleryTensor

/// Working memory that several activation sets share because they are never live at once:
/// a teacher's inference temporaries and a student's forward and backward temporaries, say.
/// It grows to the largest reservation (reservations happen when activation sets are made,
/// before any use).
public final class ScratchArena: @unchecked Sendable {
    public private(set) var buffer = FloatBuffer(count: 0)
    public init() {}
    /// Grows the arena to at least `count` floats. Pointers into it taken before are invalid
    /// afterwards: reserve everything first, then take pointers.
    public func reserve(_ count: Int) { if count > buffer.count { buffer = FloatBuffer(count: count) } }
}

/// Activation memory for batches of up to maxB × maxS tokens.
///
/// Training keeps what the backward pass reads, per applied layer: the QKV projection, the
/// attention context, the two residual sums with their LayerNorm statistics, and the FFN
/// pre-activation; plus the embedding output and the last hidden state. What is cheap to
/// recompute is recomputed in the backward pass instead of kept: attention probabilities (one
/// S×S product per head), the FFN activation, and the LayerNorm outputs (the intermediate
/// hidden states among them), which follow element-wise from the kept sums and statistics. Temporaries, including all of the backward
/// pass's, live in a scratch arena that can be shared. Inference keeps only the two alternating
/// hidden states and the head output; everything else is scratch.
/// Buffers are sized for the capacity; a smaller batch uses the first N = B·S rows of each.
public final class EncoderActivations: @unchecked Sendable {
    public let config: EncoderConfig
    public let maxB: Int, maxS: Int
    public let training: Bool
    public internal(set) var B = 0, S = 0
    public var N: Int { B * S }

    /// A buffer's place: in this set's own memory or in the scratch arena.
    struct Loc { let scratch: Bool; let offset: Int }

    let stored: FloatBuffer
    let scratch: ScratchArena
    let ids: AlignedBuffer<Int32>       // [N]
    let types: AlignedBuffer<Int32>     // [N]
    let positions: AlignedBuffer<Int32> // [N]  n mod S (tables gathered row by row)
    let mask: FloatBuffer               // [N]

    struct Step {
        var qkv: Loc, ctx: Loc, attnRes: Loc, ln1Mean: Loc, ln1Rstd: Loc
        var ffnPre: Loc, ffnRes: Loc, ln2Mean: Loc, ln2Rstd: Loc
    }

    // Embeddings [N×E] / [N]
    var embSum: Loc, embMean: Loc, embRstd: Loc, embNorm: Loc, embOut: Loc
    /// hidden state after applied step k, [N×H]
    var hiddenLocs: [Loc] = []
    var steps: [Step] = []
    // Forward temporaries: attention blocks [threads × 3·S·S], FFN activation [N×I], linear
    // outputs [N×H].
    var attention: Loc, ffnAct: Loc, tmp: Loc
    /// LayerNorm-1 output [N×H] of the current layer (forward, and recomputed in backward).
    var ln1Out: Loc
    /// A recomputed intermediate hidden state [N×H] (backward).
    var xRecompute: Loc
    let attentionSlots: Int
    /// Scratch of the weight matrices' products (quantized activations, bf16 operands), in
    /// floats, for N rows.
    var linear: Loc
    public let linearScratchFloats: Int
    // MLM head transform [N×Ht] / [N]
    var headPre: Loc, headAct: Loc, headMean: Loc, headRstd: Loc, headOut: Loc
    // Classification head [B×H] / [B×C]: [CLS] rows, pooler pre-activation and output, the
    // classifier's (dropped-out) input, logits; and their backward temporaries.
    var clsIn: Loc, poolPre: Loc, pooled: Loc, pooledDrop: Loc, clsLogits: Loc, dPooled: Loc, dClsIn: Loc
    // Backward temporaries (training only).
    var dHiddenA: Loc, dHiddenB: Loc, dRes: Loc, dLn1: Loc, dTmp: Loc, dCtx: Loc, dQKV: Loc
    var dEmbA: Loc, dEmbB: Loc, dHeadA: Loc, dHeadB: Loc

    /// Activations for `model` (whose matrix formats set the products' scratch).
    public convenience init(model: EncoderModel, maxB: Int, maxS: Int, training: Bool, scratch: ScratchArena = ScratchArena()) throws {
        try self.init(config: model.config, maxB: maxB, maxS: maxS, training: training, scratch: scratch,
                      linearScratch: model.linearScratch(rows: maxB * maxS, training: training))
    }

    /// Checks that activations for batches of maxB × maxS tokens fit in memory, allocating
    /// nothing (what `distill validate` checks for a recipe's batch).
    public static func checkFits(config: EncoderConfig, maxB: Int, maxS: Int, training: Bool) throws {
        _ = try EncoderActivations(config: config, maxB: maxB, maxS: maxS, training: training, planOnly: true)
    }

    /// Plans the buffers, checks they fit in memory (naming the batch), then allocates them
    /// (unless `planOnly`).
    public init(config c: EncoderConfig, maxB: Int, maxS: Int, training: Bool, scratch: ScratchArena = ScratchArena(),
                linearScratch: Int = 0, planOnly: Bool = false) throws {
        config = c; self.maxB = maxB; self.maxS = maxS; self.training = training; self.scratch = scratch
        linearScratchFloats = linearScratch
        let nSteps = ParameterLayout(config: c).steps.count
        // The largest products below (N·I, N·3H, S·S per thread, with room for the sums) must
        // not overflow before the budget is checked.
        guard maxB > 0, maxS > 0, MemoryBudget.product(maxB, maxS, max(c.intermediateSize, 3 * c.hiddenSize, maxS), nSteps + 2, 64) != nil else {
            throw MemoryBudgetError.tooLarge(what: "activations for batches of \(maxB) × \(maxS) tokens", bytes: nil, budget: MemoryBudget.bytes)
        }
        let N = maxB * maxS, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize
        let Ht = c.headWidth
        var storedSize = 0, scratchSize = 0
        func keep(_ n: Int) -> Loc { let o = storedSize; storedSize += (n + 15) & ~15; return Loc(scratch: false, offset: o) }
        func temp(_ n: Int) -> Loc { let o = scratchSize; scratchSize += (n + 15) & ~15; return Loc(scratch: true, offset: o) }
        // In training, what the backward pass reads is kept; in inference it is all scratch.
        func act(_ n: Int) -> Loc { training ? keep(n) : temp(n) }

        embSum = act(N * E); embMean = act(N); embRstd = act(N); embNorm = act(N * E)
        embOut = training && c.hiddenDropout > 0 ? keep(N * E) : embNorm
        if training {
            // Kept: the embedding output and the last hidden state. Between them, two
            // alternating scratch buffers (the backward pass recomputes those states).
            let first = c.hasEmbeddingProjection ? keep(N * H) : embOut
            let a = temp(N * H), b = temp(N * H)
            hiddenLocs = [first] + (1..<max(1, nSteps)).map { $0 % 2 == 1 ? a : b } + [keep(N * H)]
            if nSteps == 0 { hiddenLocs = [first] }
        } else {
            let a = keep(N * H), b = keep(N * H)
            hiddenLocs = [c.hasEmbeddingProjection ? b : embOut] + (1...max(1, nSteps)).map { $0 % 2 == 1 ? a : b }
        }
        func makeStep() -> Step {
            Step(qkv: act(N * 3 * H), ctx: act(N * H), attnRes: act(N * H), ln1Mean: act(N), ln1Rstd: act(N),
                 ffnPre: act(N * I), ffnRes: act(N * H), ln2Mean: act(N), ln2Rstd: act(N))
        }
        if training {
            steps = (0..<nSteps).map { _ in makeStep() }
        } else {
            let s = makeStep()
            steps = Array(repeating: s, count: nSteps)
        }
        attentionSlots = Parallel.threads
        attention = temp(AttentionScratch.count(slots: attentionSlots, S: maxS, D: H / c.numHeads))
        linear = temp(max(1, linearScratch))
        ffnAct = temp(N * I); tmp = temp(N * H); ln1Out = temp(N * H)
        xRecompute = training ? temp(N * H) : tmp
        if c.hasMLMHead {
            headPre = act(N * Ht); headAct = act(N * Ht); headMean = act(N); headRstd = act(N); headOut = keep(N * Ht)
        } else {
            headPre = tmp; headAct = tmp; headMean = tmp; headRstd = tmp; headOut = tmp
        }
        let none = Loc(scratch: true, offset: 0)
        if c.hasClassifier {
            (clsIn, poolPre, pooled, pooledDrop) = (keep(maxB * H), keep(maxB * H), keep(maxB * H), keep(maxB * H))
            (clsLogits, dPooled, dClsIn) = (keep(maxB * c.numLabels), keep(maxB * H), keep(maxB * H))
        } else {
            (clsIn, poolPre, pooled, pooledDrop, clsLogits, dPooled, dClsIn) = (none, none, none, none, none, none, none)
        }
        if training {
            dHiddenA = temp(N * H); dHiddenB = temp(N * H); dRes = temp(N * H); dLn1 = temp(N * H)
            dTmp = temp(N * H); dCtx = temp(N * H); dQKV = temp(N * 3 * H)
            dEmbA = temp(N * E); dEmbB = temp(N * E)
            dHeadA = c.hasMLMHead ? temp(N * Ht) : none; dHeadB = c.hasMLMHead ? temp(N * Ht) : none
        } else {
            (dHiddenA, dHiddenB, dRes, dLn1, dTmp, dCtx, dQKV) = (none, none, none, none, none, none, none)
            (dEmbA, dEmbB, dHeadA, dHeadB) = (none, none, none, none)
        }
        try MemoryBudget.check(MemoryBudget.product(MemoryBudget.sum([storedSize, scratchSize, 3 * N]) ?? Int.max, 4),
                               for: "\(training ? "training" : "inference") activations for batches of \(maxB) × \(maxS) tokens")
        let n = planOnly ? 0 : N
        stored = FloatBuffer(count: planOnly ? 0 : storedSize)
        if !planOnly { scratch.reserve(scratchSize) }
        ids = AlignedBuffer<Int32>(count: n)
        types = AlignedBuffer<Int32>(count: n)
        positions = AlignedBuffer<Int32>(count: n)
        mask = FloatBuffer(count: n)
    }

    @inline(__always) func f(_ l: Loc) -> UnsafeMutablePointer<Float> {
        (l.scratch ? scratch.buffer.base : stored.base) + l.offset
    }

    var attentionScratch: AttentionScratch { AttentionScratch(base: f(attention), slots: attentionSlots) }
    var linearScratch: UnsafeMutablePointer<Float> { f(linear) }

    /// Hidden state after applied step k (k = 0: the embedding output, projected to H).
    /// In inference mode only the latest two are valid.
    public func hidden(step k: Int) -> UnsafeMutablePointer<Float> { f(hiddenLocs[k]) }
    /// The packed q | k | v projections of applied step k [N×3H] (training: kept until the
    /// backward pass; inference: valid only while the step runs, see `forward`'s onQKV).
    public func qkv(step k: Int) -> UnsafeMutablePointer<Float> { f(steps[k].qkv) }
    /// The encoder's output [N×H].
    public var lastHidden: UnsafeMutablePointer<Float> { f(hiddenLocs[hiddenLocs.count - 1]) }
    /// The MLM head transform's output [N×Ht] (after `forwardHeadTransform`).
    public var headOutput: UnsafeMutablePointer<Float> { f(headOut) }
    public var attentionMask: UnsafeMutablePointer<Float> { mask.base }
    /// The pooler's output [B×H] (after `forwardClassifier`).
    public var pooledOutput: UnsafeMutablePointer<Float> { f(pooled) }
    public var inputIds: UnsafeMutablePointer<Int32> { ids.base }

    /// Bytes held by this set (the shared scratch counted separately).
    public var bytes: Int { stored.count * 4 + ids.count * 8 + mask.count * 4 }
}
