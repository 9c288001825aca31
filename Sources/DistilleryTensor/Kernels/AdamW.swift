// AdamW, exactly as PyTorch's torch.optim.AdamW computes it (decoupled weight decay):
//
//   p ← p · (1 − lr·wd)                     (only where decay applies)
//   m ← m + (1 − β1)(g − m)                 (torch's lerp)
//   v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
//
//   p, g, m, v [count]

public struct AdamWSettings: Sendable, Equatable, Codable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.01
    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// One update of `count` parameters; `step` counts from 1.
public func adamWUpdate(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                        v: UnsafeMutablePointer<Float>, count: Int, lr: Float, step: Int, decay: Bool,
                        _ s: AdamWSettings) {
    let bc1 = 1 - pow(Double(s.beta1), Double(step))
    let bc2 = 1 - pow(Double(s.beta2), Double(step))
    let stepSize = Float(Double(lr) / bc1)
    let bc2Sqrt = Float(bc2.squareRoot())
    let shrink: Float = decay ? 1 - lr * s.weightDecay : 1
    let w1 = 1 - s.beta1, b2 = s.beta2, w2 = 1 - s.beta2, eps = s.eps
    let p = SendablePointer(p), m = SendablePointer(m), v = SendablePointer(v)
    Parallel.forEachChunk(count, minPerChunk: 16384) { _, range in
        // Eight lanes at a time with the scalar formula's operations in the same order
        // (IEEE sqrt and division are exact in both), so results are bit-identical.
        var i = range.lowerBound
        let end8 = range.lowerBound + (range.count & ~7)
        let shrink8 = F8(repeating: shrink), w18 = F8(repeating: w1), b28 = F8(repeating: b2), w28 = F8(repeating: w2)
        let eps8 = F8(repeating: eps), bc8 = F8(repeating: bc2Sqrt), step8 = F8(repeating: stepSize)
        while i < end8 {
            let gi = g.load8(i)
            var pi = p.p.load8(i), mi = m.p.load8(i), vi = v.p.load8(i)
            if decay { pi = pi * shrink8 }
            mi = mi + w18 * (gi - mi)
            vi = vi * b28 + w28 * gi * gi
            let denom = vi.squareRoot() / bc8 + eps8
            pi = pi - step8 * (mi / denom)
            p.p.store8(pi, i); m.p.store8(mi, i); v.p.store8(vi, i)
            i += 8
        }
        while i < range.upperBound {
            let gi = g[i]
            if decay { p.p[i] *= shrink }
            m.p[i] = m.p[i] + w1 * (gi - m.p[i])
            v.p[i] = v.p[i] * b2 + w2 * gi * gi
            let denom = v.p[i].squareRoot() / bc2Sqrt + eps
            p.p[i] = p.p[i] - stepSize * (m.p[i] / denom)
            i += 1
        }
    }
}

import Foundation
