import XCTest
import DistilleryFormats
import DistilleryModels
import DistilleryQuant
import DistilleryTraining
import DistilleryCLI

/// Parameter counts: every preset and every fixture config.json against the reference counts of
/// Tests/DistilleryTests/Fixtures/param-counts/counts.json (transformers 5.24 base classes on the
/// meta device, made by Tests/Scripts/param_counts.py, which also holds the GPT-3 paper's table),
/// the what-if mode, FLOPs and bytes, and the errors.
final class ParameterCountTests: XCTestCase {
    /// Totals of the base and the LM-head classes of the presets that came first (these numbers
    /// predate counts.json; its base-class totals agree with them).
    let expected: [(String, Int, Int)] = [
        ("bert-base-uncased", 109_482_240, 109_514_298),
        ("bert-large-uncased", 335_141_888, 335_174_458),
        ("distilbert-base-uncased", 66_362_880, 66_985_530),
        ("albert-base-v2", 11_683_584, 11_221_680),
        ("albert-large-v2", 17_683_968, 16_795_824),
        ("albert-xlarge-v2", 58_724_864, 54_821_040),
        ("albert-xxlarge-v2", 222_595_584, 206_368_944),
        ("all-MiniLM-L6-v2", 22_713_216, 22_744_506),
        ("gpt2", 124_439_808, 124_439_808),
        ("gpt2-medium", 354_823_168, 354_823_168),
        ("gpt2-large", 774_030_080, 774_030_080),
        ("gpt2-xl", 1_557_611_200, 1_557_611_200),
        ("openai-gpt", 116_534_784, 116_534_784),
    ]

    // MARK: the reference counts

    struct Reference {
        let name: String
        let total: Int
        let nonEmbedding: Int
        /// counts.json's components: embeddings, attention, ffn, layer_norm, pooler.
        let components: [String: Int]
        /// BART and T5: the shared table and each stack by component.
        let shared: Int?
        let stacks: [String: (total: Int, components: [String: Int])]
        /// ALBERT: applied per forward.
        let applied: (total: Int, components: [String: Int])?
        let config: String
    }

    static let fixture = Fixtures.path("param-counts")

