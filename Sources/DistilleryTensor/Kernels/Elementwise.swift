import Foundation
// Small element-wise kernels: broadcast bias, column sums, scaling (residual sums are fused into
// LayerNorm: residualLayerNormForward).

/// x[n, c] += bias[c]   over x [N×C] (leading dimension ld, default C).
public func addBiasRows(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, N: Int, C: Int, ld: Int? = nil) {
    let x = SendablePointer(x), ld = ld ?? C
    Parallel.forEachChunk(N, minPerChunk: 64) { _, rows in
        for n in rows {
            let r = x.p + n * ld
            var c = 0
            while c + 8 <= C { r.store8(r.load8(c) + bias.load8(c), c); c += 8 }
            while c < C { r[c] += bias[c]; c += 1 }
        }
    }
}

/// y += alpha · x  over `count` elements.
public func accumulate(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                       alpha: Float = 1) {
    let y = SendablePointer(y)
    Parallel.forEachChunk(count, minPerChunk: 16384) { _, r in
        var i = r.lowerBound
        while i + 8 <= r.upperBound { y.p.store8(y.p.load8(i) + alpha * x.load8(i), i); i += 8 }
        while i < r.upperBound { y.p[i] += alpha * x[i]; i += 1 }
    }
}

/// x *= alpha over `count` elements.
public func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by alpha: Float) {
    let x = SendablePointer(x)
    Parallel.forEachChunk(count, minPerChunk: 16384) { _, r in
        for i in r { x.p[i] *= alpha }
    }
}

/// sums[c] += Σ_n x[n, c]  over x [N×C]. Threads own bands of columns (fixed order).
public func addColumnSums(_ sums: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, N: Int, C: Int) {
    let sums = SendablePointer(sums)
    Parallel.forEachChunk(C, minPerChunk: 64) { _, cols in
        for n in 0..<N {
            let r = x + n * C
            for c in cols { sums.p[c] += r[c] }
        }
    }
}

/// Σ x² in double precision (for gradient norms): blocks of 4,096 summed in float lanes, the
/// block sums added in double in order, so the result does not depend on the thread count.
public func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
    let block = 4096
    let blocks = (count + block - 1) / block
    guard blocks > 0 else { return 0 }
    let partial = UnsafeMutablePointer<Double>.allocate(capacity: blocks)
    defer { partial.deallocate() }
    let out = SendablePointer(partial)
    Parallel.forEachChunk(blocks, minPerChunk: 16) { _, range in
        for b in range {
            var i = b * block
            let end = min(count, i + block)
            var acc = F8()
            while i + 8 <= end { let v = x.load8(i); acc += v * v; i += 8 }
            var s = Double(hsum(acc))
            while i < end { s += Double(x[i] * x[i]); i += 1 }
            out.p[b] = s
        }
    }
    var total = 0.0
    for b in 0..<blocks { total += partial[b] }
    return total
}

