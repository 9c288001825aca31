import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels

// The int8 weight format, in one place: how it multiplies (`Int8Matrix`) and how it is stored
// in a file (`Int8Codec`: an I8 tensor NAME with F32 NAME.scale, one per row; where the
// layer's input is smoothed, F32 NAME.smooth, one per column; where it has outlier channels,
// I32 NAME.outlier_channels [k] and their fp32 weight columns F32 NAME.outliers [rows × k]).

/// One matrix's int8 form, as the quantizer makes it and a file stores it.
public struct QuantizedSlot: Sendable {
    public var q: [Int8]                  // [rows × cols], 0 at the outlier channels
    public var scales: [Float]            // [rows]
    public var smoothing: [Float]?        // [cols]
    public var outlierChannels: [Int32]   // [k], ascending
    public var outlierColumns: [Float]    // [rows × k], fp32, unsmoothed
    public init(q: [Int8], scales: [Float], smoothing: [Float]?, outlierChannels: [Int32] = [], outlierColumns: [Float] = []) {
        self.q = q; self.scales = scales; self.smoothing = smoothing
        self.outlierChannels = outlierChannels; self.outlierColumns = outlierColumns
    }
}

/// A matrix W [rows × cols] as int8 rows with one scale each (W ≈ diag(scale) · q), packed for
/// the kernels, multiplied on activations quantized per row at run time:
///
///   out = dequantize(quantize(x ⊙ c) · qᵀ) + (bias + x[:, O] · W[:, O]ᵀ)    (one pass; O: outlier channels, fp32)
///   out += dequantize(quantize(residual) · qᵀ)                 (two passes: ~15-bit inputs, ~13 from 7-bit codes)
///
/// c is 1/smooth (smoothed matrices were stored as W·diag(smooth)) and 0 at the outlier
/// channels, which the int8 product then skips. Embedding tables are int8 rows too: a lookup
/// dequantizes one row.
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

    /// Scratch: the outlier channels' values, quantized rows, and for two passes the residual
    /// and its quantized rows.
    public func scratchFloats(maxRows: Int) -> Int {
        let one = QuantizedActivations.scratchFloats(maxRows: maxRows, K: cols)
        return outlierFloats(maxRows) + (twoPass ? 2 * one + ((maxRows * cols + 15) & ~15) : one)
    }

    func outlierFloats(_ rows: Int) -> Int { (rows * weights.outlierChannels.count + 15) & ~15 }

    public func forward(_ out: UnsafeMutablePointer<Float>, ldOut: Int, _ inp: UnsafePointer<Float>, ldInp: Int, N: Int,
                        bias: UnsafePointer<Float>?, scratch: UnsafeMutablePointer<Float>) {
        if N == 0 { return }
        let K = cols, one = QuantizedActivations.scratchFloats(maxRows: N, K: K)
        let levels = kernel.activationLevels
        let outliers = scratch, scratch = scratch + outlierFloats(N)
        weights.gatherOutliers(inp, ldx: ldInp, M: N, into: outliers)
        let first = QuantizedActivations(scratch: scratch, maxRows: N, K: K, levels: levels)
        let c = weights.quantizationScale.map { UnsafePointer($0.base) }
        first.quantize(inp, M: N, K: K, ldx: ldInp, columnScale: c)
        int8Linear(out, ldy: ldOut, first, M: N, weights, bias: bias, kernel: kernel, outliers: outliers)
        if twoPass {
            let second = QuantizedActivations(scratch: scratch + one, maxRows: N, K: K, levels: levels)
            second.quantizeResidual(of: inp, M: N, K: K, ldx: ldInp, columnScale: c, source: first, scratch: scratch + 2 * one)
            int8Linear(out, ldy: ldOut, second, M: N, weights, bias: nil, kernel: kernel, accumulate: true)
        }
    }

    public func gatherRows(_ ids: UnsafePointer<Int32>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let o = SendablePointer(out), w = weights, C = cols
        Parallel.forEachChunk(count, minPerChunk: 64) { _, range in
            for i in range { w.row(Int(ids[i]), into: o.p + i * C, accumulate: accumulate) }
        }
    }
}

