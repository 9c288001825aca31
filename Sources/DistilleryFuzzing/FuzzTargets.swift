import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryText
import DistilleryModels
import DistilleryQuant
import DistilleryRecipes

/// What the fuzzers feed arbitrary bytes to: each reader Distillery points at files a user
/// hands it. Every input must end in a value or a thrown error, never a trap; the fuzz
/// executables (Tests/Fuzz) call these under libFuzzer, and the test suite replays the inputs
/// that once broke them (Tests/DistilleryTests/Fixtures/fuzz-regressions).
public enum FuzzTarget: String, CaseIterable, Sendable {
    case safetensors, checkpoint, tokens, vocabulary, recipe, config

    /// A scratch file for readers that take paths (memory-backed where /dev/shm exists).
    static let scratch: String = {
        let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return dir + "/distill-fuzz-\(getpid())"
    }()

    static func file(_ data: Data, suffix: String) -> String {
        let path = scratch + suffix
        FileManager.default.createFile(atPath: path, contents: data)
        return path
    }

    /// Runs one input; errors are the expected outcome for most inputs and are swallowed.
    public func run(_ data: Data) {
        do { try body(data) } catch {}
    }

    func body(_ data: Data) throws {
        switch self {
        case .safetensors:
            // The header parser on its own (what every model file and batch goes through)…
            try data.withUnsafeBytes { raw in
                let n = try SafetensorsHeader.headerLength(raw, fileSize: raw.count, path: "fuzz")
                _ = try SafetensorsHeader(json: UnsafeRawBufferPointer(rebasing: raw[8..<(8 + n)]), fileSize: raw.count, path: "fuzz")
            }
            // …and the whole file as a batch and as a model beside the tiny BERT config.
            let f = try SafetensorsFile(path: Self.file(data, suffix: ".safetensors"))
            _ = try? TokenBatch.read(from: f)
            for t in f.tensors.prefix(8) { _ = try? f.floats(t.name); _ = try? f.integers(t.name) }
            let config = EncoderConfig(family: .bert, vocabSize: 512, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128,
                                       maxPositions: 64)
            _ = try HuggingFaceFolder.load(config, from: f, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true),
                                           codecs: ModelStore.codecs)
        case .checkpoint:
            let c = try Checkpoint(path: Self.file(data, suffix: ".safetensors.zst"))
            try c.verify()
            _ = try ModelStore.load(c.path, keepEncoded: true)
        case .tokens:
            let d = try TokenDataset(path: Self.file(data, suffix: ".tok"))
            for i in 0..<min(d.count, 64) { _ = d.sequence(i) }
            _ = d.tokenCounts()
        case .vocabulary:
            // A vocabulary (first line: its first token), then text to tokenize with it.
            let text = String(decoding: data, as: UTF8.self)
            let parts = text.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
            let t = try BertTokenizer.from(vocabularyText: String(parts[0]), configText: nil, origin: "fuzz")
            let input = parts.count > 1 ? String(parts[1]) : String(parts[0].prefix(256))
            _ = t.encode(input, pair: input.count > 4 ? String(input.prefix(input.count / 2)) : nil, maxLength: 32)
        case .recipe:
            _ = try RecipeParser.parse(String(decoding: data, as: UTF8.self), path: Self.scratch + "/recipe.toml")
        case .config:
            // What `distill params` does with it (every family it counts, and a what-if)…
            if let shape = try? ModelShape.decode(configJSON: data, path: "fuzz/config.json"),
               let b = try? shape.breakdown(name: "fuzz") {
                _ = (b.bytes, b.flopsPerToken(sequenceLength: 1 << 20), b.nonEmbedding, b.applied)
                _ = try? shape.applying(ShapeChanges(layers: 3, hidden: 4096, embedding: 64, vocab: 1000))
            }
            // …and what loading does.
            let c = try HuggingFaceConfig.decode(data, path: "fuzz/config.json")
            _ = ParameterLayout(config: c.encoder).count
        }
    }
}
