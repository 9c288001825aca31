import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant

/// The report of a run folder, from what it holds: metrics.jsonl (curves, the last evaluation),
/// student/ (fp32 Hugging Face folder), student.safetensors.zst (compressed checkpoint, which
/// records the recipe and the teacher) and student-int8.safetensors.zst (after
/// `distill quantize`). The teacher is the one the checkpoint names, when it is still there.
public enum RunFolderReport {
    public struct Settings: Sendable {
        /// The teacher, when the checkpoint does not name it (or names a path that moved).
        public var teacher: String?
        /// The recipe's text, when no checkpoint in the folder records it.
        public var recipe: String?
        /// Forward passes to time per model at `shape` (nil: no speed column).
        public var timing: (B: Int, S: Int, warmup: Int, iterations: Int)? = (8, 128, 1, 5)
        public init() {}
    }

    public struct Written: Sendable, Equatable {
        public let report: String
        /// Nil when there was nothing to plot.
        public let curves: String?
        public let metrics: RunMetrics?
    }

    public static func studentFolder(_ dir: String) -> String { dir + "/student" }
    public static func checkpoint(_ dir: String) -> String { dir + "/student.safetensors.zst" }
    public static func int8Checkpoint(_ dir: String) -> String { dir + "/student-int8.safetensors.zst" }
    public static func metricsFile(_ dir: String) -> String { dir + "/metrics.jsonl" }

    /// The report and the metrics it read. `progress` receives a line per model timed.
    public static func build(_ dir: String, settings: Settings = Settings(), progress: (String) -> Void = { _ in }) throws
        -> (report: RunReport, metrics: RunMetrics?, charts: [LineChart]) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { throw RunReportError.notAFolder(path: dir) }
        func exists(_ p: String) -> Bool { fm.fileExists(atPath: p) }
        let folder = studentFolder(dir), ck = checkpoint(dir), int8 = int8Checkpoint(dir), metricsPath = metricsFile(dir)
        guard [folder, ck, int8, metricsPath].contains(where: exists) else { throw RunReportError.noRun(path: dir) }

        let metrics = exists(metricsPath) ? try RunMetrics.read(metricsPath) : nil
        var recipe: String?, provenance: Provenance?
        if exists(ck) {
            let meta = try Checkpoint(path: ck).metadata
            recipe = meta[CheckpointKey.recipe]
            provenance = meta[CheckpointKey.provenance].flatMap { try? JSONDecoder().decode(Provenance.self, from: Data($0.utf8)) }
        }
        if recipe == nil { recipe = settings.recipe }
        if recipe == nil, exists(dir + "/recipe.toml") { recipe = String(decoding: try readFile(dir + "/recipe.toml"), as: UTF8.self) }

