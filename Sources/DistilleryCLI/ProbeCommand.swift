import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryEvaluation

struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "A task number for any encoder: a logistic-regression probe on its frozen embeddings.",
        discussion: """
        Embeds every text of --train and --test with MODEL (the mean of the last hidden state over \
        real tokens, or with --pooling cls its [CLS] row), standardises the features with the \
        training split's mean and deviation, fits a logistic regression with L2 penalty (the \
        problem scikit-learn's LogisticRegression solves: C = 1 by default, intercepts \
        unpenalised, a softmax over three or more classes; fitted to convergence by L-BFGS in \
        double precision) on the training embeddings, and reports its accuracy and macro-F1 on the \
        test split. The model is not fine-tuned, so a student of a headless teacher can be compared \
        with its teacher on a task. Dimensions whose spread is float rounding noise (below a \
        millionth of the widest) are left unscaled rather than blown up to unit size.

        Data: tab-separated files with a header line; --label and --text name the columns (or give \
        0-based indices). Labels are integers. Example:

          distill probe --model runs/demo/student \\
              --train rt_train.tsv --test rt_dev.tsv

        One test split is a noisy score: on 1,400 texts one standard error is about 1.2 points, so \
        two models a point apart may not differ. --folds 10 also cross-validates on --train: ten \
        contiguous folds in file order (scikit-learn's KFold, no shuffling), each predicted by a \
        fit on the other nine; it reports the accuracy over all the training texts, its binomial \
        standard error (a lower bound: the fits share rows) and each fold's accuracy. Models \
        probed with the same folds face the same texts, so they compare more finely: distill compare \
        --probe-folds shows each model minus the first, example by example. A file sorted \
        by label makes one-class folds: shuffle it first (a fold whose other rows hold one class \
        is refused).
        """)

    @Option(name: .long, help: "A Hugging Face folder or a .safetensors.zst checkpoint (fp32 or int8).")
    var model: String
    @Option(name: .long, help: "Labelled training texts (TSV with a header line).")
    var train: String
    @Option(name: .long, help: "Labelled test texts (TSV, same columns).")
    var test: String
    @OptionGroup var columns: ProbeColumns
    @Option(name: .long, help: "How a text becomes one vector: mean (over real tokens) or cls (the first token's row).")
    var pooling: Pooling = .mean
    @Option(name: .customLong("c"), help: "Inverse L2 strength of the regression (scikit-learn's C).")
    var c = 1.0
    @Option(name: .customLong("max-seq-len"), help: "Tokens per text, [CLS] and [SEP] included (longer texts are cut).")
    var maxSequenceLength = 128
    @Option(name: .customLong("batch-size"), help: "Texts per forward pass (1…4096).")
    var batchSize = 32
    @Option(name: .customLong("max-iter"), help: "L-BFGS iterations at most.")
    var maxIterations = 1000
    @Option(name: .long, help: "Also cross-validate on --train over this many contiguous folds (2…; 0: no).")
    var folds = 0
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard c > 0, c.isFinite else { throw ValidationError("--c must be a positive number") }
        guard (3...65536).contains(maxSequenceLength) else { throw ValidationError("--max-seq-len must be 3…65536") }
        guard (1...4096).contains(batchSize) else { throw ValidationError("--batch-size must be 1…4096") }
        guard (1...1_000_000).contains(maxIterations) else { throw ValidationError("--max-iter must be 1…1,000,000") }
        guard folds == 0 || (2...100_000).contains(folds) else { throw ValidationError("--folds must be 0 (none) or 2…100,000") }
    }

    var settings: ProbeSettings {
        var s = ProbeSettings()
        s.pooling = pooling
        s.maxSequenceLength = maxSequenceLength
        s.batchSize = batchSize
        s.regression.c = c
        s.regression.maxIterations = maxIterations
        s.folds = folds
        return s
    }

    func run() throws {
        threads.apply()
        // Read the data first: a bad file fails before a model is loaded.
        let task = try columns.task(train: train, test: test, settings: settings)
        let m = try ModelStore.open(model, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true), precision: precision.precision)
        let tokenizer = try BertTokenizer.of(model: m.path, files: m.tokenizer)
        let report = try Self.probe(m.model, tokenizer: tokenizer, task: task)
        if json {
            print(try jsonText(ProbeOutput(model: model, precision: m.model.precision, report: report)))
            return
        }
        print("probe  \(model)  \(m.model.precision)  \(pooling.rawValue) pooling, C = \(c)")
        print("\(grouped(report.trainExamples)) train / \(grouped(report.testExamples)) test examples, "
              + "\(report.classes.count) classes, \(report.dimensions) dimensions")
        print(ProbeOutput.table(report))
        if let cv = report.crossValidation {
            print("\(cv.folds)-fold cross-validation on \(grouped(cv.examples)) train examples: accuracy \(fixed(cv.accuracy, 4)) "
                  + "± \(fixed(cv.standardError, 4)) (binomial standard error), macro-F1 \(fixed(cv.macroF1, 4)); folds "
                  + cv.foldAccuracies.map { fixed($0, 3) }.joined(separator: " ")
                  + (cv.converged ? "" : " (a fold's fit did NOT converge: raise --max-iter)"))
            if !cv.oneClassFolds.isEmpty {
                let n = cv.oneClassFolds.count
                FileHandle.standardError.write(Data(("warning: fold\(n == 1 ? "" : "s") \(cv.oneClassFolds.map(String.init).joined(separator: ", ")) "
                    + "of \(train) hold\(n == 1 ? "s" : "") one label only: is the file sorted by label? Shuffle it for a fair estimate\n").utf8))
            }
        }
        print("L-BFGS \(report.iterations) iterations\(report.converged ? "" : " (NOT converged: raise --max-iter)"); "
              + "embedding \(fixed(report.embeddingSeconds, 1)) s, fit \(fixed(report.fitSeconds, 2)) s")
    }

    /// The probe with a progress bar per split.
    static func probe(_ model: EncoderModel, tokenizer: BertTokenizer, task: ProbeTask) throws -> ProbeReport {
        var bar: ProgressBar?
        var stage = ""
        let report = try Probe.run(model, tokenizer: tokenizer, task: task) { s, done, total in
            if s != stage {
                bar?.finish()
                stage = s
                bar = ProgressBar("embedding \(s)", total: Double(total), unit: "texts")
            }
            bar?.update(Double(done))
        }
        bar?.finish()
        return report
    }
}

