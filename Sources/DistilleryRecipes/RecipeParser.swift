import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText
import DistilleryTraining
import DistilleryFormats

public enum RecipeError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case syntax(path: String, line: Int, column: Int, message: String)
    case unknownKey(path: String, key: String, line: Int?, suggestion: String?)
    case wrongType(path: String, key: String, line: Int?, expected: String, found: String)
    case badValue(path: String, key: String, line: Int?, reason: String)
    case missing(path: String, key: String, reason: String)
    case fileNotFound(path: String, key: String, line: Int?, file: String)

    public var description: String {
        func at(_ p: String, _ l: Int?) -> String { l.map { "\(p):\($0)" } ?? p }
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read recipe: \(r)"
        case let .syntax(p, l, c, m): return "\(p):\(l):\(c): TOML syntax error: \(m)"
        case let .unknownKey(p, k, l, s): return "\(at(p, l)): unknown key '\(k)'" + (s.map { " (did you mean '\($0)'?)" } ?? "")
        case let .wrongType(p, k, l, e, f): return "\(at(p, l)): '\(k)' should be \(e), found \(f)"
        case let .badValue(p, k, l, r): return "\(at(p, l)): '\(k)': \(r)"
        case let .missing(p, k, r): return "\(p): '\(k)' is required: \(r)"
        case let .fileNotFound(p, k, l, f): return "\(at(p, l)): '\(k)': \(f) does not exist"
        }
    }
}

/// Reads one TOML table, checking every key against what the recipe allows.
final class TableReader {
    let table: TOMLTable
    let path: [String]
    let file: String
    let allowed: [String]
    private var read = Set<String>()

    init(_ table: TOMLTable, path: [String], file: String, allowed: [String]) {
        self.table = table; self.path = path; self.file = file; self.allowed = allowed
    }

    func name(_ key: String) -> String { (path + [key]).joined(separator: ".") }
    /// The line a key was set on (its table's header line when the key is absent).
    func line(_ key: String) -> Int? { table.line(of: key) ?? (path.isEmpty ? nil : table.line) }

    func wrongType(_ key: String, _ expected: String, _ v: TOMLValue) -> RecipeError {
        .wrongType(path: file, key: name(key), line: line(key), expected: expected, found: v.kindDescription)
    }
    func bad(_ key: String, _ reason: String) -> RecipeError { .badValue(path: file, key: name(key), line: line(key), reason: reason) }

    func value(_ key: String) -> TOMLValue? {
        precondition(allowed.contains(key), "recipe reader asked for undeclared key \(key)")
        read.insert(key)
        return table[key]
    }

    func has(_ key: String) -> Bool { table[key] != nil }

    func int(_ key: String, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.int else { throw wrongType(key, "an integer", v) }
        if let range, !range.contains(i) { throw bad(key, "\(i) is outside \(range.lowerBound)…\(range.upperBound)") }
        return i
    }

    func double(_ key: String, range: ClosedRange<Double>? = nil) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.double else { throw wrongType(key, "a number", v) }
        if !d.isFinite { throw bad(key, "must be a finite number, got \(d)") }
        if let range, !range.contains(d) { throw bad(key, "\(d) is outside \(range.lowerBound)…\(range.upperBound)") }
        return d
    }

    func float(_ key: String, range: ClosedRange<Double>? = nil) throws -> Float? { try double(key, range: range).map(Float.init) }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.bool else { throw wrongType(key, "true or false", v) }
        return b
    }

    func string(_ key: String, oneOf choices: [String]? = nil) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw wrongType(key, "a string", v) }
        if let choices, !choices.contains(s) { throw bad(key, "\"\(s)\" is not one of \(choices.map { "\"\($0)\"" }.joined(separator: ", "))") }
        return s
    }

    /// A string naming one case of `E` (the cases' raw values are the choices).
    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> E? where E.RawValue == String {
        try string(key, oneOf: E.allCases.map(\.rawValue)).flatMap(E.init(rawValue:))
    }

    func array(_ key: String) throws -> [TOMLValue]? {
        guard let v = value(key) else { return nil }
        guard let a = v.array else { throw wrongType(key, "an array", v) }
        return a
    }

    func ints(_ key: String) throws -> [Int]? {
        guard let a = try array(key) else { return nil }
        return try a.map { e in guard let i = e.int else { throw wrongType(key, "an array of integers", .array(a)) }; return i }
    }

    func floats(_ key: String) throws -> [Float]? {
        guard let a = try array(key) else { return nil }
        return try a.map { e in
            guard let d = e.double, d.isFinite else { throw wrongType(key, "an array of finite numbers", .array(a)) }
            return Float(d)
        }
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        if let s = v.string { return [s] }
        guard let a = v.array else { throw wrongType(key, "a string or an array of strings", v) }
        return try a.map { e in guard let s = e.string else { throw wrongType(key, "an array of strings", .array(a)) }; return s }
    }

    func subtable(_ key: String, allowed: [String]) throws -> TableReader? {
        guard let v = value(key) else { return nil }
        guard let t = v.table else { throw wrongType(key, "a table", v) }
        return TableReader(t, path: path + [key], file: file, allowed: allowed)
    }

    /// Fails on any key that was not read.
    func finish() throws {
        for k in table.keys.sorted() where !read.contains(k) {
            if allowed.contains(k) { continue }
            throw RecipeError.unknownKey(path: file, key: name(k), line: line(k), suggestion: closest(k, allowed))
        }
    }
}

