import Foundation
import DistilleryTensor

/// A point of a curve: x is the step or the epoch.
public struct CurvePoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }
}

/// What a run's metrics.jsonl holds, stage by stage. Each line is a JSON object: a training step
/// ("step", loss_* keys, lr, grad_norm, tokens_per_s, elapsed_s…), an evaluation ("eval": true,
/// "step" and metric keys) or a classification epoch ("epoch", dev_accuracy, dev_macro_f1,
/// train_loss…). Lines of a multi-stage run name their "stage" (teacher, student, baseline,
/// fit_head); a general run's lines name none. Keys may be missing, values may be NaN or
/// infinite; a line that is not such an object is an error naming the file and the line.
public struct RunMetrics: Sendable, Equatable {
    public struct Stage: Sendable, Equatable {
        /// Nil for lines without a "stage".
        public var name: String?
        /// Per key, the points in step (or epoch) order.
        public var steps: [String: [CurvePoint]] = [:]
        public var evaluations: [String: [CurvePoint]] = [:]
        public var epochs: [String: [CurvePoint]] = [:]
        /// The last line of each kind, as numbers.
        public var lastStep: [String: Double]?
        public var lastEvaluation: [String: Double]?
        /// Every epoch line, as numbers, in order (a repeated epoch replaces the earlier one).
        public var epochLines: [[String: Double]] = []
        public var lines = 0

        public init(name: String?) { self.name = name }

        /// The last training step's number, the tokens of all steps, the last elapsed time and
        /// the last finite total loss.
        public var lastStepNumber: Double? { lastStep?["step"] }
        public var tokens: Double? { steps["tokens"].map { $0.reduce(0) { $0 + ($1.y.isFinite ? $1.y : 0) } } }
        public var elapsed: Double? { steps["elapsed_s"]?.last?.y }
        public var lastLoss: Double? { steps["loss_total"]?.last { $0.y.isFinite }?.y }

        /// The epoch with the highest dev accuracy (the first of equals: the one a task run keeps).
        public var bestEpoch: [String: Double]? {
            var best: [String: Double]?
            for e in epochLines {
                guard let a = e["dev_accuracy"], a.isFinite else { continue }
                if best == nil || a > best!["dev_accuracy"]! { best = e }
            }
            return best
        }
    }

    /// In the order their first line appears.
    public var stages: [Stage] = []
    /// Lines holding a metrics object (blank lines not counted).
    public var lines = 0

    public init() {}

    public func stage(_ name: String?) -> Stage? { stages.first { $0.name == name } }

    /// Keys that place a line, kept out of the curves.
    static let placing: Set<String> = ["step", "epoch", "eval"]
    /// Keys that are bookkeeping, not curves (kept for the totals).
    static let notCurves: Set<String> = placing.union(["sequences", "tokens", "elapsed_s", "examples", "dev_examples", "seconds"])
    /// Longer lines are refused rather than buffered without bound.
    public static let maxLineBytes = 1 << 20

