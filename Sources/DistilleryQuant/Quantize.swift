import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels

/// How a checkpoint is quantized, recorded in its metadata ("distillery.quantization").
/// Version 2 adds outlier channels; version 1 files (none) still load.
public struct QuantizationScheme: Codable, Sendable, Equatable {
    public var version = 2
    public var weights = "int8, symmetric, one scale per output channel (F32 tensor NAME.scale)"
    public var embeddings = "int8, symmetric, one scale per row (F32 tensor NAME.scale); the token-type table F32"
    public var activations = "uint8, asymmetric, one scale and zero point per token over [min(x, 0), max(x, 0)], computed at run time"
    /// Smoothed matrices carry F32 NAME.smooth [in]: the stored weights are W·diag(smooth); the
    /// activations are divided by smooth before quantization.
    public var smoothing = "SmoothQuant (alpha 0.5) from activation ranges the model shows on random tokens (F32 tensor NAME.smooth)"
    /// Which layer inputs are smoothed.
    public var smoothedInputs: [Input] = [.qkv, .attentionOutput, .ffnInput, .headTransform]
    /// Which layer inputs are quantized in two int8 passes (the second over what the first
    /// left), about 15-bit activations at twice the int8 work. Outlier channels do better for
    /// less (all-MiniLM-L6-v2, 7-bit codes: two QKV passes 0.99922 mean sentence cosine, two
    /// outlier channels on every input in one pass 0.99950, four 0.99952;
    /// Tests/Benchmarks/int8_scheme_sim.py).
    public var twoPassInputs: [Input] = []
    /// Inputs whose `outlierChannels` widest channels (by the calibration range, after
    /// smoothing) bypass int8 (LLM.int8()'s decomposition): the activations are quantized
    /// without them, so one token's few huge channels no longer set the step for all the
    /// others, and those channels are multiplied in fp32 with the matching weight columns
    /// (I32 NAME.outlier_channels [k], F32 NAME.outliers [out × k]; NAME's int8 columns there are 0).
    public var outlierInputs: [Input] = [.qkv, .attentionOutput, .ffnInput, .ffnOutput]
    public var outlierChannels = 2
    /// Hugging Face names (or parts of names) kept in fp32.
    public var keptFP32: [String] = []
    public init(keptFP32: [String] = []) { self.keptFP32 = keptFP32 }

    /// The most outlier channels a file may ask for (each costs fp32 work per token).
    public static let maxOutlierChannels = 64

    /// Whether matrices reading `input` carry outlier channels.
    public func hasOutliers(_ input: Input?) -> Bool {
        guard let input else { return false }
        return outlierChannels > 0 && outlierInputs.contains(input)
    }

    enum CodingKeys: String, CodingKey {
        case version, weights, embeddings, activations, smoothing, smoothedInputs, twoPassInputs, outlierInputs, outlierChannels, keptFP32
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        weights = try c.decode(String.self, forKey: .weights)
        embeddings = try c.decode(String.self, forKey: .embeddings)
        activations = try c.decode(String.self, forKey: .activations)
        smoothing = try c.decode(String.self, forKey: .smoothing)
        smoothedInputs = try c.decode([Input].self, forKey: .smoothedInputs)
        twoPassInputs = try c.decode([Input].self, forKey: .twoPassInputs)
        // Version 1 had no outlier channels.
        outlierInputs = try c.decodeIfPresent([Input].self, forKey: .outlierInputs) ?? []
        outlierChannels = try c.decodeIfPresent(Int.self, forKey: .outlierChannels) ?? 0
        keptFP32 = try c.decode([String].self, forKey: .keptFP32)
    }

    /// The inputs of the linear layers of a transformer block (and the head).
    public enum Input: String, Codable, Sendable, Hashable, CaseIterable {
        case qkv, attentionOutput = "attention_output", ffnInput = "ffn_input", ffnOutput = "ffn_output"
        case headTransform = "head_transform"
    }

    public static let metadataKey = "distillery.quantization"

