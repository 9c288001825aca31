import Foundation
import DistilleryTensor

/// What a component is, whatever the architecture: every breakdown sums into these five, the
/// split Tests/Scripts/param_counts.py uses for its reference counts (embedding-side projections
/// count as embeddings; a head's own LayerNorm counts with the head).
public enum ComponentKind: String, Codable, Sendable, CaseIterable {
    case embeddings, attention, ffn, norms, heads
}

/// Parameter counts broken down by section ("embeddings", "encoder", "decoder", "heads") and
/// component, stored (shared weights once) and applied (shared weights once per use in a
/// forward pass). Tied weights (an LM decoder tied to the word embeddings) are counted once,
/// where they are stored.
public struct ParameterBreakdown: Codable, Sendable, Equatable {
    public struct Component: Codable, Sendable, Equatable {
        public let name: String
        public let kind: ComponentKind
        public let stored: Int
        public let applied: Int
        /// An embedding table: gathered by row, not multiplied, so it is left out of the
        /// non-embedding count and of FLOPs.
        public let lookup: Bool
        /// Of `stored`, the parameters held in matrices (embedding tables included) and how
        /// many rows (output channels) those matrices have: int8 keeps these at one byte each
        /// plus one fp32 scale per row.
        public let matrixParameters: Int
        public let matrixRows: Int

        public init(name: String, kind: ComponentKind, stored: Int, applied: Int, lookup: Bool = false,
                    matrixParameters: Int = 0, matrixRows: Int = 0) {
            self.name = name; self.kind = kind; self.stored = stored; self.applied = applied; self.lookup = lookup
            self.matrixParameters = matrixParameters; self.matrixRows = matrixRows
        }
    }

    public struct Section: Codable, Sendable, Equatable {
        public let name: String
        public let components: [Component]
        public var stored: Int { components.reduce(0) { $0 + $1.stored } }
        public var applied: Int { components.reduce(0) { $0 + $1.applied } }
        public init(name: String, components: [Component]) { self.name = name; self.components = components }

        private enum CodingKeys: String, CodingKey { case name, components, stored, applied }

        /// Section totals are written too (for readers of the JSON), and ignored when read.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(components, forKey: .components)
            try c.encode(stored, forKey: .stored)
            try c.encode(applied, forKey: .applied)
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), components: try c.decode([Component].self, forKey: .components))
        }
    }

    public let name: String
    public let sections: [Section]
    /// The attention widths of every applied attention (self- and cross-attention), summed: one
    /// token attends over S positions in each, QKᵀ and A·V costing 2·S·width multiply-adds.
    public let attentionWidths: Int
    /// 4-byte values an int8 copy stores besides one scale per matrix row: Distillery's int8
    /// format keeps SmoothQuant factors, one per input column of each smoothed matrix, and
    /// the outlier channels' numbers and fp32 weight columns.
    public var int8ExtraFloats: Int
    /// What a reader should know about the count (tied weights, shared layers, sources).
    public var notes: [String]

    public init(name: String, sections: [Section], attentionWidths: Int, int8ExtraFloats: Int = 0, notes: [String] = []) {
        self.name = name; self.sections = sections; self.attentionWidths = attentionWidths
        self.int8ExtraFloats = int8ExtraFloats; self.notes = notes
    }

    /// Every component, section by section.
    public var components: [Component] { sections.flatMap(\.components) }
    public var total: Int { components.reduce(0) { $0 + $1.stored } }
    public var applied: Int { components.reduce(0) { $0 + $1.applied } }
    /// Total less the embedding tables: the N of Kaplan et al. (2020).
    public var nonEmbedding: Int { components.reduce(0) { $0 + ($1.lookup ? 0 : $1.stored) } }
    /// Non-embedding parameters once per use (ALBERT's shared layers count every time they run).
    public var appliedNonEmbedding: Int { components.reduce(0) { $0 + ($1.lookup ? 0 : $1.applied) } }

    public func total(_ kind: ComponentKind) -> Int { components.filter { $0.kind == kind }.reduce(0) { $0 + $1.stored } }
    public func applied(_ kind: ComponentKind) -> Int { components.filter { $0.kind == kind }.reduce(0) { $0 + $1.applied } }
    public func section(_ name: String) -> Section? { sections.first { $0.name == name } }
    public func component(_ section: String, _ name: String) -> Component? {
        self.section(section)?.components.first { $0.name == name }
    }

    /// Sections and components in one order for every model, so tables line up.
    public static let sectionOrder = ["embeddings", "encoder", "decoder", "heads"]
    public static let componentOrder = [
        "word", "word (untied)", "position", "token type", "language", "mask", "relative positions", "factorized projection",
        "relative position bias", "attention", "relative attention", "relative segments", "cross-attention", "FFN", "norms",
        "pooler", "MLM head", "discriminator head", "LM head", "LM decoder (untied)", "classifier",
    ]

    /// How FLOPs per token are estimated, for reports.
    public static let flopsRule = "FLOPs per token of one forward pass = 2 × non-embedding parameters (shared layers once per use) "
        + "+ 4 × S × the attention width of every attention layer (QKᵀ and A·V over S positions; cross-attention too); "
        + "seq2seq models: one source token through the encoder plus one target token through the decoder"

    /// Floating-point operations of one token's forward pass at sequence length S, after Kaplan
    /// et al. (2020): 2 per multiply-add of every non-embedding weight, and the attention
    /// products over S positions (both of them, over the full S × S as dense kernels compute it).
    public func flopsPerToken(sequenceLength S: Int) -> Double {
        2 * Double(appliedNonEmbedding) + 4 * Double(S) * Double(attentionWidths)
    }

    /// Bytes of the parameters in each storage format.
    public struct Bytes: Codable, Sendable, Equatable {
        public let fp32: Int
        public let bf16: Int
        public let int8: Int
        public init(fp32: Int, bf16: Int, int8: Int) { self.fp32 = fp32; self.bf16 = bf16; self.int8 = int8 }
    }

    /// How int8 bytes are counted, for reports.
    public static let int8Rule = "int8 bytes = 1 byte per matrix parameter (linear weights and embedding tables) + one fp32 "
        + "scale per matrix row (per output channel; per embedding row) + fp32 for every vector (biases, norms) "
        + "+ for the encoders Distillery runs, an fp32 token-type table "
        + "+ for the encoders Distillery runs, the fp32 SmoothQuant factors its int8 format stores (one per input "
        + "column of each smoothed matrix), exactly what `distill quantize` writes"

    /// fp32: 4 bytes a parameter; bf16: 2; int8 as `int8Rule` says.
    public var bytes: Bytes {
        let matrices = components.reduce(0) { $0 + $1.matrixParameters }
        let rows = components.reduce(0) { $0 + $1.matrixRows }
        return Bytes(fp32: 4 * total, bf16: 2 * total, int8: matrices + 4 * rows + 4 * (total - matrices) + 4 * int8ExtraFloats)
    }
}

