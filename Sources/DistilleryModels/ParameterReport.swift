import Foundation

/// A model `distill params` counts: its name, where its shape came from, and the shape.
public struct CountedModel: Sendable, Equatable {
    public var name: String
    /// "preset: …", "config.json", "Hugging Face folder", "checkpoint", "what-if: …".
    public var source: String
    public var shape: ModelShape
    public var notes: [String]
    public init(name: String, source: String, shape: ModelShape, notes: [String] = []) {
        self.name = name; self.source = source; self.shape = shape; self.notes = notes
    }
}

/// What `distill params` prints (as a table, or as this JSON with --json): per model its shape,
/// breakdown, totals, FLOPs per token at one sequence length and bytes in fp32, bf16 and int8.
public struct ParameterReport: Codable, Sendable, Equatable {
    public struct Model: Codable, Sendable, Equatable {
        public let name: String
        public let source: String
        public let shape: ModelShape
        public let total: Int
        public let applied: Int
        public let nonEmbedding: Int
        public let byKind: [String: Int]
        public let sections: [ParameterBreakdown.Section]
        public let flopsPerToken: Double
        public let bytes: ParameterBreakdown.Bytes
        public let ratioToFirst: Double
        public let notes: [String]
    }

    /// S of the FLOPs column.
    public let sequenceLength: Int
    public let flopsRule: String
    public let int8Rule: String
    public let models: [Model]

    /// Sequence lengths FLOPs can be asked for.
    public static let sequenceLengths = 1...(1 << 20)

    public init(_ counted: [(model: CountedModel, breakdown: ParameterBreakdown)], sequenceLength S: Int) {
        sequenceLength = S
        flopsRule = ParameterBreakdown.flopsRule
        int8Rule = ParameterBreakdown.int8Rule
        let first = Double(max(1, counted.first?.breakdown.total ?? 1))
        models = counted.map { m, b in
            var notes = b.notes
            if let context = m.shape.context, S > context {
                notes.append("S = \(S) is beyond the \(context) positions it was built for")
            }
            return Model(name: m.name, source: m.source, shape: m.shape, total: b.total, applied: b.applied,
                         nonEmbedding: b.nonEmbedding,
                         byKind: Dictionary(uniqueKeysWithValues: ComponentKind.allCases.map { ($0.rawValue, b.total($0)) }),
                         sections: b.sections, flopsPerToken: b.flopsPerToken(sequenceLength: S), bytes: b.bytes,
                         ratioToFirst: Double(b.total) / first, notes: notes)
        }
    }
}
