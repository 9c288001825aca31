import CKernels

// Multi-head self-attention over packed projections, with a key padding mask.
//
//   qkv   [B·S × 3H]    row n = [q | k | v], head h uses columns h·D ..< (h+1)·D of each part
//   mask  [B × S]       1 = real token, 0 = padding (padding keys get probability 0)
//   ctx   [B·S × H]     P · v with P = softmax(q kᵀ / √D) per (batch, head), heads side by side
//   scratch [slots × (3·S·S + S·D)]  one block per thread for P, dropout(P), dP and a
//                                    transposed k or v [D×S] (or a packed one [S×D])
//
// With attention dropout (training), dropout(P) is what multiplies v.
//
// The probabilities are not kept for the backward pass: it recomputes them from q and k (one
// S×S product per head, a few percent of the layer's work), which saves B·NH·S² floats per
// layer — the largest activation of a training step after the FFN's.
//
// One (batch, head) is one unit of work: its S×S block stays in cache from scores to context.
// The heads are cut into eight chunks a thread, taken as threads finish, each thread using its
// own scratch block: on a rented vCPU that the host interrupts, the other thread picks up the
// slack rather than waiting (neutral on a quiet machine, 5–8% off the int8 pass on a busy one).
// Where the AVX2 + FMA kernels run, the per-head products (S×S×D, D = 32 or 64), forward and
// backward, go through CKernels' small product, which skips the packing and C-scaling passes a
// BLAS call spends on a problem this small; elsewhere through the BLAS.
// A row with no real key at all (an empty sequence) attends uniformly, as adding a large
// negative bias to every score does in the reference.

public struct AttentionShape: Sendable {
    public let B: Int, S: Int, H: Int, NH: Int
    public var D: Int { H / NH }
    public var scale: Float { 1 / Float(D).squareRoot() }
    public init(B: Int, S: Int, H: Int, NH: Int) {
        self.B = B; self.S = S; self.H = H; self.NH = NH
    }
}

/// Attention-probability dropout: its rate and stream key; `offset` is where this batch's
/// first (batch, head) block starts in the stream (a rank's share of a larger batch).
public struct AttentionDropout: Sendable {
    public let p: Float
    public let key: UInt64
    public let offset: Int
    public init(p: Float, key: UInt64, offset: Int = 0) { self.p = p; self.key = key; self.offset = offset }
}

/// Per-thread scratch for attention: `slots` blocks of 3·S·S + S·D floats.
public struct AttentionScratch {
    public let base: UnsafeMutablePointer<Float>
    public let slots: Int
    public init(base: UnsafeMutablePointer<Float>, slots: Int) { self.base = base; self.slots = slots }
    public static func count(slots: Int, S: Int, D: Int) -> Int { slots * floatsPerSlot(S: S, D: D) }
    static func floatsPerSlot(S: Int, D: Int) -> Int { 3 * S * S + S * D }
}

public func attentionForward(ctx: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, mask: UnsafePointer<Float>,
                             _ a: AttentionShape, scratch: AttentionScratch, dropout drop: AttentionDropout? = nil) {
    let (S, H, NH, D) = (a.S, a.H, a.NH, a.D)
    let ld = 3 * H
    let ctxP = SendablePointer(ctx), scratchP = SendablePointer(scratch.base)
    let slot = AttentionScratch.floatsPerSlot(S: S, D: D)
    Parallel.forEachChunkWithScratch(a.B * NH, slots: scratch.slots, perThread: 8) { thread, heads in
        let p = scratchP.p + thread * slot, dropped = p + S * S, t = p + 3 * S * S
        for bh in heads {
            let b = bh / NH, h = bh % NH
            let q = qkv + b * S * ld + h * D
            headProbabilities(p, q: q, S: S, D: D, ld: ld, H: H, scale: a.scale, mask: mask + b * S, transposed: t)
            var used = p
            if let drop {
                used = dropped
                used.update(from: p, count: S * S)
                dropoutBlock(used, count: S * S, offset: drop.offset + bh * S * S, p: drop.p, key: drop.key)
            }
            headProduct(ctxP.p + b * S * H + h * D, ldc: H, used, lda: S, q + 2 * H, ldb: ld, M: S, N: D, K: S, staging: t)
        }
    }
}

/// P = softmax(q kᵀ · scale) with padding keys masked, for one head: p [S×S]; t [D×S] scratch.
@inline(__always)
func headProbabilities(_ p: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, S: Int, D: Int, ld: Int, H: Int,
                       scale: Float, mask: UnsafePointer<Float>, transposed t: UnsafeMutablePointer<Float>) {
    headProductTransposed(p, ldc: S, q, lda: ld, q + H, ldb: ld, M: S, N: S, K: D, scale: scale, scratch: t)
    maskedSoftmaxRows(p, rows: S, S: S, mask: mask)
}