        func size(_ p: String) throws -> Int { try ModelStore.bytesOnDisk(p) }
        func speed(_ path: String) throws -> Double? {
            guard let t = settings.timing else { return nil }
            progress("timing \(path)")
            let m = try ModelStore.open(path, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
            return try ForwardTiming.measure(m.model, B: t.B, S: min(t.S, m.model.config.maxPositions),
                                             warmup: t.warmup, iterations: t.iterations).tokensPerSecond
        }
        // A stage's scores: the last evaluation and, for classification, the best epoch (the
        // one a task run keeps).
        func scores(_ stage: RunMetrics.Stage?) -> [RunReport.Metric] {
            guard let stage else { return [] }
            var out: [RunReport.Metric] = [], shown = Set<String>()
            for last in [stage.lastEvaluation, stage.bestEpoch] {
                for (k, v) in (last ?? [:]).sorted(by: { $0.key < $1.key }) where !RunMetrics.notCurves.contains(k) && !shown.contains(k) {
                    out.append(RunReport.Metric(k, v))
                    shown.insert(k)
                }
            }
            return out
        }
        var rows: [RunReport.ModelRow] = []
        // A task run's fine-tuned teacher is in the folder; otherwise the one the checkpoint names.
        let teacher = settings.teacher ?? (exists(dir + "/teacher") ? dir + "/teacher" : provenance?.teacher.flatMap { exists($0) ? $0 : nil })
        if let teacher {
            var row = RunReport.ModelRow(name: "teacher", parameters: try ModelStore.parameterBreakdown(teacher).total)
            try setBytes(&row, path: teacher)
            row.tokensPerSecond = try speed(teacher)
            row.metrics = scores(metrics?.stage("teacher"))
            rows.append(row)
        }
        if exists(folder) || exists(ck) {
            let source = exists(folder) ? folder : ck
            var row = RunReport.ModelRow(name: "student", parameters: try ModelStore.parameterBreakdown(source).total)
            if exists(folder) { row.bytesFP32 = try size(folder) }
            if exists(ck) { row.bytesCompressed = try size(ck) }
            row.tokensPerSecond = try speed(source)
            row.metrics = scores(metrics?.stage("student") ?? metrics?.stage(nil))
            rows.append(row)
        }
        if exists(int8) {
            var row = RunReport.ModelRow(name: "student int8", precision: "int8", parameters: try ModelStore.parameterBreakdown(int8).total,
                                         bytesInt8: try size(int8))
            row.tokensPerSecond = try speed(int8)
            rows.append(row)
        }
        if exists(dir + "/baseline") {
            var row = RunReport.ModelRow(name: "baseline (labels only)", parameters: try ModelStore.parameterBreakdown(dir + "/baseline").total,
                                         bytesFP32: try size(dir + "/baseline"))
            row.tokensPerSecond = try speed(dir + "/baseline")
            row.metrics = scores(metrics?.stage("baseline"))
            rows.append(row)
        }

        var stages: [RunReport.StageRow] = []
        for s in metrics?.stages ?? [] {
            var row = RunReport.StageRow(name: s.name ?? "training")
            row.steps = s.lastStepNumber.flatMap(whole)
            row.tokens = s.tokens.flatMap(whole)
            row.seconds = s.elapsed
            row.lastLoss = s.lastLoss
            if !s.epochLines.isEmpty {
                row.epochs = s.epochLines.count
                if let best = s.bestEpoch {
                    row.bestEpoch = best["epoch"].flatMap(whole)
                    row.bestDevAccuracy = best["dev_accuracy"]
                    row.bestDevMacroF1 = best["dev_macro_f1"]
                }
            }
            stages.append(row)
        }
        var lines: [String] = []
        if let teacher { lines.append("teacher: \(teacher)") }
        if let m = metrics { lines.append("metrics.jsonl: \(grouped(m.lines)) lines") }
        let charts = metrics?.charts() ?? []
        let shape = settings.timing.map { "forward pass, \($0.B) × \($0.S) tokens (median of \($0.iterations)), \(Parallel.threads) threads" }
        var report = RunReport(title: "Run report: \(URL(fileURLWithPath: dir).lastPathComponent)", models: rows,
                               speedNote: rows.contains { $0.tokensPerSecond != nil } ? shape : nil,
                               lines: lines, curves: charts.isEmpty ? nil : "curves.svg", recipe: recipe)
        report.stages = stages
        return (report, metrics, charts)
    }

    /// Writes DIR/report.md and, when there is something to plot, DIR/curves.svg.
    @discardableResult
    public static func write(_ dir: String, settings: Settings = Settings(), progress: (String) -> Void = { _ in }) throws -> Written {
        let (report, metrics, charts) = try build(dir, settings: settings, progress: progress)
        var curves: String?
        if !charts.isEmpty {
            curves = dir + "/curves.svg"
            try AtomicFileWriter.write(Data(SVGPlot.document(charts).utf8), to: curves!)
        } else if FileManager.default.fileExists(atPath: dir + "/curves.svg") {
            // A stale plot would contradict the report.
            try? FileManager.default.removeItem(atPath: dir + "/curves.svg")
        }
        let path = dir + "/report.md"
        try AtomicFileWriter.write(Data(report.markdown().utf8), to: path)
        return Written(report: path, curves: curves, metrics: metrics)
    }

    /// A count from a log, if it is one an Int holds (a hostile 1e300 is no count).
    static func whole(_ v: Double) -> Int? { v.isFinite && abs(v) < 9e15 ? Int(v) : nil }

    /// A model's bytes in the column its kind belongs to.
    static func setBytes(_ row: inout RunReport.ModelRow, path: String) throws {
        let bytes = try ModelStore.bytesOnDisk(path)
        if path.hasSuffix(".zst") {
            if try Checkpoint(path: path).metadata[QuantizationScheme.metadataKey] != nil { row.bytesInt8 = bytes } else { row.bytesCompressed = bytes }
        } else {
            row.bytesFP32 = bytes
        }
    }
}

public enum RunReportError: Error, CustomStringConvertible, Equatable {
    case notAFolder(path: String)
    case noRun(path: String)

    public var description: String {
        switch self {
        case let .notAFolder(p): return "\(p): not a folder (give the output folder of a run)"
        case let .noRun(p):
            return "\(p): holds no run (none of metrics.jsonl, student/, student.safetensors.zst, student-int8.safetensors.zst)"
        }
    }
}
