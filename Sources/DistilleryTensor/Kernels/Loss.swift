import Foundation
import CKernels

// Losses over rows of logits and hidden states. Each kernel returns one loss value per row
// (summed by the caller in a fixed order, so results do not depend on threading) and writes
// the row's gradient.

/// log Σ_j exp(z_j / T) of one row, in double precision (CKernels).
@inline(__always)
public func logSumExp(_ z: UnsafePointer<Float>, _ V: Int, invT: Float) -> Double { distill_logsumexp(z, V, invT) }

/// The soft-target and masked-LM losses of DistilBERT's distiller, one row of logits at a time.
///
///   zs, zt [rows × V]   student and teacher logits of the selected rows
///   labels [rows]       MLM target id, or −1 when the row is not a target
///   ce [rows]           whether the row is in the soft-target set
///
///   KL row  = Σ_j pt_j (log pt_j − log ps_j),  p = softmax(z / T)
///   CE row  = −log softmax(zs)[label]
///   MSE row = Σ_j (zs_j − zt_j)²
///
/// zs is overwritten with dL/dzs for
///   L = ceScale · Σ KL + mlmScale · Σ CE + mseScale · Σ MSE
/// (ceScale = α_ce·T²/n_ce etc., chosen by the caller):
///   dL/dzs = ceScale · (ps − pt) / T + mlmScale · (softmax(zs) − onehot) + mseScale · 2 (zs − zt)
public func distillationRows(zs: UnsafeMutablePointer<Float>, zt: UnsafePointer<Float>?, rows: Int, V: Int,
                             labels: UnsafePointer<Int32>, ce: UnsafePointer<Bool>,
                             temperature T: Float, ceScale: Float, mlmScale: Float, mseScale: Float,
                             klOut: UnsafeMutablePointer<Double>, mlmOut: UnsafeMutablePointer<Double>,
                             mseOut: UnsafeMutablePointer<Double>) {
    let zsP = SendablePointer(zs)
    let kl = SendablePointer(klOut), mlm = SendablePointer(mlmOut), mse = SendablePointer(mseOut)
    let zt = zt.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
    Parallel.forEachChunk(rows) { _, range in
        for r in range {
            let doCE = ce[r] && zt != nil
            distill_loss_row(zsP.p + r * V, zt.map { UnsafePointer($0.p + r * V) }, V, labels[r], doCE ? 1 : 0, T,
                             ceScale, mlmScale, mseScale, kl.p + r, mlm.p + r, mse.p + r)
        }
    }
}

/// `distillationRows` for a teacher given, per soft-target row, by its k largest logits and a
/// tail logit (a teacher cache): row r's teacher is `topIds`/`topValues` row `teacherRow[r]`
/// [·×k] with `tailLogits[teacherRow[r]]` for each of the other V − k tokens, i.e. the dense
/// kernel on that row. Without tail logits the other tokens are at −∞ (the top k renormalised).
/// With `tailSamples` [·×m] and `tailPlogp` [·] (m > 0), the tail's mass (from the tail logit)
/// sits on the row's m draws from the teacher's tail instead, and the tail's Σ p log p is
/// exact: an unbiased estimate of the dense row's loss and gradient (see kernels_impl.h).
/// Rows outside the soft-target set (ce false or no teacher row) get the MLM loss alone. No
/// logit MSE (it needs every teacher logit).
public func distillationRowsTopK(zs: UnsafeMutablePointer<Float>, rows: Int, V: Int, labels: UnsafePointer<Int32>, ce: UnsafePointer<Bool>,
                                 teacherRow: UnsafePointer<Int32>, topIds: UnsafePointer<Int32>, topValues: UnsafePointer<Float>,
                                 tailLogits: UnsafePointer<Float>?, k: Int,
                                 tailSamples: UnsafePointer<Int32>? = nil, m: Int = 0, tailPlogp: UnsafePointer<Float>? = nil,
                                 temperature T: Float, ceScale: Float, mlmScale: Float,
                                 klOut: UnsafeMutablePointer<Double>, mlmOut: UnsafeMutablePointer<Double>, mseOut: UnsafeMutablePointer<Double>) {
    precondition(m == 0 || (tailSamples != nil && tailPlogp != nil && tailLogits != nil), "tail draws need their Σ p log p and tail logits")
    let zsP = SendablePointer(zs)
    let kl = SendablePointer(klOut), mlm = SendablePointer(mlmOut), mse = SendablePointer(mseOut)
    let tails = tailLogits.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
    let draws = tailSamples.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
    let plogp = tailPlogp.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
    Parallel.forEachChunk(rows) { _, range in
        for r in range {
            let t = Int(teacherRow[r])
            mse.p[r] = 0
            if ce[r] && t >= 0 && k > 0 {
                let tail = tails.map { $0.p[t] } ?? -.infinity
                let d = draws.map { UnsafePointer($0.p + t * m) }, h = plogp.map { $0.p[t] } ?? 0
                distill_loss_row_topk(zsP.p + r * V, topIds + t * k, topValues + t * k, k, V, tail, d, m, h, labels[r], T, ceScale, mlmScale,
                                      kl.p + r, mlm.p + r)
            } else {
                distill_loss_row(zsP.p + r * V, nil, V, labels[r], 0, T, 0, mlmScale, 0, kl.p + r, mlm.p + r, mse.p + r)
            }
        }
    }
}

