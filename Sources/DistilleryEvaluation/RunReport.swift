import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant

/// A run's (or a comparison's) report as Markdown: the models side by side (parameters, bytes
/// on disk, speed, metrics), free-form lines, a link to the curves and the recipe. Columns that
/// no model fills are left out.
public struct RunReport: Sendable, Equatable {
    public struct Metric: Sendable, Equatable {
        public var name: String
        public var value: Double
        public init(_ name: String, _ value: Double) { self.name = name; self.value = value }
    }

    public struct ModelRow: Sendable, Equatable {
        /// What it is ("teacher", "student") or its path.
        public var name: String
        public var precision: String?
        public var parameters: Int?
        /// Bytes of the file a comparison read (any kind).
        public var bytesOnDisk: Int?
        /// Bytes of the fp32 weights (a folder's model.safetensors), of an int8 checkpoint, and
        /// of the compressed fp32 checkpoint.
        public var bytesFP32: Int?
        public var bytesInt8: Int?
        public var bytesCompressed: Int?
        public var tokensPerSecond: Double?
        public var metrics: [Metric]
        public init(name: String, precision: String? = nil, parameters: Int? = nil, bytesOnDisk: Int? = nil, bytesFP32: Int? = nil,
                    bytesInt8: Int? = nil, bytesCompressed: Int? = nil, tokensPerSecond: Double? = nil, metrics: [Metric] = []) {
            self.name = name; self.precision = precision; self.parameters = parameters; self.bytesOnDisk = bytesOnDisk
            self.bytesFP32 = bytesFP32; self.bytesInt8 = bytesInt8; self.bytesCompressed = bytesCompressed
            self.tokensPerSecond = tokensPerSecond; self.metrics = metrics
        }
    }

    /// A stage of training (a general run has one, without a name).
    public struct StageRow: Sendable, Equatable {
        public var name: String
        public var steps: Int?
        public var tokens: Int?
        public var seconds: Double?
        public var lastLoss: Double?
        public var epochs: Int?
        public var bestEpoch: Int?
        public var bestDevAccuracy: Double?
        public var bestDevMacroF1: Double?
        public init(name: String) { self.name = name }
    }

    public var title: String
    public var models: [ModelRow]
    public var stages: [StageRow] = []
    /// What the speed column measured (e.g. "8 × 128 tokens, 2 threads").
    public var speedNote: String?
    /// Bullet lines under the table.
    public var lines: [String]
    /// An image to show (the curves SVG, relative to the report).
    public var curves: String?
    /// The recipe's text, shown verbatim.
    public var recipe: String?

    public init(title: String, models: [ModelRow] = [], speedNote: String? = nil, lines: [String] = [],
                curves: String? = nil, recipe: String? = nil) {
        self.title = title; self.models = models; self.speedNote = speedNote; self.lines = lines
        self.curves = curves; self.recipe = recipe
    }

    public func markdown() -> String {
        var out = "# \(Self.inline(title))\n"
        if !models.isEmpty {
            out += "\n## Models\n\n" + modelTable()
            if let speedNote { out += "\nSpeed: \(Self.inline(speedNote)).\n" }
        }
        if !stages.isEmpty { out += "\n## Training\n\n" + stageTable() }
        if !lines.isEmpty {
            out += "\n## Run\n\n" + lines.map { "- \(Self.inline($0))\n" }.joined()
        }
        if let curves {
            out += "\n## Curves\n\n![loss and evaluation curves](\(curves.replacingOccurrences(of: " ", with: "%20")))\n"
        }
        if let recipe {
            // A fence longer than any run of backticks in the text.
            var fence = "```"
            while recipe.contains(fence) { fence += "`" }
            out += "\n## Recipe\n\n\(fence)toml\n\(recipe)\(recipe.hasSuffix("\n") ? "" : "\n")\(fence)\n"
        }
        return out
    }

    /// The models as a GitHub table: text left-aligned, numbers right-aligned, "—" where a model
    /// lacks a value.
    public func modelTable() -> String {
        var columns: [(header: String, right: Bool, cell: (ModelRow) -> String?)] = [
            ("model", false, { $0.name }),
            ("precision", false, { $0.precision }),
            ("parameters", true, { $0.parameters.map(grouped) }),
            ("bytes on disk", true, { $0.bytesOnDisk.map(grouped) }),
            ("bytes fp32", true, { $0.bytesFP32.map(grouped) }),
            ("bytes int8", true, { $0.bytesInt8.map(grouped) }),
            ("bytes compressed", true, { $0.bytesCompressed.map(grouped) }),
            ("tokens/s", true, { $0.tokensPerSecond.map { grouped(Int($0.rounded())) } }),
        ]
        // Every metric once, each new one placed after the one it follows in its row.
        var names: [String] = []
        for m in models {
            var at = 0
            for metric in m.metrics {
                if let i = names.firstIndex(of: metric.name) { at = i + 1; continue }
                names.insert(metric.name, at: at)
                at += 1
            }
        }
        for name in names {
            columns.append((name, true, { row in row.metrics.first { $0.name == name }.map { Self.number($0.value) } }))
        }
        return Self.table(models, columns)
    }