extension ParameterBreakdown {
    /// The breakdown of an encoder Distillery runs, from its real layout (so what is counted is
    /// what is loaded): embeddings, the encoder's blocks (shared ALBERT blocks once per use in
    /// `applied`), and heads.
    public init(name: String, layout: ParameterLayout) {
        var attentionUses: [Int: Int] = [:], ffnUses: [Int: Int] = [:]
        for s in layout.steps { attentionUses[s.attention, default: 0] += 1; ffnUses[s.ffn, default: 0] += 1 }
        var b = BreakdownBuilder()
        for slot in layout.slots where slot.group != .distillProjection {
            var uses = 1
            let parts = slot.name.split(separator: ".")
            if parts.count > 1, let i = Int(parts[1]) {
                if parts[0] == "attention" { uses = attentionUses[i] ?? 0 }
                if parts[0] == "ffn" { uses = ffnUses[i] ?? 0 }
            }
            let section = parts[0] == "embeddings" ? "embeddings" : (parts[0] == "attention" || parts[0] == "ffn") ? "encoder" : "heads"
            let (component, kind, lookup) = Self.component(of: slot.group)
            if slot.shape.count == 2 && !ParameterGroup.keptFP32InInt8.contains(slot.group) {
                b.matrix(section, component, kind, rows: slot.shape[0], cols: slot.shape[1], uses: uses, lookup: lookup)
            } else if slot.shape.count == 2 {
                // A table int8 checkpoints keep in fp32: rows of fp32 values, no scales.
                b.vector(section, component, kind, slot.shape[1], count: slot.shape[0], uses: uses, lookup: lookup)
            } else {
                b.vector(section, component, kind, slot.count, uses: uses)
            }
        }
        var notes: [String] = []
        if layout.config.hasMLMHead { notes.append("MLM decoder tied to the word embeddings: counted once, under embeddings") }
        if layout.steps.count > max(layout.attention.count, layout.ffn.count) {
            notes.append("shared layers: \(layout.attention.count) attention and \(layout.ffn.count) FFN block(s) stored, "
                         + "applied in \(layout.steps.count) layers per forward")
        }
        self = b.breakdown(name: name, attentionWidths: layout.steps.count * layout.config.hiddenSize, notes: notes)
    }

    /// Where a slot group sits in a breakdown: its component name, kind and whether it is a table.
    static func component(of group: ParameterGroup) -> (String, ComponentKind, Bool) {
        switch group {
        case .wordEmbeddings: return ("word", .embeddings, true)
        case .positionEmbeddings: return ("position", .embeddings, true)
        case .typeEmbeddings: return ("token type", .embeddings, true)
        case .embeddingProjection: return ("factorized projection", .embeddings, false)
        case .attention: return ("attention", .attention, false)
        case .ffn: return ("FFN", .ffn, false)
        case .layerNorm: return ("norms", .norms, false)
        case .pooler: return ("pooler", .heads, false)
        case .mlmHead: return ("MLM head", .heads, false)
        case .classifier: return ("classifier", .heads, false)
        case .distillProjection: return ("distillation projection", .heads, false)
        }
    }
}