    /// Reads `path` a block at a time (a long run's log need not fit in memory twice).
    public static func read(_ path: String) throws -> RunMetrics {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            throw FileError(path: path, operation: "read", reason: e == ENOENT ? "no such file" : String(cString: strerror(e)))
        }
        defer { close(fd) }
        var m = RunMetrics()
        var pending: [UInt8] = [], lineNumber = 0
        let block = 1 << 20
        var buffer = [UInt8](repeating: 0, count: block)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, block) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path: path, operation: "read", reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            var start = 0
            for i in 0..<n where buffer[i] == 0x0A {
                pending.append(contentsOf: buffer[start..<i])
                lineNumber += 1
                try m.add(line: pending, number: lineNumber, file: path)
                pending.removeAll(keepingCapacity: true)
                start = i + 1
            }
            pending.append(contentsOf: buffer[start..<n])
            if pending.count > maxLineBytes { throw RunMetricsError.lineTooLong(file: path, line: lineNumber + 1, limit: maxLineBytes) }
        }
        if !pending.isEmpty { try m.add(line: pending, number: lineNumber + 1, file: path) }
        return m
    }

    /// The same from text (`file` names it in errors).
    public static func parse(_ text: String, file: String = "metrics.jsonl") throws -> RunMetrics {
        var m = RunMetrics()
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            try m.add(line: Array(line.utf8), number: i + 1, file: file)
        }
        return m
    }

    mutating func add(line bytes: [UInt8], number: Int, file: String) throws {
        if bytes.count > Self.maxLineBytes { throw RunMetricsError.lineTooLong(file: file, line: number, limit: Self.maxLineBytes) }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        func bad(_ why: String) -> RunMetricsError { .malformed(file: file, line: number, reason: why) }
        guard let object = Self.decode(Data(bytes)) else { throw bad("not a JSON object") }
        var numbers: [String: Double] = [:]
        for (k, v) in object { if case .number(let x) = v { numbers[k] = x } }
        // The keys that place a line must have their types; any other key may be anything.
        for key in ["step", "epoch"] {
            if let v = object[key] {
                guard case .number(let x) = v, x.isFinite else { throw bad("\"\(key)\" is not a finite number") }
            }
        }
        var stageName: String?
        switch object["stage"] {
        case nil: break
        case .string(let s)?: stageName = s
        default: throw bad("\"stage\" is not text")
        }
        let isEval: Bool
        switch object["eval"] {
        case nil: isEval = false
        case .bool(let b)?: isEval = b
        default: throw bad("\"eval\" is not true or false")
        }
        guard numbers["step"] != nil || numbers["epoch"] != nil else { throw bad("neither \"step\" nor \"epoch\"") }

        lines += 1
        let index: Int
        if let i = stages.firstIndex(where: { $0.name == stageName }) { index = i } else { stages.append(Stage(name: stageName)); index = stages.count - 1 }
        if let epoch = numbers["epoch"] {
            stages[index].epochs.add(numbers, x: epoch)
            stages[index].epochLines.removeAll { ($0["epoch"] ?? -.infinity) >= epoch }
            stages[index].epochLines.append(numbers)
        } else if isEval {
            stages[index].evaluations.add(numbers, x: numbers["step"]!)
            stages[index].lastEvaluation = numbers
        } else {
            stages[index].steps.add(numbers, x: numbers["step"]!)
            stages[index].lastStep = numbers
        }
        stages[index].lines += 1
    }

    /// Strict JSON first; JSON5 (which reads NaN and ±Infinity, as Python's json writes them)
    /// only for lines strict JSON refuses.
    static func decode(_ data: Data) -> [String: JSONValue]? {
        if let o = try? JSONDecoder().decode([String: JSONValue].self, from: data) { return o }
        let json5 = JSONDecoder()
        json5.allowsJSON5 = true
        return try? json5.decode([String: JSONValue].self, from: data)
    }

    /// The charts of a run: per stage, the training losses (loss_* keys not zero throughout; log
    /// scale when they span more than a decade) and the evaluation metrics at the evaluation
    /// steps (losses and KL apart from accuracies and cosines); across stages, the dev-set
    /// scores and the losses per epoch. Each series holds at most `maxPoints` points.
    public func charts(maxPoints: Int = 1500) -> [LineChart] {
        func ordered(_ keys: some Sequence<String>, first: [String]) -> [String] {
            let all = Set(keys)
            return first.filter(all.contains) + all.subtracting(first).sorted()
        }
        func lossLike(_ k: String) -> Bool { k.contains("loss") || k == "kl" }
        func series(_ name: String, _ points: [CurvePoint]) -> LineChart.Series {
            let kept = Decimation.minMax(points, maxPoints: maxPoints)
            return LineChart.Series(name: name, x: kept.map(\.x), y: kept.map(\.y))
        }
        let named = stages.count > 1 || stages.contains { $0.name != nil }
        func title(_ base: String, _ stage: Stage) -> String { named ? "\(base): \(stage.name ?? "(no stage)")" : base }

        var charts: [LineChart] = []
        for s in stages {
            let losses = ordered(s.steps.keys.filter { k in k.hasPrefix("loss_") && s.steps[k]!.contains { $0.y != 0 && !$0.y.isNaN } },
                                 first: ["loss_total", "loss_hard", "loss_soft", "loss_ce", "loss_mlm", "loss_cos", "loss_mse", "loss_hidden"])
            if !losses.isEmpty {
                let values = losses.flatMap { s.steps[$0]!.map(\.y) }.filter { $0.isFinite && $0 != 0 }
                let positive = !values.isEmpty && values.allSatisfy { $0 > 0 }
                let spread = positive ? values.max()! / values.min()! : 0
                charts.append(LineChart(title: title("training loss", s), series: losses.map { series($0, s.steps[$0]!) },
                                        logY: positive && spread > 10))
            }
            let evalKeys = s.evaluations.keys.filter { !Self.notCurves.contains($0) }
            let quality = ordered(evalKeys.filter { !lossLike($0) }, first: ["mlm_accuracy", "top1_agreement", "hidden_cosine", "sentence_cosine"])
            if !quality.isEmpty { charts.append(LineChart(title: title("evaluation", s), series: quality.map { series($0, s.evaluations[$0]!) })) }
            let evalLosses = ordered(evalKeys.filter(lossLike), first: ["mlm_loss", "loss_mlm", "kl"])
            if !evalLosses.isEmpty {
                charts.append(LineChart(title: title("evaluation losses", s), series: evalLosses.map { series($0, s.evaluations[$0]!) }))
            }
        }
        // Epochs: every stage on one chart, so the teacher, the student and the baseline compare.
        func epochChart(_ title: String, _ keys: (Stage) -> [String]) -> LineChart? {
            var out: [LineChart.Series] = []
            for s in stages {
                for k in keys(s) { out.append(series(named ? "\(s.name ?? "(no stage)") \(k)" : k, s.epochs[k]!)) }
            }
            guard !out.isEmpty else { return nil }
            var chart = LineChart(title: title, series: out, xLabel: "epoch")
            chart.integerX = true
            return chart
        }
        let epochKeys = { (s: Stage) in s.epochs.keys.filter { !Self.notCurves.contains($0) } }
        if let c = epochChart("dev set per epoch", { ordered(epochKeys($0).filter { !lossLike($0) }, first: ["dev_accuracy", "dev_macro_f1"]) }) {
            charts.append(c)
        }
        if let c = epochChart("losses per epoch", { ordered(epochKeys($0).filter(lossLike), first: ["train_loss", "dev_loss"]) }) {
            charts.append(c)
        }
        return charts
    }
}