    /// The stages: steps, tokens, time and speed, the last loss, and for classification the best
    /// epoch's dev scores.
    public func stageTable() -> String {
        Self.table(stages, [
            ("stage", false, { $0.name }),
            ("steps", true, { $0.steps.map(grouped) }),
            ("tokens", true, { $0.tokens.map(grouped) }),
            ("time", true, { $0.seconds.map(Self.duration) }),
            ("tokens/s", true, { s in s.tokens.flatMap { t in s.seconds.flatMap { $0 > 0 ? grouped(Int((Double(t) / $0).rounded())) : nil } } }),
            ("last loss", true, { $0.lastLoss.map(Self.number) }),
            ("epochs", true, { $0.epochs.map(grouped) }),
            ("best epoch", true, { $0.bestEpoch.map(grouped) }),
            ("dev accuracy", true, { $0.bestDevAccuracy.map(Self.number) }),
            ("dev macro-F1", true, { $0.bestDevMacroF1.map(Self.number) }),
        ])
    }

    /// A GitHub table of `rows`; columns no row fills are left out (the first always stays).
    static func table<Row>(_ rows: [Row], _ all: [(header: String, right: Bool, cell: (Row) -> String?)]) -> String {
        let columns = all.enumerated().filter { i, c in i == 0 || rows.contains { c.cell($0) != nil } }.map(\.element)
        var out = "| " + columns.map { Self.cell($0.header) }.joined(separator: " | ") + " |\n"
        out += "|" + columns.map { $0.right ? " ---: |" : " :--- |" }.joined() + "\n"
        for r in rows {
            out += "| " + columns.map { Self.cell($0.cell(r) ?? "—") }.joined(separator: " | ") + " |\n"
        }
        return out
    }

    /// Seconds as "4.2 s", "42 s", "3 min 05 s" or "2 h 07 min".
    public static func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0, s < 1e12 else { return "?" }
        if s < 9.95 { return String(format: "%.1f s", s) }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d h %02d min", t / 3600, t / 60 % 60) : t >= 60 ? String(format: "%d min %02d s", t / 60, t % 60) : "\(t) s"
    }

    /// A metric value: four decimals, scientific below 0.001, whole and grouped from 10,000.
    public static func number(_ v: Double) -> String {
        if !v.isFinite { return v.isNaN ? "NaN" : (v > 0 ? "∞" : "−∞") }
        if v == 0 { return "0" }
        if abs(v) < 1e-3 { return String(format: "%.3e", v) }
        if abs(v) >= 1e4 { return abs(v) < 9e18 ? grouped(Int(v.rounded())) : String(format: "%.3e", v) }
        return String(format: "%.4f", v)
    }

    /// Text for a table cell: pipes escaped, line breaks flattened.
    static func cell(_ s: String) -> String {
        inline(s).replacingOccurrences(of: "|", with: "\\|")
    }

    static func inline(_ s: String) -> String {
        s.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }
}

extension RunReport {
    /// `distill compare --report`: one row per model, its bytes on disk, speed at the first
    /// timed shape, and the metrics that apply.
    public init(comparison r: ComparisonReport) {
        let shape = r.rows.first?.timings.first
        self.init(title: "Comparison on \(r.data)",
                  speedNote: shape.map { "tokens per second of the forward pass at \($0.batch) × \($0.sequence) tokens (median), \(r.threads) threads" },
                  lines: ["\(grouped(r.sequences)) sequences, \(grouped(r.tokens)) tokens of \(r.data); fidelity is to the first model"])
        for (i, row) in r.rows.enumerated() {
            let e = row.evaluation
            var metrics: [Metric] = []
            if let v = e.mlmAccuracy { metrics.append(Metric("MLM accuracy", v)) }
            if i > 0, let v = e.top1Agreement { metrics.append(Metric("top-1 agreement", v)) }
            if i > 0, let v = e.kl { metrics.append(Metric("KL", v)) }
            if i > 0, let v = e.sentenceCosine { metrics.append(Metric("sentence cosine", v)) }
            if let p = row.probe {
                metrics.append(Metric("probe accuracy", p.testAccuracy))
                metrics.append(Metric("probe macro-F1", p.testMacroF1))
                if let cv = p.crossValidation { metrics.append(Metric("probe CV accuracy", cv.accuracy)) }
                if let d = row.probeDifference { metrics.append(Metric("probe CV − first (paired)", d.difference)) }
            }
            models.append(ModelRow(name: row.model, precision: row.precision, parameters: row.parameters, bytesOnDisk: row.bytesOnDisk,
                                   tokensPerSecond: row.timings.first?.tokensPerSecond, metrics: metrics))
        }
        if let p = r.rows.compactMap(\.probe).first {
            lines.append("probe: logistic regression (C = \(p.c)) on \(p.pooling.rawValue)-pooled embeddings, trained on "
                         + "\(grouped(p.trainExamples)) examples of \(p.train), scored on \(grouped(p.testExamples)) of \(p.test)"
                         + (p.crossValidation.map { "; CV accuracy: \($0.folds) contiguous folds of \(p.train), each predicted by a fit on the others" } ?? ""))
        }
    }
}