/// Cosine loss per row: 1 − cos(s, t), cos = s·t / sqrt((|s|² + ε)(|t|² + ε)) with PyTorch's
/// ε = 1e-12, over rows whose weight w[n] ≠ 0. Adds scale · w[n] · d(1 − cos)/ds into ds.
///   s, t, ds [N×H];  lossOut [N]
public func cosineLossRows(s: UnsafePointer<Float>, t: UnsafePointer<Float>, ds: UnsafeMutablePointer<Float>,
                           weight w: UnsafePointer<Float>, N: Int, H: Int, scale: Float,
                           lossOut: UnsafeMutablePointer<Double>) {
    let ds = SendablePointer(ds), out = SendablePointer(lossOut)
    Parallel.forEachChunk(N, minPerChunk: 16) { _, rows in
        for n in rows {
            out.p[n] = 0
            if w[n] == 0 { continue }
            let a = s + n * H, b = t + n * H
            var dot = 0.0, aa = 0.0, bb = 0.0
            for c in 0..<H { dot += Double(a[c] * b[c]); aa += Double(a[c] * a[c]); bb += Double(b[c] * b[c]) }
            let na2 = aa + 1e-12, nb2 = bb + 1e-12
            let denom = (na2 * nb2).squareRoot()
            let cos = dot / denom
            out.p[n] = 1 - cos
            // d(1 − cos)/da = −(b / denom − cos · a / |a|²)
            let g = ds.p + n * H
            let k1 = Float(Double(scale * w[n]) / denom), k2 = Float(Double(scale * w[n]) * cos / na2)
            for c in 0..<H { g[c] += -k1 * b[c] + k2 * a[c] }
        }
    }
}

/// Mean-squared error per row: Σ_c (s − t)², over rows with weight ≠ 0; adds
/// scale · 2 (s − t) into ds.   s, t, ds [N×H];  lossOut [N]
public func squaredErrorRows(s: UnsafePointer<Float>, t: UnsafePointer<Float>, ds: UnsafeMutablePointer<Float>,
                             weight w: UnsafePointer<Float>, N: Int, H: Int, scale: Float,
                             lossOut: UnsafeMutablePointer<Double>) {
    let ds = SendablePointer(ds), out = SendablePointer(lossOut)
    Parallel.forEachChunk(N, minPerChunk: 16) { _, rows in
        for n in rows {
            out.p[n] = 0
            if w[n] == 0 { continue }
            let a = s + n * H, b = t + n * H, g = ds.p + n * H
            var sum = 0.0
            for c in 0..<H { let d = a[c] - b[c]; sum += Double(d * d); g[c] += 2 * scale * d }
            out.p[n] = sum
        }
    }
}

/// Per row of logits [rows × V]: the arg max and log Σ exp (double precision).
public func rowArgmaxAndLogSumExp(_ z: UnsafePointer<Float>, rows: Int, V: Int,
                                  argmax: UnsafeMutablePointer<Int32>, lse: UnsafeMutablePointer<Double>) {
    let am = SendablePointer(argmax), ls = SendablePointer(lse)
    Parallel.forEachChunk(rows) { _, range in
        for r in range {
            let x = z + r * V
            var best = 0
            for j in 1..<max(1, V) where x[j] > x[best] { best = j }
            am.p[r] = Int32(best)
            ls.p[r] = logSumExp(x, V, invT: 1)
        }
    }
}

/// Mean pooling over real tokens, as sentence-transformers builds a sentence embedding:
///   out[b] = Σ_i m[b,i] h[b,i] / n_b,  n_b = Σ_i m[b,i]  (a sequence with no real token: 0)
///   h [B·S × H];  mask [B·S] (1 real, 0 padding);  out [B×H]
public func meanPoolForward(_ out: UnsafeMutablePointer<Float>, _ h: UnsafePointer<Float>, mask: UnsafePointer<Float>,
                            B: Int, S: Int, H: Int) {
    let o = SendablePointer(out)
    Parallel.forEachChunk(B) { _, range in
        for b in range {
            let row = o.p + b * H
            row.update(repeating: 0, count: H)
            var n: Float = 0
            for i in 0..<S where mask[b * S + i] != 0 {
                let x = h + (b * S + i) * H
                for c in 0..<H { row[c] += x[c] }
                n += 1
            }
            if n > 0 { let r = 1 / n; for c in 0..<H { row[c] *= r } }
        }
    }
}

/// The backward of meanPoolForward: dh[b,i] += m[b,i] / n_b · dout[b].
///   dout [B×H];  mask [B·S];  dh [B·S × H], added into
public func meanPoolBackward(_ dh: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, mask: UnsafePointer<Float>,
                             B: Int, S: Int, H: Int) {
    let d = SendablePointer(dh)
    Parallel.forEachChunk(B) { _, range in
        for b in range {
            var n: Float = 0
            for i in 0..<S where mask[b * S + i] != 0 { n += 1 }
            guard n > 0 else { continue }
            let r = 1 / n, g = dout + b * H
            for i in 0..<S where mask[b * S + i] != 0 {
                let x = d.p + (b * S + i) * H
                for c in 0..<H { x[c] += r * g[c] }
            }
        }
    }
}
