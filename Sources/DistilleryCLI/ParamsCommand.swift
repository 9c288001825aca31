import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryQuant
import DistilleryTraining
import DistilleryModels

struct ParamsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "params",
        abstract: "Parameters by component, FLOPs per token and bytes, several models side by side, or a what-if student beside its original.",
        discussion: """
        MODEL is a preset, a config.json, a Hugging Face folder or a .safetensors.zst checkpoint. A \
        preset counts the base model class (with a pooler where the family's base class has one); \
        add ":mlm" for the LM class (the MLM head of BERT-like models, the tied LM head of GPT and \
        T5), e.g. bert-base-uncased:mlm. A config.json counts the class its "architectures" names \
        (":mlm" or ":base" chooses); a folder or checkpoint, the heads its tensors have. Tied weights \
        are counted once. Shared (ALBERT) layers are counted once in "total" and once per use in \
        "applied per forward". Ratios are to the first model.

        Presets, by family (names also answer without the organisation, e.g. all-MiniLM-L6-v2):
        \(presetList)
        (GPT-3 from the paper's Table 2.1; the others from their Hugging Face config.json.)

        What-if: size a student before building it. --like MODEL with any of --layers, \
        --decoder-layers, --hidden, --heads, --intermediate, --embedding, --vocab, --positions, \
        --share prints MODEL and the changed model side by side:

          distill params --like bert-base-uncased \\
              --layers 6 --hidden 384 --embedding 128 --share all

        With --hidden alone, the head width and the FFN ratio are kept. --embedding and --share make \
        a BERT or DistilBERT ALBERT-style (as builder = "albert" does).

        FLOPs per token: 2 × non-embedding parameters (shared layers once per use) + 4 × S × the \
        width of each attention (QKᵀ and A·V over S positions), at S = --seq-len (default 128; \
        seq2seq: a source token through the encoder and a target token through the decoder). \
        Bytes: fp32 4 and bf16 2 a parameter; int8 1 a matrix parameter (weights and embedding \
        tables, as distill quantize stores them) plus one fp32 scale per matrix row, vectors in \
        fp32, and for the encoders Distillery runs the smoothing factors its int8 format keeps.
        """)

    /// The presets, a family a line, wrapped by hand under 80 columns (help wraps longer lines
    /// without indenting them).
    static var presetList: String {
        Presets.byFamily.map { family, names in
            var lines = ["  \(family.title): "]
            for (i, n) in names.enumerated() {
                let item = n + (i < names.count - 1 ? "," : "")
                if lines[lines.count - 1].count + item.count > 78 { lines.append("      ") }
                lines[lines.count - 1] += (lines[lines.count - 1].hasSuffix(" ") ? "" : " ") + item
            }
            return lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    @Argument(help: "Models to compare: presets, config.json files, Hugging Face folders, checkpoints.")
    var models: [String] = []
    @Option(name: .long, help: ArgumentHelp("The model a what-if changes; it is shown first, the what-if beside it.", valueName: "model"))
    var like: String?
    @Option(name: .long, help: "What-if: layers (seq2seq: encoder and decoder).")
    var layers: Int?
    @Option(name: .customLong("decoder-layers"), help: "What-if: decoder layers (BART, T5).")
    var decoderLayers: Int?
    @Option(name: .long, help: "What-if: hidden size (d_model).")
    var hidden: Int?
    @Option(name: .long, help: "What-if: attention heads.")
    var heads: Int?
    @Option(name: .long, help: "What-if: FFN width (intermediate_size, d_ff).")
    var intermediate: Int?
    @Option(name: .long, help: "What-if: embedding width E (ALBERT-style factorized embeddings).")
    var embedding: Int?
    @Option(name: .long, help: "What-if: vocabulary size.")
    var vocab: Int?
    @Option(name: .long, help: "What-if: learned positions (max_position_embeddings).")
    var positions: Int?
    @Option(name: .long, help: ArgumentHelp("What-if: cross-layer sharing: all, attention, ffn or none.", valueName: "sharing"))
    var share: String?
    @Option(name: .customLong("seq-len"), help: "Sequence length S of the FLOPs per token.")
    var seqLen = 128
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let changes = ShapeChanges(layers: layers, decoderLayers: decoderLayers, hidden: hidden, heads: heads,
                                   intermediate: intermediate, embedding: embedding, vocab: vocab, positions: positions, share: share)
        let report = try ModelStore.parameterReport(models, like: like, changes: changes, sequenceLength: seqLen)
        print(json ? try jsonText(report) : ParamsTable.render(report))
    }
}

