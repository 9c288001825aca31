import Foundation
import DistilleryTensor
import DistilleryFormats

/// Choices a user makes explicitly when a file holds more than the encoder Distillery runs.
public struct LoadOptions: Sendable, Equatable {
    /// Leave out a pooler present in the file.
    public var dropPooler = false
    /// Leave out next-sentence / sentence-order prediction heads present in the file.
    public var dropPretrainingHeads = false
    /// Leave out the MLM head present in the file.
    public var dropMLMHead = false
    /// Leave out a sequence-classification head present in the file.
    public var dropClassifier = false
    public init(dropPooler: Bool = false, dropPretrainingHeads: Bool = false, dropMLMHead: Bool = false, dropClassifier: Bool = false) {
        self.dropPooler = dropPooler; self.dropPretrainingHeads = dropPretrainingHeads; self.dropMLMHead = dropMLMHead
        self.dropClassifier = dropClassifier
    }
}

public enum ModelLoadError: Error, CustomStringConvertible, Equatable {
    case notAModel(path: String, reason: String)
    case missingTensor(file: String, tensor: String, expectedShape: [Int])
    case unexpectedTensor(file: String, tensor: String, hint: String)
    case wrongShape(file: String, tensor: String, shape: [Int], expected: [Int])
    case untiedDecoder(file: String, tensor: String)
    case duplicateTensor(file: String, tensor: String, other: String)
    case nonFinite(file: String, tensor: String)
    case badValues(file: String, tensor: String, expected: String)
    case labelCount(file: String, tensor: String, rows: Int, labels: [String])

    public var description: String {
        switch self {
        case let .notAModel(p, r): return "\(p): not a model: \(r)"
        case let .missingTensor(f, t, s): return "\(f): missing tensor '\(t)' (expected shape \(s))"
        case let .unexpectedTensor(f, t, h): return "\(f): unexpected tensor '\(t)'\(h.isEmpty ? "" : ": " + h)"
        case let .wrongShape(f, t, s, e): return "\(f): tensor '\(t)' has shape \(s), expected \(e)"
        case let .untiedDecoder(f, t):
            return "\(f): '\(t)' differs from the tensor it should be tied to; Distillery needs the MLM decoder tied to the word embeddings"
        case let .duplicateTensor(f, t, o): return "\(f): tensors '\(t)' and '\(o)' name the same parameter"
        case let .nonFinite(f, t): return "\(f): tensor '\(t)' holds NaN or infinite values"
        case let .badValues(f, t, e): return "\(f): tensor '\(t)' holds values out of range (expected \(e))"
        case let .labelCount(f, t, r, l):
            let shown = l.count > 8 ? l.prefix(8).joined(separator: ", ") + ", …" : l.joined(separator: ", ")
            return "\(f): tensor '\(t)' has \(r) rows (classes) but config.json's id2label names \(l.count) (\(shown)); the two must agree"
        }
    }
}

/// The tokenizer files that travel with a model: vocab.txt and tokenizer_config.json text.
public struct TokenizerFiles: Sendable, Equatable {
    public var vocabulary: String?
    public var config: String?
    public init(vocabulary: String? = nil, config: String? = nil) { self.vocabulary = vocabulary; self.config = config }

    /// Reads vocab.txt and tokenizer_config.json from a folder, where present (each must be
    /// readable UTF-8 text).
    public static func read(folder: String) throws -> TokenizerFiles {
        func text(_ name: String) throws -> String? {
            let path = folder + "/" + name
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            guard let s = String(validating: try readFile(path), as: UTF8.self) else {
                throw FileError(path: path, operation: "read", reason: "it is not UTF-8 text")
            }
            return s
        }
        return TokenizerFiles(vocabulary: try text("vocab.txt"), config: try text("tokenizer_config.json"))
    }
}

/// A model read from disk with what came with it.
public struct LoadedModel: @unchecked Sendable {
    public let model: EncoderModel
    /// The folder or file it came from.
    public let path: String
    public let tokenizer: TokenizerFiles
    /// The file's metadata (checkpoints record provenance here).
    public let metadata: [String: String]

    public init(model: EncoderModel, path: String, tokenizer: TokenizerFiles, metadata: [String: String] = [:]) {
        self.model = model; self.path = path; self.tokenizer = tokenizer; self.metadata = metadata
    }
}