    static func counts() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture + "/counts.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func totals(_ c: Any?) -> [String: Int] {
        var out: [String: Int] = [:]
        for (k, v) in (c as? [String: Any]) ?? [:] {
            if let n = v as? Int { out[k] = n } else if let d = v as? [String: Any], let t = d["total"] as? Int { out[k] = t }
        }
        return out
    }

    static func references() throws -> [Reference] {
        try XCTUnwrap(counts()["models"] as? [[String: Any]]).map { m in
            var stacks: [String: (Int, [String: Int])] = [:]
            for s in ["encoder", "decoder"] {
                if let d = m[s] as? [String: Any] { stacks[s] = (d["total"] as! Int, totals(d["components"])) }
            }
            let applied = (m["applied"] as? [String: Any]).map { ($0["total"] as! Int, totals($0["components"])) }
            return Reference(name: m["name"] as! String, total: m["total"] as! Int, nonEmbedding: m["non_embedding"] as! Int,
                             components: totals(m["components"]), shared: (m["shared"] as? [String: Any])?["total"] as? Int,
                             stacks: stacks, applied: applied, config: fixture + "/" + (m["config"] as! String))
        }
    }

    /// counts.json's component names for ours.
    static let kinds: [(String, ComponentKind)] = [("embeddings", .embeddings), ("attention", .attention), ("ffn", .ffn),
                                                    ("layer_norm", .norms), ("pooler", .heads)]

    func kindTotals(_ components: [ParameterBreakdown.Component], applied: Bool = false) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: Self.kinds.map { name, kind in
            (name, components.filter { $0.kind == kind }.reduce(0) { $0 + (applied ? $1.applied : $1.stored) })
        })
    }

    /// Every reference model: its preset (the base class) counts what transformers counts, in
    /// total, without embeddings, by component, per stack and, for ALBERT, per forward.
    func testPresetsMatchTransformers() throws {
        let refs = try Self.references()
        XCTAssertEqual(refs.count, 35)
        for r in refs {
            let b = try ModelStore.parameterBreakdown(r.name)
            XCTAssertEqual(b.total, r.total, r.name)
            XCTAssertEqual(b.nonEmbedding, r.nonEmbedding, "\(r.name) non-embedding")
            XCTAssertEqual(kindTotals(b.components), r.components, "\(r.name) by component")
            if let shared = r.shared {
                XCTAssertEqual(b.section("embeddings")?.stored, shared, "\(r.name) shared table")
                for (stack, ref) in r.stacks {
                    let s = try XCTUnwrap(b.section(stack), "\(r.name) \(stack)")
                    XCTAssertEqual(s.stored, ref.total, "\(r.name) \(stack)")
                    XCTAssertEqual(kindTotals(s.components), ref.components, "\(r.name) \(stack) by component")
                }
            }
            if let applied = r.applied {
                XCTAssertEqual(b.applied, applied.total, "\(r.name) applied")
                XCTAssertEqual(kindTotals(b.components, applied: true), applied.components, "\(r.name) applied by component")
            } else {
                XCTAssertEqual(b.applied, b.total, r.name)
            }
        }
        // Every preset is checked here or against the GPT-3 table below.
        let gpt3 = Presets.all.filter { $0.shape.family == .gpt3 }.map(\.name)
        XCTAssertEqual(Set(Presets.names), Set(refs.map(\.name) + gpt3))
    }

    /// A config.json of each family counts as its preset: forced to the base class (":base"), as
    /// the fixture's totals; and as the class its `architectures` names.
    func testConfigFilesCountAsPresets() throws {
        for r in try Self.references() {
            let preset = try ModelStore.parameterBreakdown(r.name)
            let config = try ModelStore.parameterBreakdown(r.config + ":base")
            XCTAssertEqual(config.total, r.total, r.config)
            XCTAssertEqual(config.sections, preset.sections, r.config)

            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: r.config))) as! [String: Any]
            let head = ModelShape.Head(architectures: object["architectures"] as? [String] ?? [])
            var asPreset = try ModelStore.countedModel(r.name)
            asPreset.shape.head = head
            let asNamed = try ModelStore.parameterBreakdown(r.config)
            XCTAssertEqual(asNamed.total, try ModelStore.parameterBreakdown(asPreset).total, "\(r.config) as \(head)")
            XCTAssertEqual(asNamed.sections, try ModelStore.parameterBreakdown(asPreset).sections, r.config)
            if head == .lm {
                XCTAssertEqual(try ModelStore.parameterBreakdown(r.config + ":mlm").total, try ModelStore.parameterBreakdown(r.name + ":mlm").total)
            }
        }
    }

    /// GPT-3: the paper's table has no config.json, so the reference is counts.json's `gpt3`
    /// section: the paper's dimensions counted as a GPT-2 (which the script checked equals
    /// transformers' GPT2Model), and the paper's rounded n_params.
    ///
    /// Tolerance to the paper: 2%. The paper's figures are nominal sizes rounded to 2–4 digits,
    /// and two do not even round from the shapes it prints: Medium (350M printed, 355.9M counted,
    /// +1.7%) and 175B (175.0B printed, 174.6B counted, −0.2%); 2.7B is the farthest that does
    /// round (−1.8%). Every row the fixture marks `rounds_to_paper` must also round exactly. Two
    /// rows are inconsistent in the paper (XL: 24 heads × 128 ≠ 2048; 13B: 40 × 128 = 5120 ≠
    /// d_model 5140); like the fixture, we count with d_model as printed, which is what rounds.
    func testGPT3MatchesThePaper() throws {
        let rows = try XCTUnwrap(Self.counts()["gpt3"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 8)
        let presets = Presets.all.filter { $0.shape.family == .gpt3 }
        XCTAssertEqual(presets.count, rows.count)
        for (row, preset) in zip(rows, presets) {
            let name = row["name"] as! String
            XCTAssertEqual(preset.shape.layers, row["n_layers"] as? Int, name)
            XCTAssertEqual(preset.shape.hiddenSize, row["d_model"] as? Int, name)
            XCTAssertEqual(preset.shape.heads, row["n_heads"] as? Int, name)
            XCTAssertEqual(preset.shape.positions, row["n_ctx"] as? Int, name)
            XCTAssertEqual(preset.shape.vocabSize, row["vocab_size"] as? Int, name)
            XCTAssertEqual(preset.shape.intermediateSize, row["d_ff"] as? Int, name)
            let b = try ModelStore.parameterBreakdown(preset.name)
            XCTAssertEqual(b.total, row["computed"] as? Int, name)
            XCTAssertEqual(b.nonEmbedding, row["computed_non_embedding"] as? Int, name)
            XCTAssertEqual(kindTotals(b.components), Self.totals(row["components"]), name)

            let printed = row["paper_n_params"] as! String
            let unit: Double = printed.hasSuffix("B") ? 1e9 : 1e6
            let paper = Double(printed.dropLast())! * unit
            XCTAssertLessThanOrEqual(abs(Double(b.total) / paper - 1), 0.02, "\(name): \(b.total) vs the paper's \(printed)")
            let decimals = printed.dropLast().split(separator: ".").dropFirst().first?.count ?? 0
            let shown = String(format: "%.\(decimals)f", Double(b.total) / unit) + String(printed.last!)
            XCTAssertEqual(shown == printed, row["rounds_to_paper"] as? Bool, "\(name): \(shown) vs \(printed)")
        }
    }

    /// The earlier table: base and LM-head classes (heads from the real layout for the encoders).
    func testPresetTotals() throws {
        for (name, base, mlm) in expected {
            XCTAssertNotNil(Presets.find(name), name)
            for (suffix, total) in [("", base), (":mlm", mlm), (":base", base)] {
                let b = try ModelStore.parameterBreakdown(name + suffix)
                XCTAssertEqual(b.total, total, name + suffix)
                XCTAssertEqual(b.sections.reduce(0) { $0 + $1.stored }, b.total)
                if let c = Presets.encoder(name, withHead: suffix == ":mlm") {
                    XCTAssertEqual(ParameterLayout(config: c).count, total, "\(name) layout")
                    XCTAssertEqual(ParameterBreakdown(name: name, layout: ParameterLayout(config: c)).total, total)
                }
            }
        }
    }

    func testSharedLayersAreAppliedPerLayer() throws {
        let b = try ModelStore.parameterBreakdown("albert-base-v2:mlm")
        let attention = try XCTUnwrap(b.component("encoder", "attention"))
        XCTAssertEqual(attention.stored, 4 * (768 * 768 + 768))
        XCTAssertEqual(attention.applied, 12 * attention.stored)
        XCTAssertGreaterThan(b.applied, b.total)
        let bert = try ModelStore.parameterBreakdown("bert-base-uncased")
        XCTAssertEqual(bert.applied, bert.total)
    }

    /// What a folder or checkpoint is counted as is what loading builds.
    func testFilesCountWhatLoads() throws {
        for fixture in ["tiny-bert-mlm", "tiny-albert-groups2x2", "tiny-distilbert-mlm", "classifier-bert"] {
            let folder = Fixtures.path(fixture)
            let loaded = try ModelStore.load(folder).model
            let b = try ModelStore.parameterBreakdown(folder)
            XCTAssertEqual(b.total, loaded.layout.modelCount, fixture)
            XCTAssertEqual(b, ParameterBreakdown(name: folder, layout: loaded.layout).withInt8Extras(of: loaded.layout), fixture)
        }
    }

    // MARK: what-if

    func whatIf(_ like: String, _ changes: ShapeChanges) throws -> ParameterReport.Model {
        let r = try ModelStore.parameterReport([], like: like, changes: changes)
        XCTAssertEqual(r.models.count, 2)
        XCTAssertEqual(r.models[0].name, like)
        return r.models[1]
    }

    /// Changing one published model into another gives the other's count (from counts.json):
    /// the defaults (head width and FFN ratio kept with --hidden) are the published ones.
    func testWhatIfReachesPublishedModels() throws {
        let refs = Dictionary(uniqueKeysWithValues: try Self.references().map { ($0.name, $0) })
        let cases: [(String, ShapeChanges, String)] = [
            ("bert-base-uncased", ShapeChanges(layers: 6, hidden: 384, heads: 12, intermediate: 1536), "sentence-transformers/all-MiniLM-L6-v2"),
            ("bert-base-uncased", ShapeChanges(layers: 24, hidden: 1024), "bert-large-uncased"),
            ("albert-base-v2", ShapeChanges(layers: 24, hidden: 1024), "albert-large-v2"),
            ("bert-base-uncased", ShapeChanges(embedding: 128, vocab: 30000, share: "all"), "albert-base-v2"),
            ("roberta-base", ShapeChanges(layers: 24, hidden: 1024), "roberta-large"),
            ("google/electra-small-discriminator", ShapeChanges(hidden: 768, embedding: 768), "google/electra-base-discriminator"),
            ("google/electra-base-generator", ShapeChanges(layers: 24, embedding: 1024), "google/electra-large-generator"),
            ("xlnet-base-cased", ShapeChanges(layers: 24, hidden: 1024), "xlnet-large-cased"),
            ("microsoft/deberta-base", ShapeChanges(layers: 24, hidden: 1024), "microsoft/deberta-large"),
            ("microsoft/deberta-v3-base", ShapeChanges(layers: 24, hidden: 1024), "microsoft/deberta-v3-large"),
            ("facebook/bart-base", ShapeChanges(layers: 12, hidden: 1024), "facebook/bart-large"),
            ("t5-base", ShapeChanges(layers: 24, hidden: 1024, heads: 16), "t5-large"),
            ("gpt2", ShapeChanges(layers: 24, hidden: 1024), "gpt2-medium"),
            ("openai-gpt", ShapeChanges(vocab: 50257, positions: 1024), "gpt2"),
        ]
        for (like, changes, target) in cases {
            let w = try whatIf(like, changes)
            let ref = try XCTUnwrap(refs[target], target)
            // GPT → GPT-2 differs by GPT-2's final LayerNorm (2 × 768), the one thing the options do not add.
            let adjust = target == "gpt2" ? 2 * 768 : 0
            XCTAssertEqual(w.total + adjust, ref.total, "\(like) with \(changes.summary) → \(target)")
            if target == "albert-base-v2" { XCTAssertEqual(w.applied, ref.applied?.total) }
        }
        let gpt3 = try XCTUnwrap(Self.counts()["gpt3"] as? [[String: Any]])
        XCTAssertEqual(try whatIf("gpt3-small", ShapeChanges(layers: 96, hidden: 12288)).total, gpt3[7]["computed"] as? Int)
    }

    /// The issue's example: a 6-layer, 384-wide ALBERT-style student of BERT-base, sized as the
    /// student builder would make it (heads and FFN from its rules; the base class keeps its
    /// pooler, which the builder's students drop).
    func testWhatIfIsWhatTheStudentBuilderBuilds() throws {
        let w = try whatIf("bert-base-uncased", ShapeChanges(layers: 6, hidden: 384, embedding: 128, share: "all"))
        XCTAssertEqual(w.shape.family, .albert)
        XCTAssertEqual(w.shape.sharing, .all)
        let teacher = try XCTUnwrap(Presets.encoder("bert-base-uncased", withHead: false))
        var planned = try StudentBuilder.plannedConfig(.albert(AlbertStudent(embeddingSize: 128, hiddenSize: 384, layers: 6, sharing: .all)),
                                                       teacher: teacher)
        XCTAssertEqual(w.shape.heads, planned.numHeads)
        XCTAssertEqual(w.shape.intermediateSize, planned.intermediateSize)
        planned.hasPooler = true
        let layout = ParameterLayout(config: planned)
        XCTAssertEqual(w.total, layout.count)
        XCTAssertEqual(w.sections, ParameterBreakdown(name: "what-if", layout: layout).sections)
        XCTAssertLessThan(w.total, 109_482_240 / 10)
        // One shared block applied six times.
        XCTAssertEqual(w.applied - w.total, 5 * ((try XCTUnwrap(w.sections.first { $0.name == "encoder" })).stored))
    }

    func testWhatIfRefusals() throws {
        func refused(_ like: String, _ changes: ShapeChanges, _ mentions: [String], line: UInt = #line) {
            XCTAssertThrowsError(try ModelStore.parameterReport([], like: like, changes: changes), line: line) { e in
                for m in mentions { XCTAssertTrue("\(e)".contains(m), "'\(e)' does not mention '\(m)'", line: line) }
            }
        }
        refused("bert-base-uncased", ShapeChanges(layers: 0), ["--layers", "0"])
        refused("bert-base-uncased", ShapeChanges(layers: -3), ["--layers", "-3"])
        refused("bert-base-uncased", ShapeChanges(layers: 1_000_000), ["--layers", "4,096"])
        refused("bert-base-uncased", ShapeChanges(hidden: Int.max), ["--hidden"])
        refused("bert-base-uncased", ShapeChanges(vocab: Int.min), ["--vocab"])
        refused("bert-base-uncased", ShapeChanges(hidden: 100), ["--hidden", "--heads"])
        refused("bert-base-uncased", ShapeChanges(hidden: 384, heads: 5), ["num_attention_heads", "5"])
        refused("t5-small", ShapeChanges(share: "all"), ["--share", "ALBERT"])
        refused("roberta-base", ShapeChanges(embedding: 128), ["--embedding", "RoBERTa"])
        refused("t5-small", ShapeChanges(positions: 1024), ["--positions", "T5"])
        refused("bert-base-uncased", ShapeChanges(decoderLayers: 2), ["--decoder-layers"])
        refused("xlm-mlm-en-2048", ShapeChanges(intermediate: 4096), ["--intermediate", "XLM"])
        refused("albert-base-v2", ShapeChanges(share: "most"), ["--share", "'most'", "attention"])
        refused("albert-base-v2", ShapeChanges(embedding: 100_000), ["--embedding", "65,536"])
        refused("bert-base-uncased", ShapeChanges(), ["--like"])
        refused("no-such-model", ShapeChanges(layers: 2), ["no-such-model", "preset"])
        XCTAssertThrowsError(try ModelStore.parameterReport(["bert-base-uncased"], changes: ShapeChanges(layers: 2))) { e in
            XCTAssertTrue("\(e)".contains("--like"), "\(e)")
        }
    }

    // MARK: FLOPs and bytes

    /// FLOPs per token: 2 × non-embedding parameters (per use) + 4 × S × attention width per
    /// attention layer; checked with counts.json's non-embedding counts.
    func testFLOPsPerToken() throws {
        let refs = Dictionary(uniqueKeysWithValues: try Self.references().map { ($0.name, $0) })
        let r = try ModelStore.parameterReport(["bert-base-uncased", "albert-base-v2", "t5-small", "gpt2"], sequenceLength: 128)
        XCTAssertEqual(r.sequenceLength, 128)
        let bert = refs["bert-base-uncased"]!, albert = refs["albert-base-v2"]!, t5 = refs["t5-small"]!, gpt2 = refs["gpt2"]!
        XCTAssertEqual(r.models[0].flopsPerToken, 2 * Double(bert.nonEmbedding) + 4 * 128 * 12 * 768)
        // ALBERT: the shared block counts once per layer it runs in.
        let albertApplied = albert.applied!.total - (albert.total - albert.nonEmbedding)
        XCTAssertEqual(r.models[1].flopsPerToken, 2 * Double(albertApplied) + 4 * 128 * 12 * 768)
        // T5: encoder self-attention, decoder self- and cross-attention, 8 heads × 64.
        XCTAssertEqual(r.models[2].flopsPerToken, 2 * Double(t5.nonEmbedding) + 4 * 128 * (6 * 512 + 2 * 6 * 512))
        XCTAssertEqual(r.models[3].flopsPerToken, 2 * Double(gpt2.nonEmbedding) + 4 * 128 * 12 * 768)
        // Close to the encoder's exact multiply count (which leaves out biases, norms and the pooler).
        let exact = Presets.encoder("bert-base-uncased", withHead: false)!.forwardFLOPs(B: 1, S: 128) / 128
        XCTAssertEqual(r.models[0].flopsPerToken / exact, 1, accuracy: 0.01)
        // Beyond a model's positions is allowed, and said.
        let long = try ModelStore.parameterReport(["bert-base-uncased", "t5-small"], sequenceLength: 2048)
        XCTAssertTrue(long.models[0].notes.contains { $0.contains("512 positions") })
        XCTAssertFalse(long.models[1].notes.contains { $0.contains("positions it was built for") })
    }

    /// fp32 and bf16 bytes are 4 and 2 a parameter; int8 bytes are what `distill quantize` writes
    /// for the encoders Distillery runs, tensor by tensor.
    func testBytesAreWhatCheckpointsStore() throws {
        let dir = Fixtures.temporaryDirectory + "/param-bytes"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for fixture in ["tiny-bert-mlm", "tiny-albert-groups2x2", "tiny-distilbert-mlm"] {
            let fp32 = dir + "/\(fixture).safetensors.zst", int8 = dir + "/\(fixture)-int8.safetensors.zst"
            try ModelStore.saveCheckpoint(try ModelStore.load(Fixtures.path(fixture)), to: fp32)
            _ = try Quantizer.quantize(input: fp32, output: int8)
            func stored(_ path: String) throws -> Int { try Checkpoint(path: path).tensors.reduce(0) { $0 + $1.byteCount } }
            let b = try ModelStore.parameterBreakdown(fp32)
            XCTAssertEqual(b.bytes.fp32, try stored(fp32), fixture)
            XCTAssertEqual(b.bytes.bf16, 2 * b.total)
            XCTAssertEqual(b.bytes.int8, try stored(int8), fixture)
            XCTAssertEqual(try ModelStore.parameterBreakdown(int8).bytes, b.bytes)
        }
        // The rule for the families only counted: a byte per matrix parameter, a scale per row.
        var builder = BreakdownBuilder()
        builder.matrix("encoder", "FFN", .ffn, rows: 3, cols: 4, bias: true)
        builder.norms("encoder", 4)
        let b = builder.breakdown(name: "tiny", attentionWidths: 0)
        XCTAssertEqual(b.total, 12 + 3 + 8)
        XCTAssertEqual(b.bytes, ParameterBreakdown.Bytes(fp32: 4 * 23, bf16: 2 * 23, int8: 12 + 4 * 3 + 4 * (3 + 8)))
    }

    // MARK: config.json

    func write(_ name: String, _ json: String) throws -> String {
        let dir = Fixtures.temporaryDirectory + "/param-configs"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/\(name).json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testConfigErrorsNameTheFileAndField() throws {
        func refused(_ json: String, _ mentions: [String], line: UInt = #line) throws {
            let path = try write("bad-\(line)", json)
            XCTAssertThrowsError(try ModelStore.parameterBreakdown(path), line: line) { e in
                for m in [path] + mentions { XCTAssertTrue("\(e)".contains(m), "'\(e)' does not mention '\(m)'", line: line) }
            }
        }
        try refused(#"{"model_type": "mamba"}"#, ["'mamba'", "roberta", "t5", "gpt2"])
        try refused(#"{"n_layer": 2}"#, ["model_type is missing"])
        try refused(#"{"model_type": "gpt2", "n_layer": -3}"#, ["n_layer", "-3"])
        try refused(#"{"model_type": "gpt2", "n_layer": 1e30}"#, ["n_layer"])
        try refused(#"{"model_type": "gpt2", "n_layer": 123456789012345678901234567890}"#, ["n_layer"])
        try refused(#"{"model_type": "gpt2", "n_embd": "wide"}"#, ["n_embd", "integer"])
        try refused(#"{"model_type": "gpt2", "n_embd": 100, "n_head": 7}"#, ["n_head", "100"])
        try refused(#"{"model_type": "t5", "num_heads": 4096, "d_kv": 65536}"#, ["d_kv"])
        try refused(#"{"model_type": "t5", "num_layers": 4097}"#, ["num_layers", "4,096"])
        try refused(#"{"model_type": "bart", "decoder_layers": 0}"#, ["decoder_layers"])
        try refused(#"{"model_type": "xlnet", "d_model": 768, "n_head": 12, "d_head": 32}"#, ["d_head", "64"])
        try refused(#"{"model_type": "deberta-v2", "conv_kernel_size": 3}"#, ["conv_kernel_size"])
        try refused(#"{"model_type": "deberta", "pos_att_type": "p2p"}"#, ["pos_att_type", "p2p"])
        try refused(#"{"model_type": "roberta", "position_embedding_type": "relative_key"}"#, ["position_embedding_type"])
        try refused(#"{"model_type": "electra", "embedding_size": 0}"#, ["embedding_size"])
        try refused(#"{"model_type": "t5", "feed_forward_proj": "fast-gated-gelu"}"#, ["feed_forward_proj"])
        try refused(#"[1, 2]"#, ["not a JSON object"])
        try refused(#"{"model_type": "bert", "num_hidden_layers": -1}"#, ["num_hidden_layers"])
        // A config.json with nothing but model_type counts transformers' defaults.
        XCTAssertEqual(try ModelStore.parameterBreakdown(try write("t5-defaults", #"{"model_type": "t5"}"#)).total,
                       try ModelStore.parameterBreakdown("t5-small").total)
        XCTAssertEqual(try ModelStore.parameterBreakdown(try write("gpt2-defaults", #"{"model_type": "gpt2"}"#)).total,
                       try ModelStore.parameterBreakdown("gpt2").total)
    }

    func testPresetNames() throws {
        XCTAssertEqual(Presets.find("all-MiniLM-L6-v2")?.name, "sentence-transformers/all-MiniLM-L6-v2")
        XCTAssertEqual(Presets.find("ELECTRA-SMALL-DISCRIMINATOR")?.name, "google/electra-small-discriminator")
        XCTAssertEqual(Presets.find("gpt3-1.3b")?.name, "gpt3-xl")
        XCTAssertNil(Presets.find("gpt4"))
        XCTAssertThrowsError(try ModelStore.parameterBreakdown("bert-base-uncased:xl")) { e in
            XCTAssertTrue("\(e)".contains("T5: t5-small"), "\(e)")
        }
        XCTAssertThrowsError(try ModelStore.parameterBreakdown(Fixtures.path("tiny-bert-mlm") + ":mlm")) { e in
            XCTAssertTrue("\(e)".contains("config.json"), "\(e)")
        }
        // Run by Distillery: an encoder config; count-only families have none.
        XCTAssertNotNil(Presets.encoder("all-MiniLM-L6-v2", withHead: true))
        XCTAssertNil(Presets.encoder("roberta-base", withHead: false))
        let groups = Presets.byFamily.map(\.family)
        XCTAssertEqual(groups.count, Set(groups).count)
        XCTAssertEqual(groups.count, ModelShape.Family.allCases.count)
    }

    func testReportRefusals() throws {
        XCTAssertThrowsError(try ModelStore.parameterReport(["gpt2"], sequenceLength: 0)) { e in XCTAssertTrue("\(e)".contains("--seq-len")) }
        XCTAssertThrowsError(try ModelStore.parameterReport([])) { e in XCTAssertTrue("\(e)".contains("at least one model")) }
    }

    func testReportJSON() throws {
        let r = try ModelStore.parameterReport(["t5-small"], like: "bert-base-uncased", changes: ShapeChanges(layers: 6))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as! [String: Any]
        XCTAssertEqual(json["sequenceLength"] as? Int, 128)
        let models = json["models"] as! [[String: Any]]
        XCTAssertEqual(models.map { $0["name"] as? String }, ["bert-base-uncased", "what-if", "t5-small"])
        let sections = models[2]["sections"] as! [[String: Any]]
        XCTAssertEqual(sections.map { $0["name"] as? String }, ["embeddings", "encoder", "decoder"])
        XCTAssertEqual(sections.reduce(0) { $0 + ($1["stored"] as! Int) }, models[2]["total"] as? Int)
        XCTAssertNotNil((models[1]["bytes"] as? [String: Any])?["int8"])
        XCTAssertEqual(try JSONDecoder().decode(ParameterReport.self, from: JSONEncoder().encode(r)), r)
    }
}

extension ParameterBreakdown {
    func withInt8Extras(of layout: ParameterLayout) -> ParameterBreakdown {
        var b = self
        b.int8ExtraFloats = Quantizer.extraValues(layout)
        return b
    }
}