/// The table `distill params` prints: shape, components by section, totals, FLOPs and bytes.
enum ParamsTable {
    static func render(_ r: ParameterReport) -> String {
        let m = r.models
        var t = TextTable(["", "component"] + m.enumerated().flatMap { j, x in j == 0 ? [x.name] : [x.name, "×"] }, textColumns: 2)
        func ratio(_ x: Double, _ base: Double) -> String { base == 0 ? (x == 0 ? "" : "new") : fixed(x / base, 2) }
        func row(_ section: String, _ label: String, _ values: [Double?], format: (Double) -> String, ratios: Bool = true) {
            let first = values.first ?? nil
            t.add([section, label] + values.enumerated().flatMap { j, v -> [String] in
                let text = v.map(format) ?? "—"
                if j == 0 { return [text] }
                return [text, ratios ? (v.map { ratio($0, first ?? 0) } ?? "") : ""]
            })
        }
        func text(_ section: String, _ label: String, _ values: [String]) {
            t.add([section, label] + values.enumerated().flatMap { j, v in j == 0 ? [v] : [v, ""] })
        }

        // The shape: what a what-if changed, and what followed.
        func layers(_ s: ModelShape) -> String { s.family.isSeq2Seq ? "\(s.layers) + \(s.decoderLayers)" : "\(s.layers)" }
        text("shape", "family", m.map { $0.shape.family.title + ($0.shape.head == .base ? "" : " (\($0.shape.head.rawValue))") })
        text("", "layers", m.map { layers($0.shape) })
        text("", "hidden", m.map { "\($0.shape.hiddenSize)" })
        text("", "heads", m.map { s in "\(s.shape.heads)" + (s.shape.headDim.map { " × \($0)" } ?? "") })
        text("", "FFN", m.map { "\($0.shape.intermediateSize)" })
        text("", "embedding", m.map { "\($0.shape.embeddingSize)" })
        text("", "vocabulary", m.map { "\($0.shape.vocabSize)" })
        if m.contains(where: { $0.shape.sharing != .none }) {
            text("", "sharing", m.map { s in LayerSharing.studentChoices.first { $0.sharing == s.shape.sharing }?.name ?? "groups" })
        }
        t.separator()

        // Components, section by section, in the union of every model's order.
        var keys: [(section: String, name: String)] = []
        for x in m { for s in x.sections { for c in s.components where !keys.contains(where: { $0 == (s.name, c.name) }) { keys.append((s.name, c.name)) } } }
        func rank(_ list: [String], _ x: String) -> Int { list.firstIndex(of: x) ?? list.count }
        keys = keys.enumerated().sorted { a, b in
            let ka = (rank(ParameterBreakdown.sectionOrder, a.element.section), rank(ParameterBreakdown.componentOrder, a.element.name))
            let kb = (rank(ParameterBreakdown.sectionOrder, b.element.section), rank(ParameterBreakdown.componentOrder, b.element.name))
            return ka != kb ? ka < kb : a.offset < b.offset
        }.map(\.element)
        var previous = ""
        for key in keys {
            let values = m.map { x in x.sections.first { $0.name == key.section }?.components.first { $0.name == key.name }.map { Double($0.stored) } }
            row(key.section == previous ? "" : key.section, key.name, values, format: { grouped(Int($0)) })
            previous = key.section
        }
        t.separator()
        row("total", "stored", m.map { Double($0.total) }, format: { grouped(Int($0)) })
        if m.contains(where: { $0.applied != $0.total }) {
            row("", "applied per forward", m.map { Double($0.applied) }, format: { grouped(Int($0)) })
        }
        row("", "non-embedding", m.map { Double($0.nonEmbedding) }, format: { grouped(Int($0)) })
        row("", "FLOPs/token, S = \(r.sequenceLength)", m.map(\.flopsPerToken), format: { si($0, "FLOP") })
        row("bytes", "fp32", m.map { Double($0.bytes.fp32) }, format: { si($0, "B") })
        row("", "bf16", m.map { Double($0.bytes.bf16) }, format: { si($0, "B") })
        row("", "int8", m.map { Double($0.bytes.int8) }, format: { si($0, "B") })

        var out = t.render()
        let notes = m.flatMap { x in x.notes.map { "\(x.name): \($0)" } }
        if !notes.isEmpty { out += "\n\n" + notes.joined(separator: "\n") }
        return out
    }

    /// 171.6 MFLOP, 437.9 MB: four significant digits, decimal prefixes.
    static func si(_ x: Double, _ unit: String) -> String {
        let prefixes = ["", "k", "M", "G", "T", "P", "E"]
        var v = x, i = 0
        while abs(v) >= 1000 && i < prefixes.count - 1 { v /= 1000; i += 1 }
        let digits = abs(v) >= 100 ? 1 : abs(v) >= 10 ? 2 : 3
        return (i == 0 ? String(Int(v.rounded())) : fixed(v, digits)) + " " + prefixes[i] + unit
    }
}
