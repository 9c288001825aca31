import Foundation

// Layer-matching losses on attention maps and self-relations (TinyBERT, MiniLMv2), each a
// forward/backward pair in one call: the loss per sequence, and the gradient with respect to
// the student's packed projections added into dqkv.
//
//   qkv   [B·S × 3H]   packed projections (q | k | v), as attentionForward reads them; the
//                      student's has width Hs, the teacher's Ht
//   mask  [B × S]      1 real token, 0 padding: sums run over real query rows i and real keys j
//   dqkv  [B·S × 3Hs]  the student's gradient, added into
//   lossOut [B]        each sequence's share of the loss (normalised, before the weight)
//
// Maps are S×S per (sequence, head): z = scale · x yᵀ, P = softmax over the real keys.

/// Room for one worker's S×S maps: the student's log-probabilities and probabilities for
/// every head, the teacher's map (and its average over heads), and a gradient block.
public final class MatchScratch: @unchecked Sendable {
    public let buffer: FloatBuffer
    /// Per slot: row log-sum-exps [(heads + 2) × S] and the teacher's mean map [S×S], in double
    /// precision: the divergences are small differences of large sums.
    public let wide: AlignedBuffer<Double>
    public let slots: Int
    let perSlot: Int, widePerSlot: Int
    public init(maxS: Int, studentHeads: Int) {
        slots = max(1, Parallel.threads)
        perSlot = (2 * max(1, studentHeads) + 4) * maxS * maxS
        widePerSlot = (max(1, studentHeads) + 2) * maxS + maxS * maxS
        buffer = FloatBuffer(count: slots * perSlot)
        wide = AlignedBuffer(count: slots * widePerSlot)
    }
}

/// How two attention maps are compared.
public enum MapDivergence: Sendable {
    /// Σ P_t (log P_t − log P_s)
    case kl
    /// Σ (P_s − P_t)²
    case squaredError
}

/// Masked softmax over the real keys of each real row: z [S×S] scores stay as they are,
/// lse [S] = log Σ_j exp z_ij (double), p [S×S] = P (0 on padding keys and padding rows).
@inline(__always)
func maskedSoftmax(_ z: UnsafePointer<Float>, probs p: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Double>, S: Int,
                   mask: UnsafePointer<Float>) {
    for i in 0..<S {
        let zr = z + i * S, pr = p + i * S
        guard mask[i] != 0 else { pr.update(repeating: 0, count: S); lse[i] = 0; continue }
        var m = -Float.infinity
        for j in 0..<S where mask[j] != 0 { m = max(m, zr[j]) }
        var sum = 0.0
        for j in 0..<S where mask[j] != 0 { sum += exp(Double(zr[j] - m)) }
        let l = Double(m) + log(sum)
        lse[i] = l
        for j in 0..<S { pr[j] = mask[j] != 0 ? Float(exp(Double(zr[j]) - l)) : 0 }
    }
}

/// dz = P ⊙ (g − Σ_j g ⊙ P) per row, in place over g [S×S] (the softmax's backward).
@inline(__always)
func softmaxBackwardInPlace(_ g: UnsafeMutablePointer<Float>, probs p: UnsafePointer<Float>, S: Int) {
    for i in 0..<S {
        let gr = g + i * S, pr = p + i * S
        var dot: Float = 0
        for j in 0..<S { dot += gr[j] * pr[j] }
        for j in 0..<S { gr[j] = pr[j] * (gr[j] - dot) }
    }
}

/// Σ_{real i, j} P_t (log P_t − log P_s) from the two maps' scores and row log-sum-exps
/// (double precision), and g = w (P_s − P_t) written into `grad` (the gradient with respect
/// to the student's scores).
@inline(__always)
func klRows(zS: UnsafePointer<Float>, lseS: UnsafePointer<Double>, probsS: UnsafePointer<Float>,
            zT: UnsafePointer<Float>, lseT: UnsafePointer<Double>, probsT: UnsafePointer<Float>,
            grad: UnsafeMutablePointer<Float>, S: Int, mask: UnsafePointer<Float>, weight w: Float) -> Double {
    var loss = 0.0
    for i in 0..<S {
        let o = i * S
        guard mask[i] != 0 else { (grad + o).update(repeating: 0, count: S); continue }
        for j in 0..<S {
            if mask[j] != 0 {
                let lt = Double(zT[o + j]) - lseT[i], ls = Double(zS[o + j]) - lseS[i]
                loss += exp(lt) * (lt - ls)
                grad[o + j] = w * (probsS[o + j] - probsT[o + j])
            } else {
                grad[o + j] = 0
            }
        }
    }
    return loss
}

