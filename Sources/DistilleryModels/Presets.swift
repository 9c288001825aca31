import Foundation

/// A published model's shape under its Hugging Face name (the base class; ":mlm" picks the LM
/// class), with where its numbers come from.
public struct Preset: Sendable, Equatable {
    public let name: String
    /// Other names it answers to (besides the part after an organisation's "/").
    public let aliases: [String]
    public let shape: ModelShape
    public let source: String
    public let note: String?
}

/// The models the field compares, as data: one row per model, the dimensions of its config.json
/// (or, for GPT-3, of the paper's table). Family-wide settings (DeBERTa's attention, T5's
/// buckets) are the published configs' values.
public enum Presets {
    static let hf = "Hugging Face config.json (copies in Tests/DistilleryTests/Fixtures/param-counts/configs)"
    static let paper = "GPT-3 paper, Table 2.1 (Brown et al. 2020, arXiv:2005.14165): n_layers, d_model, n_heads, n_ctx 2048; "
        + "GPT-2's vocabulary (50,257) and d_ff = 4 × d_model, biases, learned positions, LM head tied"

    private static let debertaV1 = ModelShape.DebertaOptions(relativeAttention: true, maxRelativePositions: -1, positionBiasedInput: false,
                                                             c2p: true, p2c: true)
    private static let debertaV3 = ModelShape.DebertaOptions(relativeAttention: true, maxRelativePositions: -1, positionBuckets: 256,
                                                             positionBiasedInput: false, c2p: true, p2c: true,
                                                             shareAttentionKey: true, normRelativeEmbeddings: true)

    /// One row of the table.
    private static func row(_ name: String, _ family: ModelShape.Family, V: Int, H: Int, E: Int? = nil, L: Int, Ld: Int = 0,
                            heads: Int, dHead: Int? = nil, I: Int, Id: Int = 0, P: Int, T: Int = 0, sharing: LayerSharing = .none,
                            deberta: ModelShape.DebertaOptions? = nil, t5: ModelShape.T5Options? = nil,
                            aliases: [String] = [], source: String = hf, note: String? = nil) -> Preset {
        Preset(name: name, aliases: aliases,
               shape: ModelShape(family: family, vocabSize: V, hiddenSize: H, embeddingSize: E, layers: L, decoderLayers: Ld,
                                 heads: heads, headDim: dHead, intermediateSize: I, decoderIntermediateSize: Id, positions: P,
                                 typeVocabSize: T, sharing: sharing, deberta: deberta, t5: t5),
               source: source, note: note)
    }