public enum HuggingFaceFolder {
    /// Loads config.json + model.safetensors (+ vocab.txt when present) from a folder.
    public static func load(_ folder: String, options: LoadOptions = LoadOptions(), codecs: [WeightCodec] = [],
                            keepEncoded: Bool = false) throws -> LoadedModel {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw ModelLoadError.notAModel(path: folder, reason: "no such folder")
        }
        let configPath = folder + "/config.json"
        guard fm.fileExists(atPath: configPath) else {
            throw ModelLoadError.notAModel(path: folder, reason: "config.json is missing")
        }
        let weights = folder + "/model.safetensors"
        guard fm.fileExists(atPath: weights) else {
            if fm.fileExists(atPath: folder + "/model.safetensors.index.json") {
                throw ModelLoadError.notAModel(path: folder, reason: "sharded safetensors are not supported; save the model as one model.safetensors")
            }
            if fm.fileExists(atPath: folder + "/pytorch_model.bin") {
                throw ModelLoadError.notAModel(path: folder, reason: "only pytorch_model.bin is present; re-save it with save_pretrained(..., safe_serialization=True) to get model.safetensors")
            }
            throw ModelLoadError.notAModel(path: folder, reason: "model.safetensors is missing")
        }
        let hf = try HuggingFaceConfig.load(path: configPath)
        let file = try SafetensorsFile(path: weights)
        let model = try load(hf.encoder, from: file, options: options, codecs: codecs, keepEncoded: keepEncoded)
        return LoadedModel(model: model, path: folder, tokenizer: try .read(folder: folder), metadata: file.metadata)
    }

    /// Prefix-free name → name in the file. The same parameter under both spellings is an error.
    static func shortNames(_ source: TensorSource, family: ModelFamily) throws -> [String: String] {
        let prefix = family.basePrefix + "."
        var names: [String: String] = [:]
        for t in source.tensors {
            let short = t.name.hasPrefix(prefix) ? String(t.name.dropFirst(prefix.count)) : t.name
            if let other = names[short] {
                throw ModelLoadError.duplicateTensor(file: source.path, tensor: t.name, other: other)
            }
            names[short] = t.name
        }
        return names
    }

    /// The heads a model has: those whose tensors are in the file, less what `options` drops.
    /// A classifier's classes come from its weight's rows; their names from the config when it
    /// names as many.
    static func resolveHeads(_ base: EncoderConfig, names: [String: String], source: TensorSource, options: LoadOptions) throws -> EncoderConfig {
        var config = base
        config.hasMLMHead = !options.dropMLMHead && names.keys.contains { HuggingFaceNames.isHeadName($0, family: base.family) }
        let classifier = options.dropClassifier ? nil : names["classifier.weight"].flatMap { source.info($0) }
        config.numLabels = classifier.map { $0.shape.first ?? 0 } ?? 0
        if let c = classifier, c.shape.count != 2 || c.shape[0] < 1 {
            throw ModelLoadError.wrongShape(file: source.path, tensor: c.name, shape: c.shape, expected: [max(1, base.numLabels), base.hiddenSize])
        }
        // id2label names the classes. Where it names its own (not LABEL_0 …) for another
        // number of classes than the classifier's rows, transformers refuses the model with a
        // size mismatch; so does this, rather than drop the names without a word.
        if let c = classifier, base.labels.count != config.numLabels, base.labels != EncoderConfig.defaultLabels(base.labels.count) {
            throw ModelLoadError.labelCount(file: source.path, tensor: c.name, rows: config.numLabels, labels: base.labels)
        }
        config.labels = base.labels.count == config.numLabels ? base.labels : EncoderConfig.defaultLabels(config.numLabels)
        config.hasPooler = (!options.dropPooler || config.hasClassifier) && names.keys.contains { HuggingFaceNames.isPoolerName($0) }
        try config.validate()
        return config
    }

    /// The configuration of a folder's model, heads included, from config.json and the
    /// safetensors header alone (no weights are read).
    public static func describe(_ folder: String, options: LoadOptions = LoadOptions()) throws -> EncoderConfig {
        let hf = try HuggingFaceConfig.load(path: folder + "/config.json")
        let file = try SafetensorsFile(path: folder + "/model.safetensors")
        return try resolveHeads(hf.encoder, names: try shortNames(file, family: hf.encoder.family), source: file, options: options)
    }

    /// Builds a model from tensors named the Hugging Face way. Which heads exist (pooler, MLM
    /// head) follows the file, less what `options` drops; every other tensor must be used.
    /// Matrices stored by one of `codecs` (int8 with scales) are decoded to fp32, or, with
    /// `keepEncoded`, kept in their format for running as they are.
    public static func load(_ base: EncoderConfig, from source: TensorSource, options: LoadOptions = LoadOptions(),
                            codecs: [WeightCodec] = [], keepEncoded: Bool = false) throws -> EncoderModel {
        let resolved = try resolve(base, from: source, options: options, codecs: codecs)
        let model = EncoderModel(config: resolved.config)
        let slots = Dictionary(uniqueKeysWithValues: model.layout.slots.map { ($0.name, $0) })
        var decoded = Set<String>()
        if keepEncoded {
            // A matrix whose every part a codec stores runs in that codec's format.
            for site in model.layout.matrixSites {
                let parts = site.slots.map { resolved.stored[$0]! }
                guard case let .encoded(codec, _, _)? = parts.first,
                      parts.allSatisfy({ if case let .encoded(c, _, _) = $0 { return c == codec } else { return false } }) else { continue }
                let encoded = parts.map { part -> EncodedTensor in
                    guard case let .encoded(_, info, companions) = part else { preconditionFailure() }
                    return EncodedTensor(tensor: info, companions: companions)
                }
                if let m = try codecs[codec].matrix(encoded, from: source, site: site) {
                    model.setMatrix(m, at: site.offset, keepsFP32: false)
                    decoded.formUnion(site.slots)
                }
            }
        }
        for (name, stored) in resolved.stored where !decoded.contains(name) {
            let slot = slots[name]!
            switch stored {
            case .float(let info):
                try source.readFloats(info, into: model.p(slot.offset))
                // NaN or infinite weights give NaN outputs that look like results.
                if !UnsafeBufferPointer(start: model.p(slot.offset), count: slot.count).allSatisfy(\.isFinite) {
                    throw ModelLoadError.nonFinite(file: source.path, tensor: info.name)
                }
            case let .encoded(codec, info, companions):
                try codecs[codec].decode(EncodedTensor(tensor: info, companions: companions), from: source,
                                         rows: slot.shape[0], cols: slot.shape[1], into: model.p(slot.offset))
            }
        }
        return model
    }

    /// Finds every parameter of the model a file describes, checking names, shapes and dtypes
    /// and that nothing else is in the file, without reading the weights (except a tied
    /// decoder, compared with the word embeddings). Both the fp32 loader and the int8 encoder
    /// build from this.
    public static func resolve(_ base: EncoderConfig, from source: TensorSource, options: LoadOptions = LoadOptions(),
                               codecs: [WeightCodec] = []) throws -> ResolvedParameters {
        let names = try shortNames(source, family: base.family)
        let config = try resolveHeads(base, names: names, source: source, options: options)
        let layout = ParameterLayout(config: config)
        let table = HuggingFaceNames(layout: layout)
        var used = Set<String>()
        var stored: [String: StoredParameter] = [:]
        let e = layout.embeddings!
        let embeddingTables = Set([e.word, e.position] + (e.tokenType.map { [$0] } ?? []))
        for (ours, hf) in table.pairs {
            let slot = layout.slot(ours)!
            guard let fileName = names[hf] else {
                throw ModelLoadError.missingTensor(file: source.path, tensor: table.fileName(hf),
                                                   expectedShape: slot.shape)
            }
            let info = try source.require(fileName)
            if info.shape != slot.shape {
                throw ModelLoadError.wrongShape(file: source.path, tensor: fileName, shape: info.shape, expected: slot.shape)
            }
            if let c = codecs.firstIndex(where: { $0.dtype == info.dtype }) {
                // A matrix in another encoding (int8 with per-row scales): its codec finds and
                // checks the companion tensors.
                guard slot.shape.count == 2 else {
                    throw SafetensorsError.wrongDType(path: source.path, tensor: fileName, dtype: info.dtype,
                                                      expected: "F32, F16, BF16 or F64 (only matrices are stored as \(info.dtype.rawValue))")
                }
                let companions = try codecs[c].companions(of: fileName, slot: ours, rows: slot.shape[0], cols: slot.shape[1],
                                                          isEmbedding: embeddingTables.contains(slot.offset), in: source)
                for t in companions {
                    used.insert(hf + t.name.dropFirst(fileName.count))
                }
                stored[ours] = .encoded(codec: c, info, companions: companions)
            } else {
                guard [.F32, .F16, .BF16, .F64].contains(info.dtype) else {
                    throw SafetensorsError.wrongDType(path: source.path, tensor: fileName, dtype: info.dtype, expected: "F32, F16, BF16 or F64")
                }
                stored[ours] = .float(info)
            }
            used.insert(hf)
        }
        // Whatever is left must be a buffer, a tied alias, or a part the user chose to drop.
        let head = HuggingFaceNames.headNames(config.family)
        for short in names.keys.sorted() where !used.contains(short) {
            let fileName = names[short]!
            if HuggingFaceNames.isBuffer(short) { continue }
            if short == head.decoderWeight || short == head.decoderBias {
                if !config.hasMLMHead { continue }  // dropped with the head
                let target = short == head.decoderWeight ? layout.embeddings.word : layout.head!.bias
                guard case .float(let original)? = stored[layout.slots.first { $0.offset == target }!.name],
                      try source.floats(fileName) == source.floats(original.name) else {
                    throw ModelLoadError.untiedDecoder(file: source.path, tensor: fileName)
                }
                continue
            }
            if HuggingFaceNames.isPoolerName(short) && options.dropPooler { continue }
            if HuggingFaceNames.isClassifierName(short) && options.dropClassifier { continue }
            if HuggingFaceNames.isHeadName(short, family: config.family) && options.dropMLMHead { continue }
            if HuggingFaceNames.isOtherPretrainingHead(short) {
                if options.dropPretrainingHeads { continue }
                throw ModelLoadError.unexpectedTensor(file: source.path, tensor: fileName,
                    hint: "a next-sentence / sentence-order head; pass --drop-pretraining-heads to load without it")
            }
            throw ModelLoadError.unexpectedTensor(file: source.path, tensor: fileName,
                hint: "not part of a \(config.family.rawValue) encoder with an MLM head or a sequence-classification head (other task heads are not supported)")
        }
        return ResolvedParameters(config: config, stored: stored)
    }
}