/// The allowed key closest to a misspelt one (edit distance ≤ 3).
func closest(_ key: String, _ candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var prev = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var cur = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(1, b.count) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return a.isEmpty ? b.count : b.isEmpty ? a.count : prev[b.count]
    }
    let best = candidates.map { ($0, distance(Array(key), Array($0))) }.min { $0.1 < $1.1 }
    return best.flatMap { $0.1 <= 3 ? $0.0 : nil }
}

public enum RecipeParser {
    /// Why a data file named by a recipe cannot be read as data (a folder, a device, an
    /// empty file), or nil when it is a regular file with something in it.
    static func notAFileWithText(_ path: String) -> String? {
        // attributesOfItem describes a symbolic link itself, not what it points to.
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let a = try? FileManager.default.attributesOfItem(atPath: target) else { return "cannot be read" }
        switch a[.type] as? FileAttributeType {
        case .typeDirectory?: return "is a folder; name the files in it"
        case .typeRegular?: return ((a[.size] as? NSNumber)?.intValue ?? 0) == 0 ? "is empty" : nil
        default: return "is not a regular file"
        }
    }

    static let topKeys = ["name", "output", "seed", "teacher", "student", "data", "task", "loss", "optimizer", "training", "eval", "checkpoint",
                          "export"]