/// The denominators of the map losses over a whole batch (all data-parallel ranks' shares):
/// real tokens, and Σ over sequences of length².
public struct MatchTotals: Sendable, Equatable {
    public var tokens: Int
    public var squaredLengths: Int
    public init(tokens: Int, squaredLengths: Int) { self.tokens = tokens; self.squaredLengths = squaredLengths }
}

/// Attention-map matching (TinyBERT): the student's and the teacher's attention probabilities
/// of one layer each, compared by `divergence` with weight `weight`:
///   heads one to one when the counts agree (KL divided by NH · n_tok, squared error by
///   NH · Σ_b len_b²), otherwise both averaged over their heads (NH := 1; the student's
///   average taken in log space, log P̄ = logsumexp_h log P_h − log NH).
/// Adds the gradient into the student's q and k columns of dqkv. `totals` replaces the batch's
/// own n_tok and Σ_b len_b² when the batch is one rank's share of a larger one.
public func attentionMatch(_ divergence: MapDivergence, student qs: UnsafePointer<Float>, studentWidth Hs: Int, studentHeads NHs: Int,
                           teacher qt: UnsafePointer<Float>, teacherWidth Ht: Int, teacherHeads NHt: Int,
                           mask: UnsafePointer<Float>, B: Int, S: Int, weight: Float, dqkv: UnsafeMutablePointer<Float>,
                           scratch: MatchScratch, lossOut: UnsafeMutablePointer<Double>, totals: MatchTotals? = nil) {
    let Ds = Hs / NHs, Dt = Ht / NHt, lds = 3 * Hs, ldt = 3 * Ht
    let scaleS = 1 / Float(Ds).squareRoot(), scaleT = 1 / Float(Dt).squareRoot()
    var tokens = 0, squares = 0
    for b in 0..<B {
        var len = 0
        for s in 0..<S where mask[b * S + s] != 0 { len += 1 }
        tokens += len; squares += len * len
    }
    if let totals { tokens = totals.tokens; squares = totals.squaredLengths }
    let sameHeads = NHs == NHt
    let NH = sameHeads ? NHs : 1
    // The loss is normalised by `norm`; the gradient also carries the weight.
    let norm: Float
    switch divergence {
    case .kl: norm = 1 / Float(NH * max(1, tokens))
    case .squaredError: norm = 1 / Float(NH * max(1, squares))
    }
    let w = weight * norm
    let SS = S * S
    let dP = SendablePointer(dqkv), out = SendablePointer(lossOut), buf = SendablePointer(scratch.buffer.base)
    let wideP = SendablePointer(scratch.wide.base)
    Parallel.forEachChunk(B, maxChunks: scratch.slots) { chunk, range in
        let base = buf.p + chunk * scratch.perSlot
        let zS = base, probS = base + NHs * SS, zT = base + 2 * NHs * SS, pT = zT + SS, g = pT + 2 * SS
        let wide = wideP.p + chunk * scratch.widePerSlot
        let lseS = wide, lseT = wide + NHs * S, meanT = wide + (NHs + 2) * S
        for b in range {
            let m = mask + b * S
            let q = qs + b * S * lds, t = qt + b * S * ldt, dq = dP.p + b * S * lds
            var loss = 0.0
            // Student maps, all heads: scores, row log-sum-exps, probabilities.
            for h in 0..<NHs {
                sgemm(.no, .yes, m: S, n: S, k: Ds, alpha: scaleS, q + h * Ds, lda: lds, q + Hs + h * Ds, ldb: lds, zS + h * SS, ldc: S)
                maskedSoftmax(zS + h * SS, probs: probS + h * SS, lse: lseS + h * S, S: S, mask: m)
            }
            if sameHeads {
                for h in 0..<NHs {
                    sgemm(.no, .yes, m: S, n: S, k: Dt, alpha: scaleT, t + h * Dt, lda: ldt, t + Ht + h * Dt, ldb: ldt, zT, ldc: S)
                    maskedSoftmax(zT, probs: pT, lse: lseT, S: S, mask: m)
                    let ps = probS + h * SS
                    switch divergence {
                    case .kl:
                        loss += Double(norm) * klRows(zS: zS + h * SS, lseS: lseS + h * S, probsS: ps, zT: zT, lseT: lseT, probsT: pT,
                                                   grad: g, S: S, mask: m, weight: w)
                    case .squaredError:
                        var sum = 0.0
                        for i in 0..<SS {
                            let d = ps[i] - pT[i]
                            sum += Double(d * d)
                            g[i] = 2 * w * d
                        }
                        loss += Double(norm) * sum
                        softmaxBackwardInPlace(g, probs: ps, S: S)
                    }
                    sgemm(.no, .no, m: S, n: Ds, k: S, alpha: scaleS, g, lda: S, q + Hs + h * Ds, ldb: lds, beta: 1, dq + h * Ds, ldc: lds)
                    sgemm(.yes, .no, m: S, n: Ds, k: S, alpha: scaleS, g, lda: S, q + h * Ds, ldb: lds, beta: 1, dq + Hs + h * Ds, ldc: lds)
                }
            } else {
                // The teacher's heads averaged (double precision).
                meanT.update(repeating: 0, count: SS)
                for h in 0..<NHt {
                    sgemm(.no, .yes, m: S, n: S, k: Dt, alpha: scaleT, t + h * Dt, lda: ldt, t + Ht + h * Dt, ldb: ldt, zT, ldc: S)
                    maskedSoftmax(zT, probs: pT, lse: lseT, S: S, mask: m)
                    for i in 0..<S where m[i] != 0 {
                        for j in 0..<S where m[j] != 0 { meanT[i * S + j] += exp(Double(zT[i * S + j]) - lseT[i]) / Double(NHt) }
                    }
                }
                // Each head's ∂/∂ log P_h, written over its probabilities once they are read.
                for i in 0..<S where m[i] != 0 {
                    for j in 0..<S where m[j] != 0 {
                        let o = i * S + j
                        // log P̄_s = logsumexp_h log P_h − log NH, and each head's share r_h of it.
                        var mx = -Double.infinity
                        for h in 0..<NHs { mx = max(mx, Double(zS[h * SS + o]) - lseS[h * S + i]) }
                        var sum = 0.0
                        for h in 0..<NHs { sum += exp(Double(zS[h * SS + o]) - lseS[h * S + i] - mx) }
                        let lse = mx + log(sum)
                        let logMean = lse - log(Double(NHs))
                        let at = meanT[o]
                        switch divergence {
                        case .kl:
                            if at > 0 { loss += Double(norm) * at * (log(at) - logMean) }
                            // ∂/∂ log P_h = −w · P̄_t · P_h / (NH · P̄_s)
                            for h in 0..<NHs { probS[h * SS + o] = Float(-Double(w) * at * exp(Double(zS[h * SS + o]) - lseS[h * S + i] - lse)) }
                        case .squaredError:
                            let d = exp(logMean) - at
                            loss += Double(norm) * d * d
                            // ∂/∂ P_h = 2 w (P̄_s − P̄_t) / NH, times P_h: ∂/∂ log P_h
                            for h in 0..<NHs { probS[h * SS + o] = Float(2 * Double(w) * d / Double(NHs)) * probS[h * SS + o] }
                        }
                    }
                }
                // Through each head's log-softmax: dz = dlogP − P Σ_j dlogP.
                for h in 0..<NHs {
                    let dl = probS + h * SS, z = zS + h * SS
                    for i in 0..<S {
                        let o = i * S
                        guard m[i] != 0 else { (g + o).update(repeating: 0, count: S); continue }
                        var sum: Float = 0
                        for j in 0..<S where m[j] != 0 { sum += dl[o + j] }
                        for j in 0..<S { g[o + j] = m[j] != 0 ? dl[o + j] - Float(exp(Double(z[o + j]) - lseS[h * S + i])) * sum : 0 }
                    }
                    sgemm(.no, .no, m: S, n: Ds, k: S, alpha: scaleS, g, lda: S, q + Hs + h * Ds, ldb: lds, beta: 1, dq + h * Ds, ldc: lds)
                    sgemm(.yes, .no, m: S, n: Ds, k: S, alpha: scaleS, g, lda: S, q + h * Ds, ldb: lds, beta: 1, dq + Hs + h * Ds, ldc: lds)
                }
            }
            out.p[b] = loss
        }
    }
}

