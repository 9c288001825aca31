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

    /// What `distill params` counts for one argument: a preset (the base class; "NAME:mlm" the LM
    /// class, "NAME:base" the base class), a config.json (the class its `architectures` names, or
    /// with ":mlm" / ":base" that class), a Hugging Face folder or a checkpoint (heads as their
    /// tensors have them; no weights are read, except for a bare .safetensors file).
    public static func countedModel(_ arg: String) throws -> CountedModel {
        var isDir: ObjCBool = false
        // A file or folder of that name wins over a preset of the same name.
        if FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) {
            return try countedFile(arg, isDirectory: isDir.boolValue)
        }
        var name = arg, head: ModelShape.Head?
        if let r = arg.range(of: ":", options: .backwards) {
            switch arg[r.upperBound...] {
            case "mlm": head = .lm
            case "base": head = .base
            default: break
            }
            if head != nil { name = String(arg[..<r.lowerBound]) }
        }
        if head != nil, FileManager.default.fileExists(atPath: name, isDirectory: &isDir) {
            guard !isDir.boolValue && name.hasSuffix(".json") else {
                throw ParameterCountError.notAModel(name: arg, reason: "':mlm' and ':base' choose the class of a preset or a config.json; "
                                                    + "a folder or a checkpoint is counted with the heads its tensors have")
            }
            return CountedModel(name: arg, source: "config.json", shape: try ModelShape.load(configPath: name, head: head))
        }
        guard let preset = Presets.find(name) else {
            throw ParameterCountError.notAModel(name: arg, reason: "not a file, a folder or a preset; presets: "
                                                + Presets.byFamily.map { "\($0.family.title): \($0.names.joined(separator: ", "))" }.joined(separator: "; "))
        }
        var shape = preset.shape
        shape.head = head ?? .base
        return CountedModel(name: arg, source: "preset (\(preset.source))", shape: shape, notes: preset.note.map { [$0] } ?? [])
    }

    static func countedFile(_ path: String, isDirectory: Bool) throws -> CountedModel {
        if isDirectory {
            let config = path + "/config.json"
            let data: Data
            do { data = try readFile(config) } catch { throw ParameterCountError.unreadable(path: config, reason: "\(error)") }
            if let type = try ModelShape.modelType(configJSON: data, path: config), ModelFamily(rawValue: type) == nil {
                // A family Distillery only counts: its config.json says all there is to count.
                return CountedModel(name: path, source: "config.json of a Hugging Face folder",
                                    shape: try ModelShape.decode(configJSON: data, path: config))
            }
            // Every tensor's name, shape and dtype checked against config.json, from the
            // safetensors header (as loading would): counts are never the config's alone.
            let hf = try HuggingFaceConfig.load(path: config)
            let file = try SafetensorsFile(path: path + "/model.safetensors")
            let resolved = try HuggingFaceFolder.resolve(hf.encoder, from: file, codecs: Self.codecs).config
            return CountedModel(name: path, source: "Hugging Face folder", shape: ModelShape(encoder: resolved))
        }
        if path.hasSuffix(".json") {
            return CountedModel(name: path, source: "config.json", shape: try ModelShape.load(configPath: path))
        }
        if path.hasSuffix(".zst") {
            // The checkpoint's header says it all; no weights are read.
            let c = try Checkpoint(path: path)
            let base = try ModelCheckpoint.config(of: c)
            let config = try HuggingFaceFolder.resolve(base, from: c, codecs: Self.codecs).config
            return CountedModel(name: path, source: "checkpoint", shape: ModelShape(encoder: config))
        }
        return CountedModel(name: path, source: "safetensors file", shape: ModelShape(encoder: try load(path).model.config))
    }

    /// The breakdown of a counted model; for the encoders Distillery runs, int8 bytes include the
    /// smoothing factors its int8 format stores.
    public static func parameterBreakdown(_ m: CountedModel) throws -> ParameterBreakdown {
        var b = try m.shape.breakdown(name: m.name, source: m.name)
        if let c = m.shape.encoderConfig { b.int8ExtraFloats = Quantizer.extraValues(ParameterLayout(config: c)) }
        b.notes = m.notes + b.notes
        return b
    }

    /// The breakdown `distill params` shows for one argument (see `countedModel`).
    public static func parameterBreakdown(_ arg: String) throws -> ParameterBreakdown {
        try parameterBreakdown(try countedModel(arg))
    }

    /// `distill params`: the models named, and with `like` that model and the what-if of
    /// `changes` beside it (first, so ratios are to the original). FLOPs at `sequenceLength`.
    public static func parameterReport(_ models: [String], like: String? = nil, changes: ShapeChanges = ShapeChanges(),
                                       sequenceLength: Int = 128) throws -> ParameterReport {
        guard ParameterReport.sequenceLengths.contains(sequenceLength) else {
            throw ParameterCountError.badOption(option: "--seq-len", reason: "must be 1…\(grouped(ParameterReport.sequenceLengths.upperBound)), got \(sequenceLength)")
        }
        var counted: [CountedModel] = []
        if let like {
            guard !changes.isEmpty else {
                throw ParameterCountError.badOption(option: "--like", reason: "give the changes to make, e.g. --layers 6 --hidden 384")
            }
            let original = try countedModel(like)
            let (shape, notes) = try original.shape.applying(changes)
            counted += [original, CountedModel(name: "what-if", source: "what-if: \(like) with \(changes.summary)", shape: shape,
                                               notes: ["\(like) with \(changes.summary)"] + notes)]
        } else if !changes.isEmpty {
            throw ParameterCountError.badOption(option: changes.options.first { $0.value != nil }?.option ?? "--share",
                                                reason: "changes a model named by --like MODEL")
        }
        counted += try models.map { try countedModel($0) }
        guard !counted.isEmpty else {
            throw ParameterCountError.badOption(option: "MODEL", reason: "give at least one model, or --like MODEL with changes")
        }
        return ParameterReport(try counted.map { ($0, try parameterBreakdown($0)) }, sequenceLength: sequenceLength)
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

