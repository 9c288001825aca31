import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels

/// The one entry point for "a model" on the command line: a Hugging Face folder, a compact
/// checkpoint (NAME.safetensors.zst), or a plain safetensors file next to a config.json.
/// How a command runs a model's matrices.
public enum RunPrecision: String, Sendable, CaseIterable, Codable {
    /// As the file stores them: fp32, or int8 for an int8 checkpoint.
    case stored
    /// fp32 (an int8 checkpoint is dequantized).
    case fp32
    /// bf16 operands, fp32 accumulation (matrices converted at load).
    case bf16
    /// int8 (an fp32 model is quantized in memory as `distill quantize` would).
    case int8
}

public enum ModelStore {
    /// Every weight encoding Distillery reads besides plain floats.
    public static let codecs: [WeightCodec] = [Int8Codec()]

    /// Reads a model for running at `precision`.
    public static func open(_ path: String, options: LoadOptions = LoadOptions(), precision: RunPrecision = .stored) throws -> LoadedModel {
        let loaded = try load(path, options: options, keepEncoded: precision == .stored)
        switch precision {
        case .stored, .fp32: return loaded
        case .bf16:
            loaded.model.convertMatricesToBF16()
            return loaded
        case .int8:
            if loaded.model.formats.contains(.int8) { return loaded }
            try checkFinite(loaded.model, path: path)
            let scheme = QuantizationScheme()
            try Quantizer.quantizeInPlace(loaded.model, scheme: scheme)
            var metadata = loaded.metadata
            metadata[QuantizationScheme.metadataKey] = try scheme.json()
            return LoadedModel(model: loaded.model, path: path, tokenizer: loaded.tokenizer, metadata: metadata)
        }
    }

    /// Refuses weights that are not finite numbers, naming the tensor (quantizing them would
    /// give meaningless scales).
    public static func checkFinite(_ model: EncoderModel, path: String) throws {
        let table = HuggingFaceNames(layout: model.layout)
        for (ours, hf) in table.pairs {
            let slot = model.layout.slot(ours)!
            let values = UnsafeBufferPointer(start: model.p(slot.offset), count: slot.count)
            if !values.allSatisfy(\.isFinite) {
                throw ModelLoadError.nonFinite(file: path, tensor: table.fileName(hf))
            }
        }
    }

    /// Reads a model (a folder, a checkpoint or a bare safetensors file beside a config.json),
    /// fp32; matrices stored in another format are decoded, or with `keepEncoded` kept so.
    public static func load(_ path: String, options: LoadOptions = LoadOptions(), keepEncoded: Bool = false) throws -> LoadedModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError.notAModel(path: path, reason: "no such file or folder")
        }
        if isDir.boolValue { return try HuggingFaceFolder.load(path, options: options, codecs: Self.codecs, keepEncoded: keepEncoded) }
        if path.hasSuffix(".safetensors") {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            let config = folder + "/config.json"
            guard FileManager.default.fileExists(atPath: config) else {
                throw ModelLoadError.notAModel(path: path, reason: "a bare safetensors file needs a config.json beside it")
            }
            let hf = try HuggingFaceConfig.load(path: config)
            let file = try SafetensorsFile(path: path)
            let model = try HuggingFaceFolder.load(hf.encoder, from: file, options: options, codecs: Self.codecs, keepEncoded: keepEncoded)
            return LoadedModel(model: model, path: path, tokenizer: try .read(folder: folder), metadata: file.metadata)
        }
        if path.hasSuffix(".zst") {
            return try ModelCheckpoint.load(path, options: options, codecs: Self.codecs, keepEncoded: keepEncoded)
        }
        throw ModelLoadError.notAModel(path: path, reason: "expected a Hugging Face folder or a .safetensors.zst checkpoint")
    }
}

