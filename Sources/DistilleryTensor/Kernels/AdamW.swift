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
        for i in range {
            let gi = g[i]
            if decay { p.p[i] *= shrink }
            m.p[i] = m.p[i] + w1 * (gi - m.p[i])
            v.p[i] = v.p[i] * b2 + w2 * gi * gi
            let denom = v.p[i].squareRoot() / bc2Sqrt + eps
            p.p[i] = p.p[i] - stepSize * (m.p[i] / denom)
        }
    }
}

import Foundation
