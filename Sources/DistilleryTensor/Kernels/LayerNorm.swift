import CKernels

// LayerNorm over the channels of each row.
//
//   inp, out [N×C];  mean, rstd [N];  w, b [C]
//   out[n,c] = (inp[n,c] − μ_n) · r_n · w[c] + b[c],   r_n = 1 / sqrt(var_n + eps)
//
// Forward is two-pass (mean, then variance of the centred values), which keeps the float sums
// accurate for rows whose mean is large. mean and rstd are kept for the backward pass.
// Forward and apply run in CKernels (eight float lanes, a scalar tail).

public func layerNormForward(_ out: UnsafeMutablePointer<Float>,
                             mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                             _ inp: UnsafePointer<Float>,
                             weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                             N: Int, C: Int, eps: Float) {
    let out = SendablePointer(out)
    let mean = mean.map { SendablePointer($0) }, rstd = rstd.map { SendablePointer($0) }
    Parallel.forEachChunk(N, minPerChunk: 32) { _, rows in
        let r0 = rows.lowerBound
        distill_layernorm_rows(out.p + r0 * C, mean.map { $0.p + r0 }, rstd.map { $0.p + r0 }, inp + r0 * C, weight, bias,
                               rows.count, C, eps)
    }
}

/// sum [N×C] = a + b (a residual connection), then out = LayerNorm(sum) with its statistics, in
/// one pass over the rows: bit for bit the sum, then `layerNormForward` of it.
public func residualLayerNormForward(_ out: UnsafeMutablePointer<Float>,
                                     mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                                     sum: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                     N: Int, C: Int, eps: Float) {
    let out = SendablePointer(out), sum = SendablePointer(sum)
    let mean = mean.map { SendablePointer($0) }, rstd = rstd.map { SendablePointer($0) }
    Parallel.forEachChunk(N, minPerChunk: 32) { _, rows in
        let r0 = rows.lowerBound
        distill_residual_layernorm_rows(out.p + r0 * C, mean.map { $0.p + r0 }, rstd.map { $0.p + r0 }, sum.p + r0 * C,
                                        a + r0 * C, b + r0 * C, weight, bias, rows.count, C, eps)
    }
}

/// out = (inp − μ) · r · w + b with μ and r given (the forward pass's statistics): recomputes a
/// LayerNorm output bit for bit as `layerNormForward` produced it.
public func layerNormApply(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                           mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                           weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, N: Int, C: Int) {
    let out = SendablePointer(out)
    Parallel.forEachChunk(N, minPerChunk: 32) { _, rows in
        let r0 = rows.lowerBound
        distill_layernorm_apply_rows(out.p + r0 * C, inp + r0 * C, mean + r0, rstd + r0, weight, bias, rows.count, C)
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
