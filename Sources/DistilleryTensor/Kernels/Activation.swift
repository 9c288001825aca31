// Element-wise activations of the feed-forward block and the MLM head transform.
//
//   inp, out [count]
//   gelu (exact):  y = ½x(1 + erf(x/√2))
//   gelu_new:      y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))     (ALBERT, GPT-2)
//   relu:          y = max(x, 0)
// Backward adds dy · y'(x) into dinp.

public enum Activation: String, Codable, Sendable, CaseIterable {
    case gelu
    case geluTanh = "gelu_new"
    case relu

    /// Accepts the names Hugging Face configs use for each function.
    public init?(huggingFace name: String) {
        switch name {
        case "gelu", "gelu_python": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "relu": self = .relu
        default: return nil
        }
    }
}

@usableFromInline let sqrtHalf: Float = 0.70710678118654752
@usableFromInline let invSqrt2Pi: Float = 0.39894228040143268
@usableFromInline let sqrt2OverPi: Float = 0.79788456080286536
@usableFromInline let geluCubic: Float = 0.044715

@inlinable @inline(__always)
func activate8(_ x: F8, _ kind: Activation) -> F8 {
    let half = F8(repeating: 0.5), one = F8(repeating: 1)
    switch kind {
    case .gelu:
        let e: F8 = verf(x * sqrtHalf)
        return half * x * (one + e)
    case .geluTanh:
        let x3: F8 = x * x * x
        let u: F8 = (x + geluCubic * x3) * sqrt2OverPi
        let t: F8 = vtanh(u)
        return half * x * (one + t)
    case .relu:
        return x.replacing(with: 0, where: x .< 0)
    }
}

@inlinable @inline(__always)
func activationGrad8(_ x: F8, _ kind: Activation) -> F8 {
    let half = F8(repeating: 0.5), one = F8(repeating: 1)
    switch kind {
    case .gelu:
        let cdf: F8 = half * (one + verf(x * sqrtHalf))
        let g: F8 = vexp(-half * x * x)
        let pdf: F8 = g * invSqrt2Pi
        return cdf + x * pdf
    case .geluTanh:
        let x2: F8 = x * x
        let u: F8 = (x + geluCubic * x2 * x) * sqrt2OverPi
        let t: F8 = vtanh(u)
        let du: F8 = (one + (3 * geluCubic) * x2) * sqrt2OverPi
        let sech2: F8 = one - t * t
        return half * (one + t) + half * x * sech2 * du
    case .relu:
        return F8(repeating: 1).replacing(with: 0, where: x .<= 0)
    }
}

/// out = act(inp + bias), bias [C] broadcast over rows of [N×C] (nil: no bias). `pre`, when
/// given, keeps inp + bias for the backward pass. `out` may alias `inp`.
public func activationForward(_ out: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>?,
                              _ inp: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                              N: Int, C: Int, _ kind: Activation) {
    let out = SendablePointer(out), pre = pre.map { SendablePointer($0) }
    Parallel.forEachChunk(N, minPerChunk: 8) { _, rows in
        for n in rows {
            let x = inp + n * C, o = out.p + n * C, pr = pre.map { $0.p + n * C }
            var c = 0
            while c + 8 <= C {
                var v = x.load8(c)
                if let bias { v += bias.load8(c) }
                pr?.store8(v, c)
                o.store8(activate8(v, kind), c)
                c += 8
            }
            while c < C {
                var v = x[c]
                if let bias { v += bias[c] }
                pr?[c] = v
                o[c] = activate8(F8(repeating: v), kind)[0]
                c += 1
            }
        }
    }
}

/// dinp += dout · act'(pre)  over `count` elements; `dinp` may alias `dout` only if it was
/// zero beforehand (then this computes dinp = dout · act'(pre) in place).
public func activationBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                               pre: UnsafePointer<Float>, count: Int, _ kind: Activation,
                               overwrite: Bool = false) {
    let dinp = SendablePointer(dinp)
    Parallel.forEachChunk(count, minPerChunk: 4096) { _, range in
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            let g = dout.load8(i) * activationGrad8(pre.load8(i), kind)
            dinp.p.store8(overwrite ? g : dinp.p.load8(i) + g, i)
            i += 8
        }
        while i < range.upperBound {
            let g = dout[i] * activationGrad8(F8(repeating: pre[i]), kind)[0]
            dinp.p[i] = overwrite ? g : dinp.p[i] + g
            i += 1
        }
    }
}