/// The int8 file encoding: I8 matrices with F32 NAME.scale [rows], optional F32 NAME.smooth
/// [cols], and where the scheme gives the input outlier channels, I32 NAME.outlier_channels [k]
/// with F32 NAME.outliers [rows × k]:
///   W[:, j] = diag(scale) · q[:, j] / smooth[j]   (j not an outlier channel)
///   W[:, O_i] = outliers[:, i]
/// The scheme (which inputs run in two passes, which have outlier channels) is in the metadata
/// under `QuantizationScheme.metadataKey`; a file without one reads as `QuantizationScheme.version1`.
public struct Int8Codec: WeightCodec {
    public static let scaleSuffix = ".scale"
    public static let smoothSuffix = ".smooth"
    public static let outlierChannelsSuffix = ".outlier_channels"
    public static let outliersSuffix = ".outliers"
    public var dtype: DType { .I8 }
    public let kernel: Int8Kernel
    public init(kernel: Int8Kernel = .best) { self.kernel = kernel }

    public func isCompanion(_ name: String) -> Bool {
        [Self.scaleSuffix, Self.smoothSuffix, Self.outlierChannelsSuffix, Self.outliersSuffix].contains { name.hasSuffix($0) }
    }

    static func scheme(_ source: TensorSource) throws -> QuantizationScheme {
        try QuantizationScheme.read(source.metadata, path: source.path) ?? .version1
    }

    public func companions(of name: String, slot: String, rows: Int, cols: Int, isEmbedding: Bool, in source: TensorSource) throws -> [TensorInfo] {
        let scale = try source.require(name + Self.scaleSuffix, shape: [rows], dtype: .F32)
        // Scales are finite and ≥ 0; smoothing factors (linear layers only: embedding rows are
        // gathered, not multiplied) finite and normal, since they divide.
        if try !source.floats(scale.name).allSatisfy({ $0.isFinite && $0 >= 0 }) {
            throw ModelLoadError.badValues(file: source.path, tensor: scale.name, expected: "finite scales ≥ 0")
        }
        let scheme = try Self.scheme(source)
        let input = QuantizationScheme.Input(slot: slot)
        var out = [scale]
        if source.info(name + Self.smoothSuffix) != nil {
            if isEmbedding {
                throw ModelLoadError.unexpectedTensor(file: source.path, tensor: name + Self.smoothSuffix, hint: "embedding tables are not smoothed")
            }
            let smooth = try source.require(name + Self.smoothSuffix, shape: [cols], dtype: .F32)
            if try !source.floats(smooth.name).allSatisfy({ $0.isNormal && $0 > 0 }) {
                throw ModelLoadError.badValues(file: source.path, tensor: smooth.name, expected: "finite smoothing factors > 0")
            }
            out.append(smooth)
        } else if let input, scheme.smoothedInputs.contains(input) {
            // A matrix whose input the scheme smooths was stored as W·diag(smooth): without the
            // factors its weights cannot be recovered.
            throw ModelLoadError.missingTensor(file: source.path, tensor: name + Self.smoothSuffix, expectedShape: [cols])
        }
        // Outlier channels where the scheme has them (elsewhere the loader reports the tensors
        // as unexpected): k ascending channels inside the input, and finite fp32 columns.
        if !isEmbedding, scheme.hasOutliers(input) {
            let k = min(scheme.outlierChannels, cols)
            let channels = try source.require(name + Self.outlierChannelsSuffix, shape: [k], dtype: .I32)
            let values = try Self.int32s(channels, from: source)
            for (i, c) in values.enumerated() where c < 0 || Int(c) >= cols || (i > 0 && c <= values[i - 1]) {
                throw ModelLoadError.badValues(file: source.path, tensor: channels.name,
                                               expected: "\(k) distinct input channels in 0..<\(cols), ascending (entry \(i) is \(c))")
            }
            let columns = try source.require(name + Self.outliersSuffix, shape: [rows, k], dtype: .F32)
            if try !source.floats(columns.name).allSatisfy(\.isFinite) {
                throw ModelLoadError.badValues(file: source.path, tensor: columns.name, expected: "finite weights")
            }
            out += [channels, columns]
        }
        return out
    }