    /// What a file without a recorded scheme is read as: version 1's defaults.
    public static let version1: QuantizationScheme = {
        var s = QuantizationScheme()
        s.version = 1
        s.twoPassInputs = [.qkv]
        s.outlierInputs = []
        s.outlierChannels = 0
        return s
    }()

    /// The scheme as JSON, as the metadata records it.
    public func json() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try enc.encode(self), as: UTF8.self)
    }

    /// The scheme a checkpoint records; nil for an fp32 checkpoint.
    public static func read(_ metadata: [String: String], path: String) throws -> QuantizationScheme? {
        guard let text = metadata[metadataKey] else { return nil }
        let scheme: QuantizationScheme
        do { scheme = try JSONDecoder().decode(QuantizationScheme.self, from: Data(text.utf8)) } catch {
            throw ModelCheckpointError.badMetadata(path: path, key: metadataKey, reason: "not a quantization scheme: \(describe(error))")
        }
        guard (1...2).contains(scheme.version) else {
            throw ModelCheckpointError.badMetadata(path: path, key: metadataKey, reason: "scheme version \(scheme.version); this build reads versions 1 and 2")
        }
        guard (0...maxOutlierChannels).contains(scheme.outlierChannels), scheme.version == 2 || scheme.outlierChannels == 0 else {
            throw ModelCheckpointError.badMetadata(path: path, key: metadataKey,
                reason: "outlierChannels \(scheme.outlierChannels); version 2 allows 0…\(maxOutlierChannels), version 1 none")
        }
        return scheme
    }
}

public enum Quantizer {
    /// 4-byte values an int8 checkpoint of `layout` stores besides one scale per matrix row:
    /// the smoothing factors of the inputs `scheme` smooths, one per input column of each matrix
    /// reading them (query, key and value each carry theirs), and for inputs with outlier
    /// channels, each matrix's k channel numbers (I32) and its k fp32 weights per row.
    public static func extraValues(_ layout: ParameterLayout, scheme: QuantizationScheme = QuantizationScheme()) -> Int {
        layout.slots.reduce(0) { n, slot in
            guard slot.shape.count == 2, let input = QuantizationScheme.Input(slot: slot.name) else { return n }
            let k = scheme.hasOutliers(input) ? min(scheme.outlierChannels, slot.shape[1]) : 0
            return n + (scheme.smoothedInputs.contains(input) ? slot.shape[1] : 0) + k * (1 + slot.shape[0])
        }
    }

    /// Which of a model's slots are quantized: every matrix (linear weights and embedding
    /// tables) whose Hugging Face name does not contain one of `keep`, except the token-type
    /// table. Query, key and value run as one matrix, so keeping one of them keeps all three.
    ///
    /// The token-type table stays fp32: its row 0 is added to every token of a single-segment
    /// input, so its rounding error is a bias every token shares rather than noise that varies
    /// token to token. On a fine-tuned sentiment student, quantizing it cost 0.57 points of dev
    /// accuracy (agreement with fp32 98.58% → 99.57% when kept), for 2 × H floats.
    static func quantizedSlots(_ model: EncoderModel, keep: [String]) -> Set<String> {
        let hf = HuggingFaceNames(layout: model.layout).fileNames()
        var set = Set(model.layout.slots.filter { slot in
            slot.shape.count == 2 && !ParameterGroup.keptFP32InInt8.contains(slot.group)
                && !keep.contains { (hf[slot.name] ?? slot.name).contains($0) }
        }.map(\.name))
        for i in model.layout.attention.indices {
            let trio = ["query", "key", "value"].map { "attention.\(i).\($0).weight" }
            if !trio.allSatisfy(set.contains) { set.subtract(trio) }
        }
        return set
    }

