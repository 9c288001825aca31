import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText
import DistilleryQuant

/// `distill compare`: size, speed, accuracy and fidelity of several models on the same text.
public struct ComparisonReport: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var model: String
        public var precision: String
        /// Stored parameters (shared layers once) and parameters applied per forward pass.
        public var parameters: Int
        public var appliedParameters: Int
        /// Bytes of the weights file (a folder's model.safetensors, or the checkpoint).
        public var bytesOnDisk: Int
        public var timings: [ForwardTiming]
        /// MLM accuracy and loss, and for every model but the first its fidelity to the first
        /// (top-1 agreement, KL, hidden-state and sentence-embedding cosines).
        public var evaluation: EvalReport
        /// The linear probe on labelled data, when the comparison was given some.
        public var probe: ProbeReport?
        /// This row's cross-validated probe accuracy minus the first row's, paired example by
        /// example (rows after the first, when the probe was cross-validated).
        public var probeDifference: PairedDifference?
    }
    public var data: String
    public var sequences: Int
    public var tokens: Int
    public var threads: Int
    public var rows: [Row]
}

public struct ComparisonSettings: Sendable {
    public var shapes: [(B: Int, S: Int)] = [(8, 128), (1, 128)]
    public var warmup = 2
    public var iterations = 10
    public var batchSize = 16
    public var maxBatches = 8
    public var maxSequenceLength = 128
    /// How the models' matrices run (as stored by default).
    public var precision = RunPrecision.stored
    /// Labelled data: every model is also probed on it (`distill probe`).
    public var probe: ProbeTask?
    public init() {}
}

public enum Comparison {
    /// Opens every model, evaluates each on `data` (the first model is the reference for
    /// fidelity) and times its forward pass. `progress` receives a line per stage.
    public static func run(models: [String], data: String, settings: ComparisonSettings = ComparisonSettings(),
                           progress: (String) -> Void = { _ in }) throws -> ComparisonReport {
        precondition(!models.isEmpty)
        // A bad probe task fails before any model is loaded.
        try settings.probe?.check()
        let options = LoadOptions(dropPooler: true, dropPretrainingHeads: true)
        var opened: [LoadedModel] = []
        for path in models {
            progress("loading \(path)")
            opened.append(try ModelStore.open(path, options: options, precision: settings.precision))
        }
        let first = opened[0]
        let tokenizer = try BertTokenizer.shared(by: opened)
        progress("tokenizing \(data)")
        // Sequences every model can take.
        let length = min(settings.maxSequenceLength, opened.map(\.model.config.maxPositions).min()!)
        let set = try EvalSet.load(data, tokenizer: tokenizer, maxSequenceLength: length,
                                   batchSize: settings.batchSize, maxBatches: settings.maxBatches,
                                   withTokenTypes: opened.contains { $0.model.config.hasTokenTypes })
        if set.batches.isEmpty { throw EvaluationError.noData(path: data) }
        var rows: [ComparisonReport.Row] = []
        for (i, m) in opened.enumerated() {
            progress("evaluating \(m.path)")
            let evaluation = try Evaluator.evaluate(m.model, reference: i == 0 ? nil : first.model, on: set)
            progress("timing \(m.path)")
            let timings = try settings.shapes.map {
                try ForwardTiming.measure(m.model, B: $0.B, S: min($0.S, m.model.config.maxPositions), warmup: settings.warmup, iterations: settings.iterations)
            }
            var probe: ProbeReport?
            if let task = settings.probe {
                progress("probing \(m.path) on \(task.trainName) → \(task.testName)")
                probe = try Probe.run(m.model, tokenizer: tokenizer, task: task)
            }
            var difference: PairedDifference?
            if i > 0, let cv = probe?.crossValidation, let first = rows[0].probe?.crossValidation { difference = cv.difference(from: first) }
            // Counted from what was loaded (a pooler or pre-training head dropped at load is not run).
            let params = ParameterBreakdown(name: m.path, layout: m.model.layout)
            rows.append(.init(model: m.path, precision: m.model.precision, parameters: params.total, appliedParameters: params.applied,
                              bytesOnDisk: try ModelStore.bytesOnDisk(m.path), timings: timings, evaluation: evaluation, probe: probe,
                              probeDifference: difference))
        }
        let q = rows[0].evaluation
        return ComparisonReport(data: data, sequences: q.sequences, tokens: q.tokens, threads: Parallel.threads, rows: rows)
    }
}