extension Dictionary where Key == String, Value == [CurvePoint] {
    /// Appends each value at `x`. A point at or before the last one (a resumed run logged the
    /// steps again) replaces what it overlaps, so curves run forward.
    mutating func add(_ numbers: [String: Double], x: Double) {
        for (k, y) in numbers where !RunMetrics.placing.contains(k) {
            while let last = self[k]?.last, last.x >= x { self[k]!.removeLast() }
            self[k, default: []].append(CurvePoint(x, y))
        }
    }
}

public enum Decimation {
    /// At most about `maxPoints` points of `points`: in each of maxPoints / 2 runs of equal
    /// length, its lowest and highest value in their order (spikes survive, which a stride
    /// would skip), and a NaN where the run had a value that is not finite (a gap stays a gap).
    public static func minMax(_ points: [CurvePoint], maxPoints: Int) -> [CurvePoint] {
        guard points.count > maxPoints, maxPoints >= 4 else { return points }
        let buckets = maxPoints / 2
        var out: [CurvePoint] = []
        out.reserveCapacity(buckets * 2 + 2)
        for b in 0..<buckets {
            let lo = points.count * b / buckets, hi = points.count * (b + 1) / buckets
            var minI = -1, maxI = -1, gap: Int?
            for i in lo..<hi {
                let y = points[i].y
                guard y.isFinite else { if gap == nil { gap = i }; continue }
                if minI < 0 || y < points[minI].y { minI = i }
                if maxI < 0 || y > points[maxI].y { maxI = i }
            }
            var keep = [minI, maxI].filter { $0 >= 0 }
            if let gap { keep.append(gap) }
            for i in Set(keep).sorted() { out.append(i == gap ? CurvePoint(points[i].x, .nan) : points[i]) }
        }
        return out
    }
}

public enum RunMetricsError: Error, CustomStringConvertible, Equatable {
    case malformed(file: String, line: Int, reason: String)
    case lineTooLong(file: String, line: Int, limit: Int)

    public var description: String {
        switch self {
        case let .malformed(f, l, r): return "\(f), line \(l): not a metrics line: \(r)"
        case let .lineTooLong(f, l, n): return "\(f), line \(l): longer than \(grouped(n)) bytes; not a metrics line"
        }
    }
}

/// A JSON value with its type kept (a Bool is not a number).
enum JSONValue: Decodable, Sendable {
    case number(Double), bool(Bool), string(String), other

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .other }
    }
}