    static func int32s(_ t: TensorInfo, from source: TensorSource) throws -> [Int32] {
        try source.withBytes(t) { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) } }
    }

    func read(_ t: EncodedTensor, from source: TensorSource) throws -> QuantizedSlot {
        func companion(_ suffix: String) -> TensorInfo? { t.companions.first { $0.name == t.tensor.name + suffix } }
        let q = try source.withBytes(t.tensor) { Array($0.bindMemory(to: Int8.self)) }
        let scales = try source.floats(companion(Self.scaleSuffix)!.name)
        let smoothing = try companion(Self.smoothSuffix).map { try source.floats($0.name) }
        let channels = try companion(Self.outlierChannelsSuffix).map { try Self.int32s($0, from: source) } ?? []
        let columns = try companion(Self.outliersSuffix).map { try source.floats($0.name) } ?? []
        return QuantizedSlot(q: q, scales: scales, smoothing: smoothing, outlierChannels: channels, outlierColumns: columns)
    }

    public func decode(_ t: EncodedTensor, from source: TensorSource, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) throws {
        let p = try read(t, from: source)
        for r in 0..<rows {
            for c in 0..<cols { out[r * cols + c] = Float(p.q[r * cols + c]) * p.scales[r] / (p.smoothing?[c] ?? 1) }
        }
        let k = p.outlierChannels.count
        for r in 0..<rows { for (i, c) in p.outlierChannels.enumerated() { out[r * cols + Int(c)] = p.outlierColumns[r * k + i] } }
    }

    public func matrix(_ parts: [EncodedTensor], from source: TensorSource, site: MatrixSite) throws -> WeightMatrix? {
        let read = try parts.map { try self.read($0, from: source) }
        // Query, key and value read the same input: one matrix needs one smoothing and one set
        // of outlier channels.
        guard read.allSatisfy({ $0.smoothing == read[0].smoothing && $0.outlierChannels == read[0].outlierChannels }) else { return nil }
        let scheme = try Self.scheme(source)
        let packed = PackedInt8Weights(read, N: site.rows, K: site.cols)
        let twoPass = QuantizationScheme.Input(site: site).map { scheme.twoPassInputs.contains($0) } ?? false
        return Int8Matrix(packed, twoPass: twoPass, kernel: kernel)
    }

    /// The tensors of one quantized matrix as written: NAME (I8), NAME.scale, NAME.smooth and
    /// the outlier channels with their columns.
    static func tensors(name: String, _ p: QuantizedSlot, rows: Int, cols: Int) -> [OwnedTensor] {
        var out = [OwnedTensor(name: name, dtype: .I8, shape: [rows, cols], data: p.q.withUnsafeBytes { Array($0) }),
                   OwnedTensor(name: name + scaleSuffix, shape: [rows], floats: p.scales)]
        if let smoothing = p.smoothing { out.append(OwnedTensor(name: name + smoothSuffix, shape: [cols], floats: smoothing)) }
        if !p.outlierChannels.isEmpty {
            let k = p.outlierChannels.count
            out.append(OwnedTensor(name: name + outlierChannelsSuffix, dtype: .I32, shape: [k], data: p.outlierChannels.withUnsafeBytes { Array($0) }))
            out.append(OwnedTensor(name: name + outliersSuffix, shape: [rows, k], floats: p.outlierColumns))
        }
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
