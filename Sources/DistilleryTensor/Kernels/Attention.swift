// Multi-head self-attention over packed projections, with a key padding mask.
//
//   qkv   [B·S × 3H]    row n = [q | k | v], head h uses columns h·D ..< (h+1)·D of each part
//   mask  [B × S]       1 = real token, 0 = padding (padding keys get probability 0)
//   probs [B × NH × S × S]  softmax(q kᵀ / √D) per (batch, head)
//   ctx   [B·S × H]     probs · v, heads side by side
//
// With attention dropout (training), dropped [B × NH × S × S] holds dropout(probs) and is what
// multiplies v; probs keeps the softmax for the backward pass.
//
// Matrix products go through sgemm one (batch, head) at a time; the softmax runs over all
// rows at once on every core. A row with no real key at all (an empty sequence) attends
// uniformly, as adding a large negative bias to every score does in the reference.

public struct AttentionShape: Sendable {
    public let B: Int, S: Int, H: Int, NH: Int
    public var D: Int { H / NH }
    public var scale: Float { 1 / Float(D).squareRoot() }
    public init(B: Int, S: Int, H: Int, NH: Int) {
        self.B = B; self.S = S; self.H = H; self.NH = NH
    }
}

/// Attention-probability dropout: its rate, the stream key, and where dropped probs go.
public struct AttentionDropout {
    public let p: Float
    public let key: UInt64
    public let dropped: UnsafeMutablePointer<Float>
    public init(p: Float, key: UInt64, dropped: UnsafeMutablePointer<Float>) {
        self.p = p; self.key = key; self.dropped = dropped
    }
}

public func attentionForward(ctx: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, mask: UnsafePointer<Float>,
                             _ a: AttentionShape, dropout drop: AttentionDropout? = nil) {
    let (B, S, H, NH, D) = (a.B, a.S, a.H, a.NH, a.D)
    let ld = 3 * H
    for b in 0..<B {
        for h in 0..<NH {
            let q = qkv + b * S * ld + h * D
            sgemm(.no, .yes, m: S, n: S, k: D, alpha: a.scale, q, lda: ld, q + H, ldb: ld,
                  probs + (b * NH + h) * S * S, ldc: S)
        }
    }
    maskedSoftmaxRows(probs, mask: mask, B: B, NH: NH, S: S)
    var used = probs
    if let drop {
        drop.dropped.update(from: probs, count: B * NH * S * S)
        dropout(drop.dropped, count: B * NH * S * S, p: drop.p, key: drop.key)
        used = drop.dropped
    }
    for b in 0..<B {
        for h in 0..<NH {
            let v = qkv + b * S * ld + 2 * H + h * D
            sgemm(.no, .no, m: S, n: D, k: S, used + (b * NH + h) * S * S, lda: S, v, ldb: ld,
                  ctx + b * S * H + h * D, ldc: H)
        }
    }
}

/// Row-wise softmax of scores [B × NH × S × S] in place, padding keys excluded.
public func maskedSoftmaxRows(_ p: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>,
                              B: Int, NH: Int, S: Int) {
    let p = SendablePointer(p)
    Parallel.forEachChunk(B * NH * S, minPerChunk: 64) { _, rows in
        for row in rows {
            let b = row / (NH * S)
            let m = mask + b * S
            let x = p.p + row * S
            var valid = 0
            for j in 0..<S where m[j] != 0 { valid += 1 }
            let all = valid == 0
            var mx = -Float.infinity
            for j in 0..<S where all || m[j] != 0 { mx = max(mx, x[j]) }
            var sum: Float = 0
            var j = 0
            while j + 8 <= S {
                var e = vexp(x.load8(j) - mx)
                if !all { e = e.replacing(with: 0, where: m.load8(j) .== 0) }
                x.store8(e, j)
                sum += e.sum()
                j += 8
            }
            while j < S {
                let e = (all || m[j] != 0) ? vexp(x[j] - mx) : 0
                x[j] = e; sum += e; j += 1
            }
            let inv = 1 / sum
            for j in 0..<S { x[j] *= inv }
        }
    }
}

/// Backward of `attentionForward`. Adds into dqkv. `dprobs` is scratch of the size of probs.
///   dP' = dctx · vᵀ,  dv += P'ᵀ · dctx  (P' = dropout(P), or P without dropout),
///   dP = dropout(dP'),  dS = P ⊙ (dP − Σ_j dP ⊙ P) · scale,  dq += dS · k,  dk += dSᵀ · q
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dprobs: UnsafeMutablePointer<Float>,
                              dctx: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, _ a: AttentionShape,
                              dropout drop: AttentionDropout? = nil) {
    let used: UnsafePointer<Float> = drop.map { UnsafePointer($0.dropped) } ?? probs
    let (B, S, H, NH, D) = (a.B, a.S, a.H, a.NH, a.D)
    let ld = 3 * H
    for b in 0..<B {
        for h in 0..<NH {
            let pOff = (b * NH + h) * S * S
            let dc = dctx + b * S * H + h * D
            let v = qkv + b * S * ld + 2 * H + h * D
            sgemm(.no, .yes, m: S, n: S, k: D, dc, lda: H, v, ldb: ld, dprobs + pOff, ldc: S)
            sgemm(.yes, .no, m: S, n: D, k: S, used + pOff, lda: S, dc, ldb: H, beta: 1,
                  dqkv + b * S * ld + 2 * H + h * D, ldc: ld)
        }
    }
    if let drop { dropout(dprobs, count: B * NH * S * S, p: drop.p, key: drop.key) }
    softmaxBackwardRows(dprobs, probs: probs, rows: B * NH * S, S: S, scale: a.scale)
    for b in 0..<B {
        for h in 0..<NH {
            let pOff = (b * NH + h) * S * S
            let q = qkv + b * S * ld + h * D
            let dq = dqkv + b * S * ld + h * D
            sgemm(.no, .no, m: S, n: D, k: S, dprobs + pOff, lda: S, q + H, ldb: ld, beta: 1, dq, ldc: ld)
            sgemm(.yes, .no, m: S, n: D, k: S, dprobs + pOff, lda: S, q, ldb: ld, beta: 1, dq + H, ldc: ld)
        }
    }
}

/// dS = P ⊙ (dP − Σ_j dP ⊙ P) · scale, in place over dP [rows × S].
public func softmaxBackwardRows(_ dp: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>,
                                rows: Int, S: Int, scale: Float) {
    let dp = SendablePointer(dp)
    Parallel.forEachChunk(rows, minPerChunk: 64) { _, range in
        for row in range {
            let g = dp.p + row * S, p = probs + row * S
            var dot: Float = 0
            for j in 0..<S { dot += g[j] * p[j] }
            for j in 0..<S { g[j] = p[j] * (g[j] - dot) * scale }
        }
    }
}