/// Which columns of a labelled TSV hold the label and the text (`distill probe`, `distill compare`).
struct ProbeColumns: ParsableArguments {
    @Option(name: .long, help: "The label column of the TSV files: a header name or a 0-based index.")
    var label = "label"
    @Option(name: .long, help: "The text column of the TSV files: a header name or a 0-based index.")
    var text = "text"

    func task(train: String, test: String, settings: ProbeSettings) throws -> ProbeTask {
        let a = try LabelledTSV.read(train, label: label, text: text)
        let b = try LabelledTSV.read(test, label: label, text: text)
        let task = ProbeTask(trainTexts: a.texts, trainLabels: a.labels, testTexts: b.texts, testLabels: b.labels,
                             trainName: train, testName: test, settings: settings)
        try task.check()
        return task
    }
}

extension Pooling: ExpressibleByArgument {
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

struct ProbeOutput: Encodable {
    let model: String
    let precision: String
    let report: ProbeReport

    static func table(_ r: ProbeReport) -> String {
        var t = TextTable(["metric", "value"])
        t.add(["test accuracy", fixed(r.testAccuracy, 4)])
        t.add(["test macro-F1", fixed(r.testMacroF1, 4)])
        t.add(["train accuracy", fixed(r.trainAccuracy, 4)])
        return t.render()
    }
}

// TODO(merge): use LabelledData
/// A labelled TSV: a header line naming the columns, then one example a line, fields split at
/// tabs (no quoting); blank lines are skipped. Errors name the file and the line.
enum LabelledTSV {
    static func read(_ path: String, label: String, text: String) throws -> (texts: [String], labels: [Int32]) {
        let data = try readFile(path)
        guard let content = String(data: data, encoding: .utf8) else {
            throw LabelledTSVError.notUTF8(path: path)
        }
        var lines = content.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard let headerLine = lines.first, !headerLine.allSatisfy(\.isWhitespace) else { throw LabelledTSVError.empty(path: path) }
        let header = headerLine.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        func column(_ spec: String) throws -> Int {
            if let i = header.firstIndex(of: spec) { return i }
            if let i = Int(spec), i >= 0, i < header.count { return i }
            throw LabelledTSVError.missingColumn(path: path, column: spec, header: header)
        }
        let li = try column(label), ti = try column(text)
        var texts: [String] = [], labels: [Int32] = []
        for (n, line) in lines.enumerated().dropFirst() where !line.allSatisfy(\.isWhitespace) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count > max(li, ti) else {
                throw LabelledTSVError.shortLine(path: path, line: n + 1, fields: fields.count, needed: max(li, ti) + 1)
            }
            let raw = fields[li].trimmingCharacters(in: .whitespaces)
            guard let value = Int32(raw) else { throw LabelledTSVError.badLabel(path: path, line: n + 1, value: raw) }
            labels.append(value)
            texts.append(String(fields[ti]))
        }
        if labels.isEmpty { throw LabelledTSVError.noExamples(path: path) }
        return (texts, labels)
    }
}

enum LabelledTSVError: Error, CustomStringConvertible, Equatable {
    case empty(path: String)
    case notUTF8(path: String)
    case missingColumn(path: String, column: String, header: [String])
    case shortLine(path: String, line: Int, fields: Int, needed: Int)
    case badLabel(path: String, line: Int, value: String)
    case noExamples(path: String)

    var description: String {
        switch self {
        case let .empty(p): return "\(p): the file is empty (expected a header line naming the columns, then one example a line)"
        case let .notUTF8(p): return "\(p): not UTF-8 text"
        case let .missingColumn(p, c, h):
            return "\(p), line 1: no column '\(c)' (the header has \(h.map { "'\($0)'" }.joined(separator: ", ")); name one with --label / --text, or give a 0-based index)"
        case let .shortLine(p, l, f, n): return "\(p), line \(l): \(f) tab-separated field\(f == 1 ? "" : "s"), the columns need \(n)"
        case let .badLabel(p, l, v): return "\(p), line \(l): label '\(v)' is not an integer"
        case let .noExamples(p): return "\(p): no examples after the header line"
        }
    }
}