    /// The quantized form of one slot: int8 rows, their scales, and the smoothing factors the
    /// weights were multiplied by (nil: none); with outlier channels, their fp32 weight columns
    /// [rows × k] (unsmoothed), the int8 columns there 0 and the row scales set without them.
    static func quantize(_ model: EncoderModel, _ slot: ParameterSlot, smoothing: [Float]?, outliers: [Int32] = []) -> QuantizedSlot {
        let rows = slot.shape[0], cols = slot.shape[1], p = model.p(slot.offset)
        var w = [Float](UnsafeBufferPointer(start: p, count: slot.count))
        if let s = smoothing { for r in 0..<rows { for j in 0..<cols { w[r * cols + j] *= s[j] } } }
        var columns = [Float](repeating: 0, count: rows * outliers.count)
        for r in 0..<rows {
            for (i, j) in outliers.enumerated() {
                columns[r * outliers.count + i] = p[r * cols + Int(j)]
                w[r * cols + Int(j)] = 0
            }
        }
        let (q, sc) = w.withUnsafeBufferPointer { quantizeRowsSymmetric($0.baseAddress!, rows: rows, cols: cols) }
        return QuantizedSlot(q: q, scales: sc, smoothing: smoothing, outlierChannels: outliers, outlierColumns: columns)
    }

    /// The quantized form of every slot `scheme` quantizes, by slot name.
    static func quantizeSlots(_ model: EncoderModel, scheme: QuantizationScheme) throws -> [String: QuantizedSlot] {
        let quantized = quantizedSlots(model, keep: scheme.keptFP32)
        let ranges = try Smoothing.selfCalibratedRanges(model)
        let smoothing = Smoothing.factors(model, ranges: ranges.filter { scheme.smoothedInputs.contains(QuantizationScheme.Input($0.key)) },
                                          alpha: Smoothing.alpha)
        var outliers: [String: [Int32]] = [:]
        for (input, a) in ranges where scheme.hasOutliers(QuantizationScheme.Input(input)) {
            let names = Smoothing.slotNames(input)
            let channels = Smoothing.outlierChannels(ranges: a, smoothing: names.first.flatMap { smoothing[$0] }, k: scheme.outlierChannels)
            for n in names { outliers[n] = channels }
        }
        var out: [String: QuantizedSlot] = [:]
        for slot in model.layout.slots where quantized.contains(slot.name) {
            out[slot.name] = quantize(model, slot, smoothing: smoothing[slot.name], outliers: outliers[slot.name] ?? [])
        }
        return out
    }

    /// Runs `model`'s matrices in int8 from now on, exactly as a checkpoint written by `save`
    /// would load (its fp32 weights stay in the buffer, so it can still be saved as fp32).
    public static func quantizeInPlace(_ model: EncoderModel, scheme: QuantizationScheme = QuantizationScheme(),
                                       kernel: Int8Kernel = .best) throws {
        let parts = try quantizeSlots(model, scheme: scheme)
        for site in model.layout.matrixSites {
            let p = site.slots.compactMap { parts[$0] }
            guard p.count == site.slots.count else { continue }
            let packed = PackedInt8Weights(p, N: site.rows, K: site.cols)
            let twoPass = QuantizationScheme.Input(site: site).map { scheme.twoPassInputs.contains($0) } ?? false
            model.setMatrix(Int8Matrix(packed, twoPass: twoPass, kernel: kernel), at: site.offset, keepsFP32: true)
        }
    }