extension ModelStore {
    /// Saves a loaded model as a checkpoint, recording where it came from.
    @discardableResult
    public static func saveCheckpoint(_ loaded: LoadedModel, to path: String, level: Int = CheckpointFormat.defaultLevel,
                                      byteShuffle: Bool = false) throws -> CheckpointWriteStats {
        return try ModelCheckpoint.save(loaded.model, tokenizer: loaded.tokenizer, to: path, provenance: .derived(from: loaded),
                                        recipe: loaded.metadata[CheckpointKey.recipe], level: level, byteShuffle: byteShuffle)
    }

    /// What `distill params` shows for one argument: a preset name (optionally ":mlm" for the
    /// *ForMaskedLM class, ":base" for the base class, the default), a config.json (heads from its
    /// `architectures`), a Hugging Face folder or a checkpoint (heads from its tensors).
    public static func parameterBreakdown(_ arg: String) throws -> ParameterBreakdown {
        var isDir: ObjCBool = false
        // A file or folder of that name wins over a preset of the same name.
        guard FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) else {
            var name = arg, head = false
            if let r = arg.range(of: ":", options: .backwards), ["mlm", "base"].contains(String(arg[r.upperBound...])) {
                head = arg[r.upperBound...] == "mlm"
                name = String(arg[..<r.lowerBound])
            }
            switch Presets.shape(name, withHead: head) {
            case .encoder(let c)?: return ParameterBreakdown(name: arg, layout: ParameterLayout(config: c))
            case .decoder(let d)?: return d.breakdown(name: arg)
            case nil: throw ModelLoadError.notAModel(path: arg, reason: "not a file, a folder or a preset (presets: \(Presets.names.joined(separator: ", ")))")
            }
        }
        if isDir.boolValue {
            return ParameterBreakdown(name: arg, layout: ParameterLayout(config: try HuggingFaceFolder.describe(arg)))
        }
        if arg.hasSuffix(".json") {
            let hf = try HuggingFaceConfig.load(path: arg)
            var c = hf.encoder
            c.hasMLMHead = hf.architectures.contains { $0.hasSuffix("ForMaskedLM") || $0.hasSuffix("ForPreTraining") }
            c.hasPooler = !c.hasMLMHead && c.family != .distilbert
            return ParameterBreakdown(name: arg, layout: ParameterLayout(config: c))
        }
        if arg.hasSuffix(".zst") {
            // The checkpoint's header says it all; no weights are read.
            let c = try Checkpoint(path: arg)
            let base = try ModelCheckpoint.config(of: c)
            let config = try HuggingFaceFolder.resolve(base, from: c, codecs: Self.codecs).config
            return ParameterBreakdown(name: arg, layout: ParameterLayout(config: config))
        }
        return ParameterBreakdown(name: arg, layout: try load(arg).model.layout)
    }

    /// A model's configuration, heads as its file has them (less what `options` drops), and the
    /// tokenizer files that come with it, from config.json or a checkpoint's header: no weights
    /// are read.
    public static func describe(_ path: String, options: LoadOptions = LoadOptions()) throws -> (config: EncoderConfig, tokenizer: TokenizerFiles) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError.notAModel(path: path, reason: "no such file or folder")
        }
        if isDir.boolValue {
            let hf = try HuggingFaceConfig.load(path: path + "/config.json")
            let file = try SafetensorsFile(path: path + "/model.safetensors")
            return (try HuggingFaceFolder.resolve(hf.encoder, from: file, options: options, codecs: codecs).config, try .read(folder: path))
        }
        guard path.hasSuffix(".zst") else {
            throw ModelLoadError.notAModel(path: path, reason: "expected a Hugging Face folder or a .safetensors.zst checkpoint")
        }
        let c = try Checkpoint(path: path)
        let base = try ModelCheckpoint.config(of: c)
        return (try HuggingFaceFolder.resolve(base, from: c, options: options, codecs: codecs).config, try ModelCheckpoint.tokenizer(of: c))
    }

    /// Bytes of weights on disk: a folder's model.safetensors, or the file itself.
    public static func bytesOnDisk(_ path: String) throws -> Int {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError.notAModel(path: path, reason: "no such file or folder")
        }
        let file = isDir.boolValue ? path + "/model.safetensors" : path
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        return (attributes[.size] as? Int) ?? 0
    }
}

