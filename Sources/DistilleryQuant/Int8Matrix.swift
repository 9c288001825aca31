import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels

// The int8 weight format, in one place: how it multiplies (`Int8Matrix`) and how it is stored
// in a file (`Int8Codec`: an I8 tensor NAME with F32 NAME.scale, one per row, and, where the
// layer's input is smoothed, F32 NAME.smooth, one per column).

/// A matrix W [rows × cols] as int8 rows with one scale each (W ≈ diag(scale) · q), packed for
/// the kernels, multiplied on activations quantized per row at run time:
///
///   out = dequantize(quantize(x ⊙ 1/smooth) · qᵀ) + bias      (one pass)
///   out += dequantize(quantize(residual) · qᵀ)                 (two passes: ~15-bit inputs, ~13 from 7-bit codes)
///
/// Smoothed matrices were stored as W·diag(smooth), so their inputs are divided by smooth.
/// Embedding tables are int8 rows too: a lookup dequantizes one row.
public final class Int8Matrix: WeightMatrix {
    public let weights: PackedInt8Weights
    public let twoPass: Bool
    public let kernel: Int8Kernel
    public var rows: Int { weights.N }
    public var cols: Int { weights.K }
    public var format: WeightFormat { .int8 }
    public var bytes: Int { weights.bytes }
    public var implementation: String { kernel.description }

    public init(_ weights: PackedInt8Weights, twoPass: Bool, kernel: Int8Kernel = .best) {
        self.weights = weights; self.twoPass = twoPass; self.kernel = kernel
    }

    /// Scratch: quantized rows, and for two passes the residual and its quantized rows.
    public func scratchFloats(maxRows: Int) -> Int {
        let one = QuantizedActivations.scratchFloats(maxRows: maxRows, K: cols)
        return twoPass ? 2 * one + ((maxRows * cols + 15) & ~15) : one
    }

    public func forward(_ out: UnsafeMutablePointer<Float>, ldOut: Int, _ inp: UnsafePointer<Float>, ldInp: Int, N: Int,
                        bias: UnsafePointer<Float>?, scratch: UnsafeMutablePointer<Float>) {
        if N == 0 { return }
        let K = cols, one = QuantizedActivations.scratchFloats(maxRows: N, K: K)
        let levels = kernel.activationLevels
        let first = QuantizedActivations(scratch: scratch, maxRows: N, K: K, levels: levels)
        let c = weights.inverseSmoothing.map { UnsafePointer($0.base) }
        first.quantize(inp, M: N, K: K, ldx: ldInp, columnScale: c)
        int8Linear(out, ldy: ldOut, first, M: N, weights, bias: bias, kernel: kernel)
        if twoPass {
            let second = QuantizedActivations(scratch: scratch + one, maxRows: N, K: K, levels: levels)
            second.quantizeResidual(of: inp, M: N, K: K, ldx: ldInp, columnScale: c, source: first, scratch: scratch + 2 * one)
            int8Linear(out, ldy: ldOut, second, M: N, weights, bias: nil, kernel: kernel, accumulate: true)
        }
    }

    public func gatherRows(_ ids: UnsafePointer<Int32>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let o = SendablePointer(out), w = weights, C = cols
        Parallel.forEachChunk(count, minPerChunk: 64, maxChunks: 1) { _, range in
            // Rows are dequantized one at a time into the end of the output row when adding.
            let row = UnsafeMutablePointer<Float>.allocate(capacity: C)
            defer { row.deallocate() }
            for i in range {
                let dst = o.p + i * C
                if accumulate {
                    w.row(Int(ids[i]), into: row)
                    for k in 0..<C { dst[k] += row[k] }
                } else {
                    w.row(Int(ids[i]), into: dst)
                }
            }
        }
    }
}

/// The int8 file encoding: I8 matrices with F32 NAME.scale [rows] and optional F32 NAME.smooth
/// [cols]; W = diag(scale) · q · diag(1 / smooth). The scheme (which inputs run in two passes)
/// is in the metadata under `QuantizationScheme.metadataKey`.
public struct Int8Codec: WeightCodec {
    public static let scaleSuffix = ".scale"
    public static let smoothSuffix = ".smooth"
    public var dtype: DType { .I8 }
    public let kernel: Int8Kernel
    public init(kernel: Int8Kernel = .best) { self.kernel = kernel }

    public func isCompanion(_ name: String) -> Bool { name.hasSuffix(Self.scaleSuffix) || name.hasSuffix(Self.smoothSuffix) }