/// Self-relation matching (MiniLMv2): for X in q, k, v, the channels split into R groups
/// (d = H/R each side; the widths may differ), rel = softmax(X_r X_rᵀ / √d) over the real keys,
/// KL(teacher ‖ student) summed over real rows and keys, divided by R · n_tok, times `weight`.
/// Adds the gradient into all three parts of dqkv: dX_r += (dz + dzᵀ) X_r / √d. `totals`
/// replaces the batch's own n_tok when the batch is one rank's share of a larger one.
public func relationMatch(student qs: UnsafePointer<Float>, studentWidth Hs: Int, teacher qt: UnsafePointer<Float>, teacherWidth Ht: Int,
                          relationHeads R: Int, mask: UnsafePointer<Float>, B: Int, S: Int, weight: Float,
                          dqkv: UnsafeMutablePointer<Float>, scratch: MatchScratch, lossOut: UnsafeMutablePointer<Double>,
                          totals: MatchTotals? = nil) {
    let ds = Hs / R, dt = Ht / R, lds = 3 * Hs, ldt = 3 * Ht
    let scaleS = 1 / Float(ds).squareRoot(), scaleT = 1 / Float(dt).squareRoot()
    var tokens = 0
    for n in 0..<(B * S) where mask[n] != 0 { tokens += 1 }
    if let totals { tokens = totals.tokens }
    let norm = 1 / Float(R * max(1, tokens)), w = weight * norm
    let SS = S * S
    let dP = SendablePointer(dqkv), out = SendablePointer(lossOut), buf = SendablePointer(scratch.buffer.base)
    let wideP = SendablePointer(scratch.wide.base)
    Parallel.forEachChunk(B, maxChunks: scratch.slots) { chunk, range in
        let base = buf.p + chunk * scratch.perSlot
        let zS = base, probS = base + SS, zT = base + 2 * SS, probT = base + 3 * SS, g = base + 4 * SS
        let lseS = wideP.p + chunk * scratch.widePerSlot, lseT = lseS + S
        for b in range {
            let m = mask + b * S
            var loss = 0.0
            for part in 0..<3 {
                for r in 0..<R {
                    let x = qs + b * S * lds + part * Hs + r * ds, y = qt + b * S * ldt + part * Ht + r * dt
                    let dx = dP.p + b * S * lds + part * Hs + r * ds
                    sgemm(.no, .yes, m: S, n: S, k: ds, alpha: scaleS, x, lda: lds, x, ldb: lds, zS, ldc: S)
                    maskedSoftmax(zS, probs: probS, lse: lseS, S: S, mask: m)
                    sgemm(.no, .yes, m: S, n: S, k: dt, alpha: scaleT, y, lda: ldt, y, ldb: ldt, zT, ldc: S)
                    maskedSoftmax(zT, probs: probT, lse: lseT, S: S, mask: m)
                    loss += Double(norm) * klRows(zS: zS, lseS: lseS, probsS: probS, zT: zT, lseT: lseT, probsT: probT, grad: g, S: S,
                                               mask: m, weight: w)
                    sgemm(.no, .no, m: S, n: ds, k: S, alpha: scaleS, g, lda: S, x, ldb: lds, beta: 1, dx, ldc: lds)
                    sgemm(.yes, .no, m: S, n: ds, k: S, alpha: scaleS, g, lda: S, x, ldb: lds, beta: 1, dx, ldc: lds)
                }
            }
            out.p[b] = loss
        }
    }
}