/// Accumulates a breakdown tensor by tensor. Products and sums are checked: a shape whose count
/// does not fit in 64 bits sets `overflowed` instead of trapping.
public struct BreakdownBuilder: Sendable {
    private struct Entry { var kind: ComponentKind; var lookup: Bool; var stored = 0, applied = 0, matrix = 0, rows = 0 }
    private var order: [(section: String, component: String)] = []
    private var entries: [String: [String: Entry]] = [:]
    private var sectionsSeen: [String] = []
    public private(set) var overflowed = false

    public init() {}

    private mutating func product(_ xs: Int...) -> Int {
        var p = 1
        for x in xs {
            let (r, o) = p.multipliedReportingOverflow(by: x)
            if o || x < 0 { overflowed = true; return 0 }
            p = r
        }
        return p
    }

    private mutating func sum(_ a: Int, _ b: Int) -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        if o { overflowed = true; return 0 }
        return r
    }

    private mutating func add(_ section: String, _ component: String, _ kind: ComponentKind, lookup: Bool,
                              params: Int, uses: Int, matrix: Int, rows: Int) {
        if entries[section] == nil { entries[section] = [:]; sectionsSeen.append(section) }
        if entries[section]![component] == nil {
            entries[section]![component] = Entry(kind: kind, lookup: lookup)
            order.append((section, component))
        }
        var e = entries[section]![component]!
        e.stored = sum(e.stored, params)
        e.applied = sum(e.applied, product(params, uses))
        e.matrix = sum(e.matrix, matrix)
        e.rows = sum(e.rows, rows)
        entries[section]![component] = e
    }

    /// `count` matrices [rows × cols] (rows: output features, or table rows), each with a bias of
    /// `rows` when `bias`.
    public mutating func matrix(_ section: String, _ component: String, _ kind: ComponentKind, rows: Int, cols: Int,
                                count: Int = 1, bias: Bool = false, uses: Int = 1, lookup: Bool = false) {
        let m = product(rows, cols, count), r = product(rows, count)
        add(section, component, kind, lookup: lookup, params: m, uses: uses, matrix: m, rows: r)
        if bias { add(section, component, kind, lookup: lookup, params: r, uses: uses, matrix: 0, rows: 0) }
    }

    /// An embedding table [rows × width].
    public mutating func table(_ section: String, _ component: String, rows: Int, width: Int) {
        matrix(section, component, .embeddings, rows: rows, cols: width, lookup: true)
    }

    /// `count` vectors of `size` (biases, norm weights, learned offsets).
    public mutating func vector(_ section: String, _ component: String, _ kind: ComponentKind, _ size: Int,
                                count: Int = 1, uses: Int = 1, lookup: Bool = false) {
        add(section, component, kind, lookup: lookup, params: product(size, count), uses: uses, matrix: 0, rows: 0)
    }

    /// `count` LayerNorms of width `size` (weight and bias; RMSNorm: weight only).
    public mutating func norms(_ section: String, _ size: Int, count: Int = 1, bias: Bool = true) {
        vector(section, "norms", .norms, size, count: bias ? product(2, count) : count)
    }

    static var sectionOrder: [String] { ParameterBreakdown.sectionOrder }
    static var componentOrder: [String] { ParameterBreakdown.componentOrder }

    public func breakdown(name: String, attentionWidths: Int, notes: [String] = []) -> ParameterBreakdown {
        // By rank in ParameterBreakdown's orders, then (names not in them) in the order they came.
        func ordered<T>(_ xs: [T], _ list: [String], _ key: (T) -> String) -> [T] {
            xs.enumerated().sorted { a, b in
                let (ra, rb) = (list.firstIndex(of: key(a.element)) ?? list.count, list.firstIndex(of: key(b.element)) ?? list.count)
                return ra != rb ? ra < rb : a.offset < b.offset
            }.map(\.element)
        }
        let sections = ordered(sectionsSeen, Self.sectionOrder, { $0 }).map { s in
            ParameterBreakdown.Section(name: s, components: ordered(order.filter { $0.section == s }, Self.componentOrder, { $0.component }).map { key in
                let e = entries[s]![key.component]!
                return ParameterBreakdown.Component(name: key.component, kind: e.kind, stored: e.stored, applied: e.applied,
                                                    lookup: e.lookup, matrixParameters: e.matrix, matrixRows: e.rows)
            })
        }
        return ParameterBreakdown(name: name, sections: sections, attentionWidths: attentionWidths, notes: notes)
    }
}

extension EncoderConfig {
    /// Floating-point operations of one encoder forward pass over B × S tokens (a multiply-add
    /// counts 2): the linear layers, the attention products, and ALBERT's projection.
    public func forwardFLOPs(B: Int, S: Int) -> Double {
        let N = Double(B * S), H = Double(hiddenSize), I = Double(intermediateSize)
        let steps = Double(ParameterLayout(config: self).steps.count)
        let linear = 2 * N * (4 * H * H + 2 * H * I)
        let attention = 2 * 2 * Double(B) * Double(S) * Double(S) * H
        let projection = hasEmbeddingProjection ? 2 * N * Double(embeddingSize) * H : 0
        return steps * (linear + attention) + projection
    }
}