    public static func load(_ path: String) throws -> Recipe {
        let text: String
        do { text = String(decoding: try readFile(path), as: UTF8.self) } catch {
            throw RecipeError.unreadable(path: path, reason: "\(error)")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws -> Recipe {
        let toml: TOMLTable
        do { toml = try TOML.parse(text) } catch let e as TOMLError {
            throw RecipeError.syntax(path: path, line: e.line, column: e.column, message: e.message)
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        func resolve(_ p: String) -> String {
            let expanded = (p as NSString).expandingTildeInPath
            return expanded.hasPrefix("/") ? expanded : URL(fileURLWithPath: dir).appendingPathComponent(expanded).standardized.path
        }
        let top = TableReader(toml, path: [], file: path, allowed: topKeys)
        let name = try top.string("name") ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let output = resolve(try top.string("output") ?? "runs/" + name)
        let seed = UInt64(try top.int("seed", range: 0...Int.max) ?? 42)

        // [teacher]
        guard let t = try top.subtable("teacher", allowed: ["model", "finetune", "fit_head", "cache"]) else {
            throw RecipeError.missing(path: path, key: "teacher", reason: "a [teacher] table with model = \"PATH\" (a Hugging Face folder or a .safetensors.zst checkpoint)")
        }
        guard let teacherRaw = try t.string("model") else {
            throw RecipeError.missing(path: path, key: "teacher.model", reason: "the path of the teacher (folder or checkpoint)")
        }
        let teacher = resolve(teacherRaw)
        if !FileManager.default.fileExists(atPath: teacher) {
            throw RecipeError.fileNotFound(path: path, key: "teacher.model", line: t.line("model"), file: teacher)
        }
        var fineTune: TaskTraining?
        var teacherOutput: String?
        if let f = try t.subtable("finetune", allowed: ["epochs", "lr", "batch_size", "warmup", "weight_decay", "dropout", "batches", "output"]) {
            teacherOutput = try f.string("output").map(resolve)
            var ft = TaskTraining.fineTuning
            ft.epochs = try f.int("epochs", range: 1...1000) ?? ft.epochs
            ft.optimizer.lr = try f.float("lr", range: 0...10) ?? ft.optimizer.lr
            ft.batchSize = try f.int("batch_size", range: 1...65536) ?? ft.batchSize
            ft.optimizer.warmupFraction = try f.double("warmup", range: 0...1) ?? ft.optimizer.warmupFraction
            ft.optimizer.adamw.weightDecay = try f.float("weight_decay", range: 0...10) ?? ft.optimizer.adamw.weightDecay
            ft.dropout = try f.bool("dropout") ?? true
            ft.batches = try f.choice("batches", BatchOrder.self) ?? .bucketed
            try f.finish()
            fineTune = ft
        }
        var fitHead: HeadFitSettings?
        if let f = try t.subtable("fit_head", allowed: ["steps", "batch_size", "lr", "warmup", "output"]) {
            var h = HeadFitSettings()
            h.steps = try f.int("steps", range: 1...10_000_000) ?? h.steps
            h.batchSize = try f.int("batch_size", range: 1...65536) ?? h.batchSize
            h.lr = try f.float("lr", range: 0...10) ?? h.lr
            h.warmupFraction = try f.double("warmup", range: 0...1) ?? h.warmupFraction
            h.output = try f.string("output").map(resolve)
            try f.finish()
            fitHead = h
        }
        var teacherCache: TeacherCacheSpec?
        if let c = try t.subtable("cache", allowed: ["top_k", "tail_samples", "path", "precision"]) {
            var spec = TeacherCacheSpec()
            spec.topK = try c.int("top_k", range: 1...(1 << 24)) ?? spec.topK
            spec.tailSamples = try c.int("tail_samples", range: 0...4096) ?? spec.tailSamples
            spec.path = try c.string("path").map(resolve)
            if let p = try c.string("precision", oneOf: ["bf16", "fp32"]) { spec.precision = p == "bf16" ? .bf16 : .fp32 }
            try c.finish()
            teacherCache = spec
        }
        try t.finish()

        // [student]
        let studentKeys = ["builder", "layers", "family", "pooler", "embedding_size", "hidden_size", "num_layers", "num_heads",
                           "intermediate_size", "sharing", "init_layer", "config", "dropout"]
        guard let s = try top.subtable("student", allowed: studentKeys) else {
            throw RecipeError.missing(path: path, key: "student", reason: "a [student] table with builder = \"layers\", \"albert\" or \"config\"")
        }
        let student = try parseStudent(s, path: path, resolve: resolve)
        let studentDropout = try s.float("dropout", range: 0...0.99)
        try s.finish()

        // [task]: a labelled classification task instead of text.
        var task: TaskRecipe?
        if let k = try top.subtable("task", allowed: ["train", "dev", "label", "text", "text_pair", "max_seq_len", "patience", "baseline"]) {
            func file(_ key: String) throws -> String {
                guard let raw = try k.string(key) else {
                    throw RecipeError.missing(path: path, key: "task.\(key)", reason: "a TSV or CSV file with a header line (label and text columns)")
                }
                let f = resolve(raw)
                if !FileManager.default.fileExists(atPath: f) { throw RecipeError.fileNotFound(path: path, key: "task.\(key)", line: k.line(key), file: f) }
                if let why = Self.notAFileWithText(f) { throw RecipeError.badValue(path: path, key: "task.\(key)", line: k.line(key), reason: "\(f) \(why)") }
                return f
            }
            var spec = TaskSpec(train: try file("train"), dev: try file("dev"))
            spec.label = LabelledData.Column(try k.string("label") ?? "label")
            spec.text = LabelledData.Column(try k.string("text") ?? "text")
            spec.pair = try k.string("text_pair").map(LabelledData.Column.init)
            spec.maxSequenceLength = try k.int("max_seq_len", range: 8...4096) ?? 128
            spec.patience = try k.int("patience", range: 1...1000)
            var recipe = TaskRecipe(spec: spec)
            recipe.teacherFineTune = fineTune
            recipe.teacherOutput = teacherOutput
            recipe.baseline = try k.bool("baseline") ?? false
            try k.finish()
            task = recipe
        } else if fineTune != nil {
            throw RecipeError.badValue(path: path, key: "teacher.finetune", line: t.line("finetune"), reason: "fine-tuning needs a [task] table naming the labelled data")
        }
        if task != nil && teacherCache != nil {
            throw RecipeError.badValue(path: path, key: "teacher.cache", line: t.line("cache"), reason: "a [task] recipe distils class logits from a teacher it fine-tunes first; the cache serves text recipes")
        }
        if task != nil && fitHead != nil {
            throw RecipeError.badValue(path: path, key: "teacher.fit_head", line: t.line("fit_head"), reason: "a [task] recipe distils class logits; an MLM head serves text recipes")
        }

        // [data]
        let dataKeys = ["train", "heldout", "max_seq_len", "sequences", "mlm_probability", "mask_share", "random_share", "mlm_smoothing", "whole_word_mask"]
        let dataTable = try top.subtable("data", allowed: dataKeys)
        if task != nil, let d = dataTable {
            throw RecipeError.badValue(path: path, key: "data", line: d.line("train"), reason: "a [task] recipe reads its labelled files from [task]; remove [data]")
        }
        guard let d = dataTable ?? (task != nil ? TableReader(TOMLTable(line: 0), path: ["data"], file: path, allowed: dataKeys) : nil) else {
            throw RecipeError.missing(path: path, key: "data", reason: "a [data] table with train = [\"FILE\", …] (or a [task] table for a classification task)")
        }
        let trainRaw = try d.strings("train") ?? []
        if task == nil && trainRaw.isEmpty {
            throw RecipeError.missing(path: path, key: "data.train", reason: "text files (one paragraph a line) or prepared .tok files")
        }
        func files(_ raw: [String], _ key: String) throws -> [String] {
            try raw.map { f in
                let r = resolve(f)
                if !FileManager.default.fileExists(atPath: r) { throw RecipeError.fileNotFound(path: path, key: "data.\(key)", line: d.line(key), file: r) }
                if let why = Self.notAFileWithText(r) { throw RecipeError.badValue(path: path, key: "data.\(key)", line: d.line(key), reason: "\(r) \(why)") }
                return r
            }
        }
        var data = DataSpec(train: try files(trainRaw, "train"), heldout: try files(try d.strings("heldout") ?? [], "heldout"))
        data.maxSequenceLength = try d.int("max_seq_len", range: 8...4096) ?? 128
        if let u = try d.string("sequences", oneOf: SequenceUnit.allCases.map(\.rawValue)) {
            data.sequences = SequenceUnit(rawValue: u)!
            if (data.train + data.heldout).contains(where: { $0.hasSuffix(".tok") }) {
                throw d.bad("sequences", "prepared .tok files are already cut into sequences; give text files, or prepare them with distill prepare --sequences \(u)")
            }
        }
        data.masking.probability = try d.float("mlm_probability", range: 0...1) ?? 0.15
        data.masking.maskShare = try d.float("mask_share", range: 0...1) ?? 0.8
        data.masking.randomShare = try d.float("random_share", range: 0...1) ?? 0.1
        if data.masking.maskShare + data.masking.randomShare > 1 {
            throw d.bad("random_share", "mask_share + random_share must not exceed 1")
        }
        data.masking.smoothing = try d.float("mlm_smoothing", range: 0...2) ?? 0
        data.masking.wholeWord = try d.bool("whole_word_mask") ?? false
        try d.finish()

        // [loss]
        var loss = LossSettings()
        if task != nil {
            // Task distillation: the teacher's class distribution at T and the labels.
            loss.alphaCE = 0; loss.alphaMLM = 0; loss.alphaCos = 0; loss.alphaSoft = 1; loss.alphaHard = 0.5
        }
        var projection = false
        if let l = try top.subtable("loss", allowed: ["temperature", "alpha_ce", "alpha_mlm", "alpha_cos", "alpha_mse", "alpha_hidden",
                                                      "alpha_soft", "alpha_hard", "restrict_ce_to_mask", "projection", "match"]) {
            // Each weight and the temperature: a number, or a schedule { start, end, shape, until }.
            func scheduled(_ key: String, range: ClosedRange<Double>, default d: Float) throws -> Float {
                guard let v = l.has(key) ? l.table[key] : nil, let t = v.table else { return try l.float(key, range: range) ?? d }
                let sched = try parseSchedule(TableReader(t, path: ["loss", key], file: path, allowed: ScheduledValue.keys), range: range)
                loss.schedules[key] = sched
                _ = l.value(key)
                return max(sched.start, sched.end)
            }
            loss.temperature = try scheduled("temperature", range: 0.01...100, default: loss.temperature)
            loss.alphaCE = try scheduled("alpha_ce", range: 0...1e6, default: loss.alphaCE)
            loss.alphaMLM = try scheduled("alpha_mlm", range: 0...1e6, default: loss.alphaMLM)
            loss.alphaCos = try scheduled("alpha_cos", range: 0...1e6, default: loss.alphaCos)
            loss.alphaMSE = try scheduled("alpha_mse", range: 0...1e6, default: 0)
            loss.alphaHidden = try scheduled("alpha_hidden", range: 0...1e6, default: 0)
            loss.alphaSoft = try scheduled("alpha_soft", range: 0...1e6, default: loss.alphaSoft)
            loss.alphaHard = try scheduled("alpha_hard", range: 0...1e6, default: loss.alphaHard)
            if let matches = try l.array("match") {
                for (i, v) in matches.enumerated() {
                    guard let t = v.table else { throw l.wrongType("match", "[[loss.match]] tables", v) }
                    let m = TableReader(t, path: ["loss", "match[\(i + 1)]"], file: path, allowed: ["kind", "teacher", "student", "weight", "relation_heads"])
                    guard let kindName = try m.string("kind", oneOf: LayerMatch.Kind.allCases.map(\.rawValue)) else {
                        throw RecipeError.missing(path: path, key: "loss.match[\(i + 1)].kind",
                                                  reason: "what to compare: \(LayerMatch.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    var match = LayerMatch(kind: LayerMatch.Kind(rawValue: kindName)!)
                    match.teacherLayer = try m.int("teacher", range: 0...4096)
                    match.studentLayer = try m.int("student", range: 0...4096)
                    if (match.teacherLayer == nil) != (match.studentLayer == nil) {
                        throw m.bad(match.teacherLayer == nil ? "teacher" : "student", "give both teacher and student layers, or neither (the uniform map m · L_t / L_s)")
                    }
                    if let w = m.table["weight"]?.table {
                        let sched = try parseSchedule(TableReader(w, path: ["loss", "match[\(i + 1)]", "weight"], file: path, allowed: ScheduledValue.keys),
                                                      range: 0...1e6)
                        _ = m.value("weight")
                        match.weight = max(sched.start, sched.end)
                        match.weightSchedule = sched
                    } else {
                        match.weight = try m.float("weight", range: 0...1e6) ?? 1
                    }
                    match.relationHeads = try m.int("relation_heads", range: 1...4096)
                    if match.relationHeads != nil && match.kind != .relation { throw m.bad("relation_heads", "only relation matches have relation heads") }
                    try m.finish()
                    loss.matches.append(match)
                }
            }
            if task == nil {
                for k in ["alpha_soft", "alpha_hard"] where l.has(k) { throw l.bad(k, "class losses need a [task] table naming labelled data") }
            } else {
                for k in ["alpha_ce", "alpha_mlm", "alpha_mse"] where try l.has(k) && (l.float(k) ?? 0) > 0 {
                    throw l.bad(k, "a [task] recipe trains on labelled sentences, not masked text: use alpha_soft and alpha_hard (and alpha_cos / alpha_hidden)")
                }
            }
            loss.restrictCEToMask = try l.bool("restrict_ce_to_mask") ?? false
            projection = try l.bool("projection") ?? false
            try l.finish()
            if loss.alphaCE + loss.alphaMLM + loss.alphaCos + loss.alphaMSE + loss.alphaHidden + loss.alphaSoft + loss.alphaHard == 0
                && !loss.matches.contains(where: { $0.weight > 0 }) {
                throw RecipeError.badValue(path: path, key: "loss", line: l.line("alpha_ce"), reason: "every alpha is 0: nothing to learn")
            }
        }

        // [optimizer]
        var opt = OptimizerSpec()
        if let o = try top.subtable("optimizer", allowed: ["lr", "betas", "eps", "weight_decay", "no_decay", "warmup", "warmup_steps", "clip"]) {
            opt.lr = try o.float("lr", range: 0...10) ?? opt.lr
            if let b = try o.floats("betas") {
                guard b.count == 2, b.allSatisfy({ $0 >= 0 && $0 < 1 }) else { throw o.bad("betas", "two numbers in [0, 1), e.g. [0.9, 0.98]") }
                opt.adamw.beta1 = b[0]; opt.adamw.beta2 = b[1]
            }
            opt.adamw.eps = try o.float("eps", range: 1e-30...1) ?? opt.adamw.eps
            opt.adamw.weightDecay = try o.float("weight_decay", range: 0...10) ?? opt.adamw.weightDecay
            if let nd = try o.strings("no_decay") { opt.decay = DecayRule.namePatterns(nd) }
            opt.warmupFraction = try o.double("warmup", range: 0...1) ?? opt.warmupFraction
            opt.warmupSteps = try o.int("warmup_steps", range: 0...Int.max)
            if o.has("clip") {
                let c = try o.float("clip", range: 0...1e9)!
                opt.clip = c > 0 ? c : nil
            }
            try o.finish()
        }

        // [training]
        var training = TrainingSpec()
        if let tr = try top.subtable("training", allowed: ["steps", "epochs", "batch_size", "accumulation", "dropout", "precision", "batches"]) {
            training.steps = try tr.int("steps", range: 1...Int(Int32.max))
            training.epochs = try tr.int("epochs", range: 1...100_000)
            if training.steps != nil && training.epochs != nil { throw tr.bad("epochs", "give steps or epochs, not both") }
            training.batchSize = try tr.int("batch_size", range: 1...65536) ?? training.batchSize
            training.accumulation = try tr.int("accumulation", range: 1...65536) ?? 1
            training.dropout = try tr.bool("dropout") ?? true
            training.precision = try tr.string("precision", oneOf: [WeightFormat.fp32, .bf16].map(\.rawValue))
                .flatMap(WeightFormat.init(rawValue:)) ?? .fp32
            training.batches = try tr.choice("batches", BatchOrder.self) ?? .bucketed
            try tr.finish()
        }
        if task != nil, training.steps != nil {
            throw RecipeError.badValue(path: path, key: "training.steps", line: nil, reason: "a [task] recipe trains for whole epochs: give epochs = N")
        }
        if task != nil && training.epochs == nil { training.epochs = 3 }
        if training.steps == nil && training.epochs == nil {
            throw RecipeError.missing(path: path, key: "training.steps", reason: "how long to train: steps = N or epochs = N in [training]")
        }

        var evaluation = EvaluationSpec()
        if let e = try top.subtable("eval", allowed: ["every", "batches"]) {
            evaluation.every = try e.int("every", range: 0...Int.max) ?? evaluation.every
            evaluation.batches = try e.int("batches", range: 1...100_000) ?? evaluation.batches
            try e.finish()
        }
        var checkpoints = CheckpointSpec()
        if let c = try top.subtable("checkpoint", allowed: ["every", "level"]) {
            checkpoints.every = try c.int("every", range: 0...Int.max) ?? checkpoints.every
            checkpoints.level = try c.int("level", range: 1...22) ?? checkpoints.level
            try c.finish()
        }
        var exportInt8 = false
        if let e = try top.subtable("export", allowed: ["int8"]) {
            exportInt8 = try e.bool("int8") ?? false
            try e.finish()
        }
        try top.finish()
        var recipe = Recipe(path: path, text: text, name: name, output: output, seed: seed, teacher: teacher, student: student,
                            data: data, loss: loss, projection: projection, optimizer: opt, training: training,
                            evaluation: evaluation, checkpoints: checkpoints)
        recipe.studentDropout = studentDropout
        recipe.task = task
        recipe.fitHead = fitHead
        recipe.teacherCache = teacherCache
        recipe.exportInt8 = exportInt8
        return recipe
    }

    /// { start = A, end = B, shape = "linear" | "cosine", until = 0.5 } (until: the share of
    /// training after which the value stays at its end).
    static func parseSchedule(_ t: TableReader, range: ClosedRange<Double>) throws -> ScheduledValue {
        guard let start = try t.double("start", range: range) else {
            throw RecipeError.missing(path: t.file, key: t.name("start"), reason: "a schedule's value at the first step (and end = its value at the end)")
        }
        guard let end = try t.double("end", range: range) else {
            throw RecipeError.missing(path: t.file, key: t.name("end"), reason: "the schedule's value at the end")
        }
        let shape = try t.choice("shape", ScheduledValue.Shape.self) ?? .linear
        let until = try t.double("until", range: 0.0001...1) ?? 1
        try t.finish()
        return ScheduledValue(start: Float(start), end: Float(end), shape: shape, until: until)
    }

    static func parseStudent(_ s: TableReader, path: String, resolve: (String) -> String) throws -> StudentSpec {
        guard let builder = try s.string("builder", oneOf: ["layers", "albert", "config"]) else {
            throw RecipeError.missing(path: path, key: "student.builder", reason: "\"layers\" (DistilBERT-style), \"albert\" (factorized, shared) or \"config\" (random init)")
        }
        func only(_ keys: [String]) throws {
            for k in ["layers", "family", "pooler", "embedding_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                      "sharing", "init_layer", "config"] where s.has(k) && !keys.contains(k) {
                throw s.bad(k, "not used by builder = \"\(builder)\"")
            }
        }
        switch builder {
        case "layers":
            try only(["layers", "family", "pooler"])
            guard let layers = try s.ints("layers"), !layers.isEmpty else {
                throw RecipeError.missing(path: path, key: "student.layers", reason: "the teacher layers to keep, e.g. [0, 2, 4, 7, 9, 11]")
            }
            let family = try s.string("family", oneOf: ["bert", "distilbert"]).flatMap(ModelFamily.init(rawValue:))
            return .layers(LayerSelection(layers: layers, family: family, keepPooler: try s.bool("pooler") ?? false))
        case "albert":
            try only(["embedding_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "sharing", "init_layer"])
            guard let e = try s.int("embedding_size", range: 1...65536) else {
                throw RecipeError.missing(path: path, key: "student.embedding_size", reason: "the factorized embedding width E, e.g. 128")
            }
            return .albert(AlbertStudent(embeddingSize: e, hiddenSize: try s.int("hidden_size", range: 1...65536),
                                         layers: try s.int("num_layers", range: 1...1024), heads: try s.int("num_heads", range: 1...1024),
                                         intermediateSize: try s.int("intermediate_size", range: 1...1_000_000),
                                         sharing: LayerSharing(studentChoice: try s.string("sharing", oneOf: LayerSharing.studentChoices.map(\.name)) ?? "all")!,
                                         initLayer: try s.int("init_layer", range: 0...1024)))
        default:
            try only(["config"])
            guard let c = try s.value("config") else {
                throw RecipeError.missing(path: path, key: "student.config", reason: "a config.json path or an inline table of Hugging Face config keys")
            }
            let data: Data
            if let p = c.string {
                let file = resolve(p)
                guard FileManager.default.fileExists(atPath: file) else {
                    throw RecipeError.fileNotFound(path: path, key: "student.config", line: s.line("config"), file: file)
                }
                data = try readFile(file)
            } else if c.table != nil {
                if let p = c.nonFinitePath() { throw s.bad("config", "\(p) is NaN or infinite: config values are finite numbers") }
                data = try JSONSerialization.data(withJSONObject: c.jsonObject)
            } else {
                throw s.wrongType("config", "a path or a table", c)
            }
            do {
                var config = try HuggingFaceConfig.decode(data, path: "\(path) [student.config]").encoder
                config.hasMLMHead = true
                try config.validate()
                return .config(config)
            } catch let e as ConfigError {
                throw s.bad("config", "\(e)")
            }
        }
    }
}
