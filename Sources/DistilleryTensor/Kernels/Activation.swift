import CKernels

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

extension Activation {
    /// The kind number CKernels takes.
    var kernelKind: Int32 {
        switch self {
        case .gelu: return 0
        case .geluTanh: return 1
        case .relu: return 2
        }
    }
}

/// out = act(inp + bias), bias [C] broadcast over rows of [N×C] (nil: no bias). `pre`, when
/// given, keeps inp + bias for the backward pass. `out` may alias `inp`.
public func activationForward(_ out: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>?,
                              _ inp: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                              N: Int, C: Int, _ kind: Activation) {
    let out = SendablePointer(out), pre = pre.map { SendablePointer($0) }, k = kind.kernelKind
    Parallel.forEachChunk(N, minPerChunk: 8) { _, rows in
        let r0 = rows.lowerBound
        distill_activation_rows(out.p + r0 * C, pre.map { $0.p + r0 * C }, inp + r0 * C, bias, rows.count, C, k)
    }
}

/// dinp += dout · act'(pre)  over `count` elements; `dinp` may alias `dout` only if it was
/// zero beforehand (then this computes dinp = dout · act'(pre) in place).
public func activationBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                               pre: UnsafePointer<Float>, count: Int, _ kind: Activation,
                               overwrite: Bool = false) {
    let dinp = SendablePointer(dinp), k = kind.kernelKind
    Parallel.forEachChunk(count, minPerChunk: 4096) { _, range in
        let i = range.lowerBound
        distill_activation_backward(dinp.p + i, dout + i, pre + i, range.count, k, overwrite ? 1 : 0)
    }
}