    public static let all: [Preset] = [
        row("bert-base-uncased", .bert, V: 30522, H: 768, L: 12, heads: 12, I: 3072, P: 512, T: 2),
        row("bert-large-uncased", .bert, V: 30522, H: 1024, L: 24, heads: 16, I: 4096, P: 512, T: 2),
        row("sentence-transformers/all-MiniLM-L6-v2", .bert, V: 30522, H: 384, L: 6, heads: 12, I: 1536, P: 512, T: 2),
        row("distilbert-base-uncased", .distilbert, V: 30522, H: 768, L: 6, heads: 12, I: 3072, P: 512),
        row("albert-base-v2", .albert, V: 30000, H: 768, E: 128, L: 12, heads: 12, I: 3072, P: 512, T: 2, sharing: .all),
        row("albert-large-v2", .albert, V: 30000, H: 1024, E: 128, L: 24, heads: 16, I: 4096, P: 512, T: 2, sharing: .all),
        row("albert-xlarge-v2", .albert, V: 30000, H: 2048, E: 128, L: 24, heads: 16, I: 8192, P: 512, T: 2, sharing: .all),
        row("albert-xxlarge-v2", .albert, V: 30000, H: 4096, E: 128, L: 12, heads: 64, I: 16384, P: 512, T: 2, sharing: .all),
        row("roberta-base", .roberta, V: 50265, H: 768, L: 12, heads: 12, I: 3072, P: 514, T: 1),
        row("roberta-large", .roberta, V: 50265, H: 1024, L: 24, heads: 16, I: 4096, P: 514, T: 1),
        row("google/electra-small-discriminator", .electra, V: 30522, H: 256, E: 128, L: 12, heads: 4, I: 1024, P: 512, T: 2),
        row("google/electra-base-discriminator", .electra, V: 30522, H: 768, E: 768, L: 12, heads: 12, I: 3072, P: 512, T: 2),
        row("google/electra-large-discriminator", .electra, V: 30522, H: 1024, E: 1024, L: 24, heads: 16, I: 4096, P: 512, T: 2),
        row("google/electra-small-generator", .electra, V: 30522, H: 256, E: 128, L: 12, heads: 4, I: 1024, P: 512, T: 2),
        row("google/electra-base-generator", .electra, V: 30522, H: 256, E: 768, L: 12, heads: 4, I: 1024, P: 512, T: 2),
        row("google/electra-large-generator", .electra, V: 30522, H: 256, E: 1024, L: 24, heads: 4, I: 1024, P: 512, T: 2),
        row("xlnet-base-cased", .xlnet, V: 32000, H: 768, L: 12, heads: 12, I: 3072, P: 0),
        row("xlnet-large-cased", .xlnet, V: 32000, H: 1024, L: 24, heads: 16, I: 4096, P: 0),
        row("microsoft/deberta-base", .deberta, V: 50265, H: 768, L: 12, heads: 12, I: 3072, P: 512, deberta: debertaV1),
        row("microsoft/deberta-large", .deberta, V: 50265, H: 1024, L: 24, heads: 16, I: 4096, P: 512, deberta: debertaV1),
        row("microsoft/deberta-v3-base", .debertaV2, V: 128100, H: 768, L: 12, heads: 12, I: 3072, P: 512, deberta: debertaV3),
        row("microsoft/deberta-v3-large", .debertaV2, V: 128100, H: 1024, L: 24, heads: 16, I: 4096, P: 512, deberta: debertaV3),
        row("xlm-mlm-en-2048", .xlm, V: 30145, H: 2048, L: 12, heads: 16, I: 8192, P: 512),
        row("facebook/bart-base", .bart, V: 50265, H: 768, L: 6, Ld: 6, heads: 12, I: 3072, Id: 3072, P: 1024),
        row("facebook/bart-large", .bart, V: 50265, H: 1024, L: 12, Ld: 12, heads: 16, I: 4096, Id: 4096, P: 1024),
        row("t5-small", .t5, V: 32128, H: 512, L: 6, Ld: 6, heads: 8, dHead: 64, I: 2048, P: 0, t5: .init()),
        row("t5-base", .t5, V: 32128, H: 768, L: 12, Ld: 12, heads: 12, dHead: 64, I: 3072, P: 0, t5: .init()),
        row("t5-large", .t5, V: 32128, H: 1024, L: 24, Ld: 24, heads: 16, dHead: 64, I: 4096, P: 0, t5: .init()),
        row("t5-3b", .t5, V: 32128, H: 1024, L: 24, Ld: 24, heads: 32, dHead: 128, I: 16384, P: 0, t5: .init()),
        row("t5-11b", .t5, V: 32128, H: 1024, L: 24, Ld: 24, heads: 128, dHead: 128, I: 65536, P: 0, t5: .init()),
        row("openai-gpt", .openaiGPT, V: 40478, H: 768, L: 12, heads: 12, I: 3072, P: 512),
        row("gpt2", .gpt2, V: 50257, H: 768, L: 12, heads: 12, I: 3072, P: 1024),
        row("gpt2-medium", .gpt2, V: 50257, H: 1024, L: 24, heads: 16, I: 4096, P: 1024),
        row("gpt2-large", .gpt2, V: 50257, H: 1280, L: 36, heads: 20, I: 5120, P: 1024),
        row("gpt2-xl", .gpt2, V: 50257, H: 1600, L: 48, heads: 25, I: 6400, P: 1024),
        row("gpt3-small", .gpt3, V: 50257, H: 768, L: 12, heads: 12, I: 3072, P: 2048, aliases: ["gpt3-125m"], source: paper),
        row("gpt3-medium", .gpt3, V: 50257, H: 1024, L: 24, heads: 16, I: 4096, P: 2048, aliases: ["gpt3-350m"], source: paper,
            note: "the paper's 350M is nominal: this shape has 355.9M (+1.7%)"),
        row("gpt3-large", .gpt3, V: 50257, H: 1536, L: 24, heads: 16, I: 6144, P: 2048, aliases: ["gpt3-760m"], source: paper),
        row("gpt3-xl", .gpt3, V: 50257, H: 2048, L: 24, heads: 24, I: 8192, P: 2048, aliases: ["gpt3-1.3b"], source: paper,
            note: "the paper prints 24 heads × d_head 128 = 3072 ≠ d_model 2048; counted with attention width d_model, which gives its 1.3B (3072 would give 1.5B)"),
        row("gpt3-2.7b", .gpt3, V: 50257, H: 2560, L: 32, heads: 32, I: 10240, P: 2048, source: paper),
        row("gpt3-6.7b", .gpt3, V: 50257, H: 4096, L: 32, heads: 32, I: 16384, P: 2048, source: paper),
        row("gpt3-13b", .gpt3, V: 50257, H: 5140, L: 40, heads: 40, I: 20560, P: 2048, source: paper,
            note: "the paper prints d_model 5140 but 40 heads × d_head 128 = 5120; counted with d_model 5140 as printed, which gives its 13.0B (5120 would give 12.9B)"),
        row("gpt3-175b", .gpt3, V: 50257, H: 12288, L: 96, heads: 96, I: 49152, P: 2048, source: paper,
            note: "the paper's 175.0B is rounded: this shape has 174.6B (−0.2%)"),
    ]

    /// The preset a name means: its full name, the part after the organisation ("all-MiniLM-L6-v2"),
    /// or an alias, ignoring case.
    public static func find(_ name: String) -> Preset? {
        let n = name.lowercased()
        return all.first { p in
            p.name.lowercased() == n || p.name.split(separator: "/").last.map { $0.lowercased() == n } == true
                || p.aliases.contains { $0.lowercased() == n }
        }
    }

    public static var names: [String] { all.map(\.name) }

    /// Preset names by family, in the order of `ModelShape.Family`, for help texts.
    public static var byFamily: [(family: ModelShape.Family, names: [String])] {
        ModelShape.Family.allCases.compactMap { f in
            let n = all.filter { $0.shape.family == f }.map(\.name)
            return n.isEmpty ? nil : (f, n)
        }
    }

    /// An encoder preset as Distillery runs it: the base class (pooler), or with `withHead` the
    /// masked-LM class (MLM head, no pooler). Nil for the families Distillery only counts.
    public static func encoder(_ name: String, withHead: Bool) -> EncoderConfig? {
        guard var s = find(name)?.shape else { return nil }
        s.head = withHead ? .lm : .base
        return s.encoderConfig
    }
}
