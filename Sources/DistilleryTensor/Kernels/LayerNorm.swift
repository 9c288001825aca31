// LayerNorm over the channels of each row.
//
//   inp, out [N×C];  mean, rstd [N];  w, b [C]
//   out[n,c] = (inp[n,c] − μ_n) · r_n · w[c] + b[c],   r_n = 1 / sqrt(var_n + eps)
//
// Forward is two-pass (mean, then variance of the centred values), which keeps the float sums
// accurate for rows whose mean is large. mean and rstd are kept for the backward pass.
// Sums run in eight float lanes (C is a multiple of 8 in every real model; a scalar tail
// handles the rest).

public func layerNormForward(_ out: UnsafeMutablePointer<Float>,
                             mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                             _ inp: UnsafePointer<Float>,
                             weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                             N: Int, C: Int, eps: Float) {
    let out = SendablePointer(out)
    let mean = mean.map { SendablePointer($0) }, rstd = rstd.map { SendablePointer($0) }
    Parallel.forEachChunk(N, minPerChunk: 32) { _, rows in
        let C8 = C & ~7
        for n in rows {
            let x = inp + n * C
            var acc = F8()
            var c = 0
            while c < C8 { acc += x.load8(c); c += 8 }
            var s = hsum(acc)
            while c < C { s += x[c]; c += 1 }
            let m = s / Float(C)
            let m8 = F8(repeating: m)
            acc = F8()
            c = 0
            while c < C8 { let d = x.load8(c) - m8; acc = acc.addingProduct(d, d); c += 8 }
            var v = hsum(acc)
            while c < C { let d = x[c] - m; v += d * d; c += 1 }
            let r = 1 / (v / Float(C) + eps).squareRoot()
            let r8 = F8(repeating: r)
            let o = out.p + n * C
            c = 0
            while c < C8 { o.store8(((x.load8(c) - m8) * r8) * weight.load8(c) + bias.load8(c), c); c += 8 }
            while c < C { o[c] = (x[c] - m) * r * weight[c] + bias[c]; c += 1 }
            mean?.p[n] = m
            rstd?.p[n] = r
        }
    }
}

/// out = (inp − μ) · r · w + b with μ and r given (the forward pass's statistics): recomputes a
/// LayerNorm output bit for bit as `layerNormForward` produced it.
public func layerNormApply(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                           mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                           weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, N: Int, C: Int) {
    let out = SendablePointer(out)
    Parallel.forEachChunk(N, minPerChunk: 32) { _, rows in
        let C8 = C & ~7
        for n in rows {
            let x = inp + n * C, o = out.p + n * C
            let m = mean[n], r = rstd[n]
            let m8 = F8(repeating: m), r8 = F8(repeating: r)
            var c = 0
            while c < C8 { o.store8(((x.load8(c) - m8) * r8) * weight.load8(c) + bias.load8(c), c); c += 8 }
            while c < C { o[c] = (x[c] - m) * r * weight[c] + bias[c]; c += 1 }
        }
    }
}

//   dinp += (ŷ' − mean(ŷ') − x̂ · mean(ŷ' ⊙ x̂)) · r,   ŷ' = dout ⊙ w,  x̂ = (inp − μ) · r
//   dw += Σ_n dout ⊙ x̂,   db += Σ_n dout
public func layerNormBackward(dinp: UnsafeMutablePointer<Float>,
                              dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>,
                              dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                              weight: UnsafePointer<Float>,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                              N: Int, C: Int) {
    let dinp = SendablePointer(dinp)
    Parallel.forEachChunk(N, minPerChunk: 32) { _, rows in
        for n in rows {
            let x = inp + n * C, d = dout + n * C
            let m = mean[n], r = rstd[n]
            var sumD: Float = 0, sumDX: Float = 0
            for c in 0..<C {
                let dn = d[c] * weight[c]
                sumD += dn
                sumDX += dn * (x[c] - m) * r
            }
            sumD /= Float(C); sumDX /= Float(C)
            let di = dinp.p + n * C
            for c in 0..<C {
                let xh = (x[c] - m) * r
                di[c] += (d[c] * weight[c] - sumD - xh * sumDX) * r
            }
        }
    }
    // Parameter gradients: each thread owns a band of channels, summing over every row.
    let dweight = SendablePointer(dweight), dbias = SendablePointer(dbias)
    Parallel.forEachChunk(C, minPerChunk: 16) { _, cols in
        for n in 0..<N {
            let x = inp + n * C, d = dout + n * C
            let m = mean[n], r = rstd[n]
            for c in cols {
                dweight.p[c] += d[c] * (x[c] - m) * r
                dbias.p[c] += d[c]
            }
        }
    }
}