extension TensorSource {
    /// The tensor `name`, which must exist with this shape and dtype.
    public func require(_ name: String, shape: [Int], dtype: DType) throws -> TensorInfo {
        guard let info = info(name) else {
            throw ModelLoadError.missingTensor(file: path, tensor: name, expectedShape: shape)
        }
        guard info.shape == shape else {
            throw ModelLoadError.wrongShape(file: path, tensor: name, shape: info.shape, expected: shape)
        }
        guard info.dtype == dtype else {
            throw SafetensorsError.wrongDType(path: path, tensor: name, dtype: info.dtype, expected: dtype.rawValue)
        }
        return info
    }
}

/// Where one parameter is stored in a file.
public enum StoredParameter: Sendable {
    /// A floating-point tensor (F32, F16, BF16 or F64).
    case float(TensorInfo)
    /// A matrix stored by `codecs[codec]`: its main tensor and the companions the codec found.
    case encoded(codec: Int, TensorInfo, companions: [TensorInfo])
}

/// A matrix (or part of one) as a codec stores it.
public struct EncodedTensor: Sendable {
    public let tensor: TensorInfo
    public let companions: [TensorInfo]
    public init(tensor: TensorInfo, companions: [TensorInfo]) { self.tensor = tensor; self.companions = companions }
}