/// c [M×N] (row stride ldc) = scale · a [M×K] · b [K×N] (+ c when accumulating): one head's
/// product, on the calling thread; with `transposedA`, a is stored as [K×M] (row stride lda) and
/// c = scale · aᵀ · b (the backward pass's dv and dk). On the small-product path b is first
/// packed into `staging` [K×N] (its rows are 3H floats apart in qkv).
@inline(__always)
func headProduct(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
                 _ b: UnsafePointer<Float>, ldb: Int, M: Int, N: Int, K: Int, scale: Float = 1, accumulate: Bool = false,
                 transposedA: Bool = false, staging: UnsafeMutablePointer<Float>) {
    if SIMDKernels.fast {
        distill_copy_block(staging, b, ldb, K, N)
        if transposedA {
            distill_small_gemm_at(c, ldc, a, lda, staging, N, M, N, K, scale, accumulate ? 1 : 0)
        } else {
            distill_small_gemm(c, ldc, a, lda, staging, N, M, N, K, scale, accumulate ? 1 : 0)
        }
    } else {
        sgemm(transposedA ? .yes : .no, .no, m: M, n: N, k: K, alpha: scale, a, lda: lda, b, ldb: ldb,
              beta: accumulate ? 1 : 0, c, ldc: ldc)
    }
}

/// c [M×N] = scale · a [M×K] · bᵀ, b [N×K] (row stride ldb): one head's product; `scratch`
/// [K×N] receives bᵀ on the small-product path.
@inline(__always)
func headProductTransposed(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
                           _ b: UnsafePointer<Float>, ldb: Int, M: Int, N: Int, K: Int, scale: Float = 1,
                           scratch t: UnsafeMutablePointer<Float>) {
    if SIMDKernels.fast {
        distill_transpose_block(t, b, ldb, N, K)
        distill_small_gemm(c, ldc, a, lda, t, N, M, N, K, scale, 0)
    } else {
        sgemm(.no, .yes, m: M, n: N, k: K, alpha: scale, a, lda: lda, b, ldb: ldb, c, ldc: ldc)
    }
}

/// Row-wise softmax in place over rows × S scores that share one key mask [S]; padding keys get
/// probability 0 (all keys when none is real).
@inline(__always)
public func maskedSoftmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, S: Int, mask m: UnsafePointer<Float>) {
    distill_softmax_masked_rows(x, rows, S, m)
}

/// Backward of `attentionForward`, adding into dqkv; the probabilities are recomputed from qkv.
///   P = softmax(q kᵀ · scale),  P' = dropout(P) (or P),
///   dP' = dctx · vᵀ,  dv += P'ᵀ · dctx,  dP = dropout(dP'),
///   dS = P ⊙ (dP − Σ_j dP ⊙ P) · scale,  dq += dS · k,  dk += dSᵀ · q
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dctx: UnsafePointer<Float>,
                              qkv: UnsafePointer<Float>, mask: UnsafePointer<Float>, _ a: AttentionShape,
                              scratch: AttentionScratch, dropout drop: AttentionDropout? = nil) {
    let (S, H, NH, D) = (a.S, a.H, a.NH, a.D)
    let ld = 3 * H
    let dqkvP = SendablePointer(dqkv), scratchP = SendablePointer(scratch.base)
    // Heads write disjoint columns of dqkv.
    let slot = AttentionScratch.floatsPerSlot(S: S, D: D)
    Parallel.forEachChunkWithScratch(a.B * NH, slots: scratch.slots, perThread: 8) { thread, heads in
        let p = scratchP.p + thread * slot, dropped = p + S * S, dp = p + 2 * S * S, t = p + 3 * S * S
        for bh in heads {
            let b = bh / NH, h = bh % NH
            let dc = dctx + b * S * H + h * D
            let q = qkv + b * S * ld + h * D
            let dq = dqkvP.p + b * S * ld + h * D
            headProbabilities(p, q: q, S: S, D: D, ld: ld, H: H, scale: a.scale, mask: mask + b * S, transposed: t)
            var used = p
            if let drop {
                used = dropped
                used.update(from: p, count: S * S)
                dropoutBlock(used, count: S * S, offset: drop.offset + bh * S * S, p: drop.p, key: drop.key)
            }
            headProductTransposed(dp, ldc: S, dc, lda: H, q + 2 * H, ldb: ld, M: S, N: S, K: D, scratch: t)
            headProduct(dq + 2 * H, ldc: ld, used, lda: S, dc, ldb: H, M: S, N: D, K: S, accumulate: true, transposedA: true, staging: t)
            if let drop { dropoutBlock(dp, count: S * S, offset: drop.offset + bh * S * S, p: drop.p, key: drop.key) }
            softmaxBackwardRows(dp, probs: p, rows: S, S: S, scale: a.scale)
            headProduct(dq, ldc: ld, dp, lda: S, q + H, ldb: ld, M: S, N: D, K: S, accumulate: true, staging: t)
            headProduct(dq + H, ldc: ld, dp, lda: S, q, ldb: ld, M: S, N: D, K: S, accumulate: true, transposedA: true, staging: t)
        }
    }
}

/// dS = P ⊙ (dP − Σ_j dP ⊙ P) · scale, in place over dP [rows × S].
@inline(__always)
public func softmaxBackwardRows(_ dp: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>,
                                rows: Int, S: Int, scale: Float) {
    distill_softmax_backward_rows(dp, probs, rows, S, scale)
}
