import Foundation

// Losses over rows of logits and hidden states. Each kernel returns one loss value per row
// (summed by the caller in a fixed order, so results do not depend on threading) and writes
// the row's gradient.

/// log Σ_j exp(z_j / T) of one row, in double precision: the KL divergence between close
/// distributions is a small difference of two such values, and float exponentials alone
/// (0.5 ulp each) would leave about 1e-9 of error in each, three digits of a small loss.
@inline(__always)
func logSumExp(_ z: UnsafePointer<Float>, _ V: Int, invT: Float) -> Double {
    let V8 = V & ~7
    var m8 = F8(repeating: -.infinity)
    var j = 0
    while j < V8 { let v = z.load8(j); m8 = m8.replacing(with: v, where: v .> m8); j += 8 }
    var mx = hmax(m8)
    while j < V { mx = max(mx, z[j]); j += 1 }
    let mT = Double(mx) * Double(invT)
    let t = Double(invT)
    var s4 = D4()
    j = 0
    while j + 4 <= V {
        let x = D4(Double(z[j]), Double(z[j + 1]), Double(z[j + 2]), Double(z[j + 3]))
        s4 += vexp(x * t - mT)
        j += 4
    }
    var total = s4.sum()
    while j < V { total += exp(Double(z[j]) * t - mT); j += 1 }
    return mT + log(total)
}

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
        let invT = 1 / T
        let V8 = V & ~7
        for r in range {
            let s = zsP.p + r * V
            let doCE = ce[r] && zt != nil
            let label = Int(labels[r])
            kl.p[r] = 0; mlm.p[r] = 0; mse.p[r] = 0
            // Student statistics at T and at 1; teacher at T.
            let lseSTd = logSumExp(s, V, invT: invT)
            let lseS1d = label >= 0 ? logSumExp(s, V, invT: 1) : 0
            var lseTTd = 0.0
            if doCE, let t = zt?.p { lseTTd = logSumExp(t + r * V, V, invT: invT) }
            if label >= 0 { mlm.p[r] = lseS1d - Double(s[label]) }
            let lseST = Float(lseSTd), lseTT = Float(lseTTd), lseS1 = Float(lseS1d)
            // log pt − log ps = (zt − zs)/T − c, with c taken in double precision.
            let c = Float(lseTTd - lseSTd)
            // One pass: accumulate the KL and MSE sums and write the gradient.
            var klSum = 0.0, mseSum = 0.0
            let gCE = ceScale * invT, gMLM = mlmScale, gMSE = 2 * mseScale
            let t = zt.map { $0.p + r * V }
            var j = 0
            // Compensated lanes for the KL sum (a small total of terms of both signs).
            var kl8 = F8(), klc8 = F8(), mse8 = F8()
            while j < V8 {
                let zsv = s.load8(j)
                var g = F8()
                if doCE, let t {
                    let ztv = t.load8(j)
                    let pt = vexp(ztv * invT - lseTT)
                    let ps = vexp(zsv * invT - lseST)
                    // pt·(log pt − log ps) with log p = z/T − lse
                    let y = pt * ((ztv - zsv) * invT - c) - klc8
                    let sum = kl8 + y
                    klc8 = (sum - kl8) - y
                    kl8 = sum
                    g += gCE * (ps - pt)
                    if mseScale != 0 { let d = zsv - ztv; mse8 += d * d; g += gMSE * d }
                }
                if label >= 0 { g += gMLM * vexp(zsv - lseS1) }
                s.store8(g, j)
                j += 8
            }
            for l in 0..<8 { klSum += Double(kl8[l]) - Double(klc8[l]); mseSum += Double(mse8[l]) }
            while j < V {
                let zsv = s[j]
                var g: Float = 0
                if doCE, let t {
                    let ztv = t[j]
                    let pt = vexp(ztv * invT - lseTT), ps = vexp(zsv * invT - lseST)
                    klSum += Double(pt * ((ztv - zsv) * invT - c))
                    g += gCE * (ps - pt)
                    if mseScale != 0 { let d = zsv - ztv; mseSum += Double(d * d); g += gMSE * d }
                }
                if label >= 0 { g += gMLM * vexp(zsv - lseS1) }
                s[j] = g
                j += 1
            }
            if label >= 0 { s[label] -= gMLM }
            if doCE { kl.p[r] = klSum; mse.p[r] = mseSum }
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