/// A way of storing a matrix in a file other than as one float tensor: a main tensor of its own
/// dtype plus companion tensors named after it (DistilleryQuant's int8 codec: I8 weights with
/// NAME.scale and NAME.smooth). The loader asks it to find and check the companions, to decode
/// to fp32, and to make the matrix that runs in its format.
public protocol WeightCodec: Sendable {
    /// The dtype of the main tensors this codec stores.
    var dtype: DType { get }
    /// The companions of the main tensor `name` [rows × cols] in `source`, each checked (shape,
    /// dtype, values); an error names the missing or bad tensor.
    /// `slot` is our name for the parameter (which layer input a matrix reads follows from it).
    func companions(of name: String, slot: String, rows: Int, cols: Int, isEmbedding: Bool, in source: TensorSource) throws -> [TensorInfo]
    /// Whether a tensor name is a companion (not a parameter of its own), for listings.
    func isCompanion(_ name: String) -> Bool
    /// The values in fp32: out [rows × cols].
    func decode(_ t: EncodedTensor, from source: TensorSource, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) throws
    /// The matrix for a site from its parts (query, key and value for QKV), running in this
    /// codec's format; nil when the parts cannot run as one (they are then decoded to fp32).
    func matrix(_ parts: [EncodedTensor], from source: TensorSource, site: MatrixSite) throws -> WeightMatrix?
}

/// The model a file holds: its configuration (heads as found) and where each slot is stored.
public struct ResolvedParameters: Sendable {
    public let config: EncoderConfig
    /// By our slot name.
    public let stored: [String: StoredParameter]
}
