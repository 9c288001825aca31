import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels

/// How a checkpoint is quantized, recorded in its metadata ("distillery.quantization").
public struct QuantizationScheme: Codable, Sendable, Equatable {
    public var version = 1
    public var weights = "int8, symmetric, one scale per output channel (F32 tensor NAME.scale)"
    public var embeddings = "int8, symmetric, one scale per row (F32 tensor NAME.scale); the token-type table F32"
    public var activations = "uint8, asymmetric, one scale and zero point per token over [min(x, 0), max(x, 0)], computed at run time"
    /// Smoothed matrices carry F32 NAME.smooth [in]: the stored weights are W·diag(smooth); the
    /// activations are divided by smooth before quantization.
    public var smoothing = "SmoothQuant (alpha 0.5) from activation ranges the model shows on random tokens (F32 tensor NAME.smooth)"
    /// Which layer inputs are smoothed.
    public var smoothedInputs: [Input] = [.qkv, .attentionOutput, .ffnInput, .headTransform]
    /// Which layer inputs are quantized in two int8 passes (the second over what the first
    /// left), about 15-bit activations at twice the int8 work. On all-MiniLM-L6-v2 the query/
    /// key/value input is the one where this pays (mean sentence cosine 0.99927 → 0.99934 for
    /// ~10% more time; adding the FFN output gives 0.99941 for another ~12%).
    public var twoPassInputs: [Input] = [.qkv]
    /// Hugging Face names (or parts of names) kept in fp32.
    public var keptFP32: [String] = []
    public init(keptFP32: [String] = []) { self.keptFP32 = keptFP32 }

    /// The inputs of the linear layers of a transformer block (and the head).
    public enum Input: String, Codable, Sendable, Hashable, CaseIterable {
        case qkv, attentionOutput = "attention_output", ffnInput = "ffn_input", ffnOutput = "ffn_output"
        case headTransform = "head_transform"
    }

    public static let metadataKey = "distillery.quantization"

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
        guard scheme.version == 1 else {
            throw ModelCheckpointError.badMetadata(path: path, key: metadataKey, reason: "scheme version \(scheme.version); this build reads version 1")
        }
        return scheme
    }
}

public enum Quantizer {
    /// fp32 values an int8 checkpoint of `layout` stores besides one scale per matrix row: the
    /// smoothing factors of the inputs `scheme` smooths, one per input column of each matrix
    /// reading them (query, key and value each carry theirs).
    public static func smoothingFloats(_ layout: ParameterLayout, scheme: QuantizationScheme = QuantizationScheme()) -> Int {
        layout.slots.reduce(0) { n, slot in
            guard slot.shape.count == 2, let input = QuantizationScheme.Input(slot: slot.name),
                  scheme.smoothedInputs.contains(input) else { return n }
            return n + slot.shape[1]
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
    /// weights were multiplied by (nil: none).
    static func quantize(_ model: EncoderModel, _ slot: ParameterSlot, smoothing: [Float]?) -> (q: [Int8], scales: [Float], smoothing: [Float]?) {
        let rows = slot.shape[0], cols = slot.shape[1]
        guard let s = smoothing else {
            let (q, sc) = quantizeRowsSymmetric(model.p(slot.offset), rows: rows, cols: cols)
            return (q, sc, nil)
        }
        var w = [Float](UnsafeBufferPointer(start: model.p(slot.offset), count: slot.count))
        for r in 0..<rows { for j in 0..<cols { w[r * cols + j] *= s[j] } }
        let (q, sc) = w.withUnsafeBufferPointer { quantizeRowsSymmetric($0.baseAddress!, rows: rows, cols: cols) }
        return (q, sc, s)
    }

    /// The quantized form of every slot `scheme` quantizes, by slot name.
    static func quantizeSlots(_ model: EncoderModel, scheme: QuantizationScheme) throws -> [String: (q: [Int8], scales: [Float], smoothing: [Float]?)] {
        let quantized = quantizedSlots(model, keep: scheme.keptFP32)
        let smoothing = try Smoothing.selfCalibrated(model, inputs: Set(scheme.smoothedInputs))
        var out: [String: (q: [Int8], scales: [Float], smoothing: [Float]?)] = [:]
        for slot in model.layout.slots where quantized.contains(slot.name) {
            out[slot.name] = quantize(model, slot, smoothing: smoothing[slot.name])
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
            let q = p.flatMap(\.q), s = p.flatMap(\.scales)
            let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
                PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: site.rows, K: site.cols, smoothing: p[0].smoothing)
            } }
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
            if let (q, s, sm) = parts[ours] {
                owned += Int8Codec.tensors(name: name, q: q, scales: s, smoothing: sm, rows: slot.shape[0], cols: slot.shape[1])
            } else {
                owned.append(OwnedTensor(name: name, shape: slot.shape,
                                         floats: Array(UnsafeBufferPointer(start: model.p(slot.offset), count: slot.count))))
            }
        }
        var meta = try model.checkpointMetadata(tokenizer: tokenizer, provenance: provenance, recipe: recipe)
        meta[QuantizationScheme.metadataKey] = try scheme.json()
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
