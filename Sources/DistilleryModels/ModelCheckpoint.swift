import Foundation
import DistilleryTensor
import DistilleryFormats

/// Metadata keys Distillery records in checkpoints.
public enum CheckpointKey {
    public static let formatVersion = "distillery.format_version"
    public static let config = "distillery.config"
    public static let huggingFaceConfig = "distillery.hf_config"
    public static let vocabulary = "distillery.vocab"
    public static let tokenizerConfig = "distillery.tokenizer_config"
    public static let recipe = "distillery.recipe"
    public static let parameters = "distillery.parameters"
    public static let provenance = "distillery.provenance"
    public static let kind = "distillery.kind"
}

/// Where a model came from, recorded in its checkpoint.
public struct Provenance: Codable, Sendable, Equatable {
    public var source: String?
    public var teacher: String?
    public var steps: Int?
    public var created: String
    public var tool: String
    public init(source: String? = nil, teacher: String? = nil, steps: Int? = nil, created: Date = Date()) {
        self.source = source; self.teacher = teacher; self.steps = steps
        let f = ISO8601DateFormatter()
        self.created = f.string(from: created)
        tool = "distillery"
    }

    /// The provenance of a file made from `loaded`: it is the source; the teacher and steps
    /// that produced it carry over.
    public static func derived(from loaded: LoadedModel) -> Provenance {
        var p = Provenance(source: loaded.path)
        if let text = loaded.metadata[CheckpointKey.provenance],
           let old = try? JSONDecoder().decode(Provenance.self, from: Data(text.utf8)) {
            p.teacher = old.teacher; p.steps = old.steps
        }
        return p
    }
}

public enum ModelCheckpointError: Error, CustomStringConvertible, Equatable {
    case missingMetadata(path: String, key: String)
    case badMetadata(path: String, key: String, reason: String)
    case unsupportedKind(path: String, kind: String)

    public var description: String {
        switch self {
        case let .missingMetadata(p, k): return "\(p): metadata '\(k)' is missing (not written by Distillery?)"
        case let .badMetadata(p, k, r): return "\(p): metadata '\(k)': \(r)"
        case let .unsupportedKind(p, k): return "\(p): a '\(k)' checkpoint cannot be used here"
        }
    }
}

extension EncoderModel {
    /// The model's tensors under their Hugging Face names (as *ForMaskedLM writes them when the
    /// model has a head). `unrolled` duplicates shared ALBERT blocks per layer, the form
    /// Hugging Face loads.
    public func huggingFaceTensors(unrolled: Bool) -> [TensorPayload] {
        let table = HuggingFaceNames(layout: layout, unrolled: unrolled)
        return table.pairs.map { ours, hf in
            let slot = layout.slot(ours)!
            return TensorPayload(name: table.fileName(hf), dtype: .F32, shape: slot.shape,
                                 bytes: UnsafeRawBufferPointer(start: p(slot.offset), count: slot.count * 4))
        }
    }

    /// Metadata describing this model in a checkpoint.
    public func checkpointMetadata(tokenizer: TokenizerFiles, provenance: Provenance, recipe: String? = nil) throws -> [String: String] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var m: [String: String] = [
            "format": "pt",
            CheckpointKey.formatVersion: CheckpointFormat.formatVersion,
            CheckpointKey.kind: "model",
            CheckpointKey.config: String(decoding: try enc.encode(config), as: UTF8.self),
            CheckpointKey.huggingFaceConfig: String(decoding: try HuggingFaceConfig.encode(config), as: UTF8.self),
            CheckpointKey.parameters: String(decoding: try enc.encode(ParameterBreakdown(name: "model", layout: layout)), as: UTF8.self),
            CheckpointKey.provenance: String(decoding: try enc.encode(provenance), as: UTF8.self),
        ]
        if let v = tokenizer.vocabulary { m[CheckpointKey.vocabulary] = v }
        if let c = tokenizer.config { m[CheckpointKey.tokenizerConfig] = c }
        if let recipe { m[CheckpointKey.recipe] = recipe }
        return m
    }
}

public enum ModelCheckpoint {
    /// Writes a model (fp32) as a compact checkpoint.
    @discardableResult
    public static func save(_ model: EncoderModel, tokenizer: TokenizerFiles, to path: String, provenance: Provenance,
                            recipe: String? = nil, level: Int = CheckpointFormat.defaultLevel,
                            byteShuffle: Bool = false) throws -> CheckpointWriteStats {
        try CheckpointWriter.write(model.huggingFaceTensors(unrolled: false),
                                   metadata: try model.checkpointMetadata(tokenizer: tokenizer, provenance: provenance, recipe: recipe),
                                   to: path, level: level, byteShuffle: byteShuffle)
    }

    /// The encoder configuration recorded in a checkpoint, checked as a config.json is; the
    /// format version must be one this build reads.
    public static func config(of c: Checkpoint) throws -> EncoderConfig {
        try checkFormatVersion(c)
        guard let text = c.metadata[CheckpointKey.config] else {
            throw ModelCheckpointError.missingMetadata(path: c.path, key: CheckpointKey.config)
        }
        let config: EncoderConfig
        do { config = try JSONDecoder().decode(EncoderConfig.self, from: Data(text.utf8)) } catch {
            throw ModelCheckpointError.badMetadata(path: c.path, key: CheckpointKey.config, reason: describe(error))
        }
        do { try config.validate() } catch let e as ConfigError {
            throw ModelCheckpointError.badMetadata(path: c.path, key: CheckpointKey.config, reason: "\(e)")
        }
        return config
    }