    /// Writes `model` as an int8 checkpoint: quantized matrices in the int8 encoding
    /// (`Int8Codec`), everything else F32, the scheme in the metadata.
    @discardableResult
    public static func save(_ model: EncoderModel, tokenizer: TokenizerFiles, to path: String,
                            scheme: QuantizationScheme = QuantizationScheme(), provenance: Provenance, recipe: String? = nil,
                            level: Int = CheckpointFormat.defaultLevel) throws -> CheckpointWriteStats {
        precondition(model.hasFP32Weights, "quantize from the fp32 weights")
        let parts = try quantizeSlots(model, scheme: scheme)
        let table = HuggingFaceNames(layout: model.layout)
        var owned: [OwnedTensor] = []
        for (ours, hf) in table.pairs {
            let slot = model.layout.slot(ours)!
            let name = table.fileName(hf)
            if let part = parts[ours] {
                owned += Int8Codec.tensors(name: name, part, rows: slot.shape[0], cols: slot.shape[1])
            } else {
                owned.append(OwnedTensor(name: name, shape: slot.shape,
                                         floats: Array(UnsafeBufferPointer(start: model.p(slot.offset), count: slot.count))))
            }
        }
        var meta = try model.checkpointMetadata(tokenizer: tokenizer, provenance: provenance, recipe: recipe)
        // Without outlier channels the file is what version 1 readers understand.
        var recorded = scheme
        if !scheme.outlierInputs.contains(where: scheme.hasOutliers) {
            recorded.version = 1
            recorded.outlierInputs = []
            recorded.outlierChannels = 0
        }
        meta[QuantizationScheme.metadataKey] = try recorded.json()
        return try Safetensors.withPayloads(owned) { try CheckpointWriter.write($0, metadata: meta, to: path, level: level) }
    }

    /// `distill quantize`: reads a model (folder, safetensors or fp32 checkpoint) and writes it
    /// as an int8 checkpoint. Each `keptFP32` pattern must match some quantizable tensor.
    public static func quantize(input: String, output: String, scheme: QuantizationScheme = QuantizationScheme(),
                                level: Int = CheckpointFormat.defaultLevel) throws -> QuantizeSummary {
        guard output.hasSuffix(".safetensors.zst") else { throw QuantizeError.outputName(path: output) }
        if input.hasSuffix(".zst"), try QuantizationScheme.read(try Checkpoint(path: input).metadata, path: input) != nil {
            throw QuantizeError.alreadyQuantized(path: input)
        }
        let loaded = try ModelStore.load(input, options: LoadOptions(dropPretrainingHeads: true))
        let model = loaded.model
        try ModelStore.checkFinite(model, path: input)
        let table = HuggingFaceNames(layout: model.layout)
        let matrices = table.pairs.filter { model.layout.slot($0.ours)!.shape.count == 2 }
            .map { table.fileName($0.hf) }
        for pattern in scheme.keptFP32 where !matrices.contains(where: { $0.contains(pattern) }) {
            throw QuantizeError.keepMatchesNothing(pattern: pattern, examples: Array(matrices.prefix(4)))
        }
        let quantized = quantizedSlots(model, keep: scheme.keptFP32)
        let stats = try save(model, tokenizer: loaded.tokenizer, to: output, scheme: scheme, provenance: .derived(from: loaded),
                             recipe: loaded.metadata[CheckpointKey.recipe], level: level)
        return QuantizeSummary(input: input, output: output, quantizedMatrices: quantized.count,
                               fp32Matrices: matrices.count - quantized.count,
                               fp32Bytes: model.layout.slots.reduce(0) { $0 + $1.count * 4 },
                               rawBytes: stats.rawBytes, compressedBytes: stats.compressedBytes)
    }
}

public struct QuantizeSummary: Codable, Sendable, Equatable {
    public let input: String
    public let output: String
    public let quantizedMatrices: Int
    public let fp32Matrices: Int
    /// Bytes of the model's tensors in fp32.
    public let fp32Bytes: Int
    /// The int8 checkpoint's safetensors bytes before zstd, and its file size.
    public let rawBytes: Int
    public let compressedBytes: Int
}

public enum QuantizeError: Error, CustomStringConvertible, Equatable {
    case outputName(path: String)
    case alreadyQuantized(path: String)
    case keepMatchesNothing(pattern: String, examples: [String])

    public var description: String {
        switch self {
        case let .outputName(p): return "\(p): the output of quantize is a checkpoint; name it NAME.safetensors.zst"
        case let .alreadyQuantized(p): return "\(p) is already int8; quantize the fp32 model it came from"
        case let .keepMatchesNothing(p, e):
            return "--keep-fp32 '\(p)' matches no matrix of the model; patterns are parts of Hugging Face names such as \(e.map { "'\($0)'" }.joined(separator: ", "))"
        }
    }
}