    public func companions(of name: String, slot: String, rows: Int, cols: Int, isEmbedding: Bool, in source: TensorSource) throws -> [TensorInfo] {
        let scale = try source.require(name + Self.scaleSuffix, shape: [rows], dtype: .F32)
        // Scales are finite and ≥ 0; smoothing factors (linear layers only: embedding rows are
        // gathered, not multiplied) finite and normal, since they divide.
        if try !source.floats(scale.name).allSatisfy({ $0.isFinite && $0 >= 0 }) {
            throw ModelLoadError.badValues(file: source.path, tensor: scale.name, expected: "finite scales ≥ 0")
        }
        guard source.info(name + Self.smoothSuffix) != nil else {
            // A matrix whose input the scheme smooths was stored as W·diag(smooth): without the
            // factors its weights cannot be recovered.
            let scheme = try QuantizationScheme.read(source.metadata, path: source.path) ?? QuantizationScheme()
            if let input = QuantizationScheme.Input(slot: slot), scheme.smoothedInputs.contains(input) {
                throw ModelLoadError.missingTensor(file: source.path, tensor: name + Self.smoothSuffix, expectedShape: [cols])
            }
            return [scale]
        }
        if isEmbedding {
            throw ModelLoadError.unexpectedTensor(file: source.path, tensor: name + Self.smoothSuffix, hint: "embedding tables are not smoothed")
        }
        let smooth = try source.require(name + Self.smoothSuffix, shape: [cols], dtype: .F32)
        if try !source.floats(smooth.name).allSatisfy({ $0.isNormal && $0 > 0 }) {
            throw ModelLoadError.badValues(file: source.path, tensor: smooth.name, expected: "finite smoothing factors > 0")
        }
        return [scale, smooth]
    }

    struct Parts { let q: [Int8]; let scales: [Float]; let smoothing: [Float]? }

    func read(_ t: EncodedTensor, from source: TensorSource) throws -> Parts {
        let q = try source.withBytes(t.tensor) { Array($0.bindMemory(to: Int8.self)) }
        let scales = try source.floats(t.companions[0].name)
        let smoothing = try t.companions.count > 1 ? source.floats(t.companions[1].name) : nil
        return Parts(q: q, scales: scales, smoothing: smoothing)
    }

    public func decode(_ t: EncodedTensor, from source: TensorSource, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) throws {
        let p = try read(t, from: source)
        for r in 0..<rows {
            for c in 0..<cols { out[r * cols + c] = Float(p.q[r * cols + c]) * p.scales[r] / (p.smoothing?[c] ?? 1) }
        }
    }

    public func matrix(_ parts: [EncodedTensor], from source: TensorSource, site: MatrixSite) throws -> WeightMatrix? {
        let read = try parts.map { try self.read($0, from: source) }
        // Query, key and value read the same input: one matrix needs one smoothing.
        guard read.allSatisfy({ $0.smoothing == read[0].smoothing }) else { return nil }
        let scheme = try QuantizationScheme.read(source.metadata, path: source.path) ?? QuantizationScheme()
        let q = read.flatMap(\.q), s = read.flatMap(\.scales)
        let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
            PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: site.rows, K: site.cols, smoothing: read[0].smoothing)
        } }
        let twoPass = QuantizationScheme.Input(site: site).map { scheme.twoPassInputs.contains($0) } ?? false
        return Int8Matrix(packed, twoPass: twoPass, kernel: kernel)
    }

    /// The tensors of one quantized matrix as written: NAME (I8), NAME.scale and NAME.smooth.
    static func tensors(name: String, q: [Int8], scales: [Float], smoothing: [Float]?, rows: Int, cols: Int) -> [OwnedTensor] {
        var out = [OwnedTensor(name: name, dtype: .I8, shape: [rows, cols], data: q.withUnsafeBytes { Array($0) }),
                   OwnedTensor(name: name + scaleSuffix, shape: [rows], floats: scales)]
        if let smoothing { out.append(OwnedTensor(name: name + smoothSuffix, shape: [cols], floats: smoothing)) }
        return out
    }
}

extension QuantizationScheme.Input {
    /// The layer input a matrix of the schedule reads (nil for embedding tables and the pooler).
    public init?(site: MatrixSite) {
        guard let first = site.slots.first else { return nil }
        self.init(slot: first)
    }

    /// The layer input the matrix slot `slot` (our name) reads.
    public init?(slot: String) {
        let parts = slot.split(separator: ".")
        switch (parts.first, parts.count > 2 ? parts[2] : "") {
        case ("attention", "query"), ("attention", "key"), ("attention", "value"): self = .qkv
        case ("attention", "output"): self = .attentionOutput
        case ("ffn", "intermediate"): self = .ffnInput
        case ("ffn", "output"): self = .ffnOutput
        default:
            guard slot == "head.transform.weight" else { return nil }
            self = .headTransform
        }
    }
}