    /// Refuses a checkpoint written by a newer (or unknown) format version.
    public static func checkFormatVersion(_ c: Checkpoint) throws {
        guard let v = c.metadata[CheckpointKey.formatVersion] else {
            throw ModelCheckpointError.missingMetadata(path: c.path, key: CheckpointKey.formatVersion)
        }
        guard v == CheckpointFormat.formatVersion else {
            throw ModelCheckpointError.badMetadata(path: c.path, key: CheckpointKey.formatVersion,
                                                   reason: "version \(v); this build reads version \(CheckpointFormat.formatVersion)")
        }
    }

    /// Reads a model checkpoint; matrices stored by `codecs` are decoded to fp32 or, with
    /// `keepEncoded`, kept in their format.
    public static func load(_ path: String, options: LoadOptions = LoadOptions(), codecs: [WeightCodec],
                            keepEncoded: Bool = false) throws -> LoadedModel {
        let c = try Checkpoint(path: path)
        let kind = c.metadata[CheckpointKey.kind] ?? "model"
        guard kind == "model" else { throw ModelCheckpointError.unsupportedKind(path: path, kind: kind) }
        let config = try Self.config(of: c)
        try config.validate()
        // Read every frame once (in parallel), then copy tensors out of the image.
        let image = try SafetensorsImage(try c.decompressAll(), path: path)
        let model = try HuggingFaceFolder.load(config, from: image, options: options, codecs: codecs, keepEncoded: keepEncoded)
        if model.config.hasMLMHead != config.hasMLMHead && !options.dropMLMHead
            || model.config.hasPooler != config.hasPooler && !options.dropPooler && !options.dropClassifier
            || model.config.numLabels != config.numLabels && !options.dropClassifier {
            throw ModelCheckpointError.badMetadata(path: path, key: CheckpointKey.config, reason: "heads disagree with the tensors")
        }
        return LoadedModel(model: model, path: path, tokenizer: try tokenizer(of: c), metadata: c.metadata)
    }

    /// The tokenizer files a checkpoint carries in its metadata. An embedded vocabulary must be
    /// one a tokenizer can use (tokens one a line, none empty or repeated): it is exported as
    /// vocab.txt.
    public static func tokenizer(of c: Checkpoint) throws -> TokenizerFiles {
        let files = TokenizerFiles(vocabulary: c.metadata[CheckpointKey.vocabulary], config: c.metadata[CheckpointKey.tokenizerConfig])
        if let v = files.vocabulary {
            var lines = v.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }
            guard !lines.isEmpty else {
                throw ModelCheckpointError.badMetadata(path: c.path, key: CheckpointKey.vocabulary, reason: "the vocabulary is empty")
            }
            var seen = Set<Substring>()
            for (i, t) in lines.enumerated() {
                if t.isEmpty { throw ModelCheckpointError.badMetadata(path: c.path, key: CheckpointKey.vocabulary, reason: "line \(i + 1) is empty") }
                if !seen.insert(t).inserted {
                    throw ModelCheckpointError.badMetadata(path: c.path, key: CheckpointKey.vocabulary, reason: "token '\(t)' (line \(i + 1)) appears twice")
                }
            }
        }
        return files
    }
}

extension HuggingFaceFolder {
    /// The files `save` writes.
    public static let fileNames: Set<String> = ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"]
    /// The config.json key `save` always writes: the mark of a folder a later save may replace.
    public static let writtenKey = "distillery_written"

    /// Throws unless a folder `save` writes may take the place of `path`: nothing there, an
    /// empty folder, or one an earlier `save` wrote (only its files, and config.json carrying
    /// `writtenKey`). A user's own model folder (perhaps the very model a command reads) has
    /// the same file names, so the names alone do not tell.
    public static func checkReplaceable(_ path: String) throws {
        try FileManager.default.checkReplaceableFolder(path, mayHold: fileNames)
        let config = path + "/config.json"
        guard FileManager.default.fileExists(atPath: config) else { return }
        let object = (try? JSONSerialization.jsonObject(with: readFile(config))) as? [String: Any]
        guard object?[writtenKey] != nil else {
            throw FileError(path: path, operation: "replace",
                            reason: "it holds a model Distillery did not write (its config.json has no \(writtenKey)), perhaps the model this command reads; give a new folder")
        }
    }

    /// Replaces `path` by `staging` (a complete folder `save` wrote beside it), after
    /// `checkReplaceable`; on refusal the staging folder is removed.
    public static func replace(_ path: String, with staging: String) throws {
        do { try checkReplaceable(path) } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        try FileManager.default.replaceFolder(path, with: staging, mayHold: fileNames)
    }

    /// Writes config.json, model.safetensors (fp32, Hugging Face names) and the tokenizer files
    /// into `folder` (created if needed; each file written atomically). Transformers loads the
    /// result as the family's *ForMaskedLM (or base model when there is no head).
    /// `notes` go into config.json (transformers keeps unknown keys as attributes) and the
    /// safetensors metadata.
    public static func save(_ model: EncoderModel, tokenizer: TokenizerFiles, to folder: String, notes: [String: String] = [:]) throws {
        try FileManager.default.createFolder(folder)
        var config = try HuggingFaceConfig.encode(model.config)
        var notes = notes
        notes[writtenKey] = "a later distill command may replace this folder"
        if var object = try JSONSerialization.jsonObject(with: config) as? [String: Any] {
            for (k, v) in notes { object[k] = v }
            config = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        }
        try AtomicFileWriter.write(config, to: folder + "/config.json")
        try Safetensors.write(model.huggingFaceTensors(unrolled: true), metadata: notes.merging(["format": "pt"]) { $1 },
                              to: folder + "/model.safetensors")
        if let v = tokenizer.vocabulary { try AtomicFileWriter.write(Data(v.utf8), to: folder + "/vocab.txt") }
        if let c = tokenizer.config { try AtomicFileWriter.write(Data(c.utf8), to: folder + "/tokenizer_config.json") }
    }
}
