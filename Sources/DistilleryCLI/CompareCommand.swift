import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryEvaluation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Teacher, student and quantized student side by side: size, speed, accuracy, fidelity.",
        discussion: """
        One row per MODEL (Hugging Face folders or .safetensors.zst checkpoints, fp32 or int8): \
        stored parameters, bytes of the weights file, milliseconds per forward pass at 8 × 128 and \
        1 × 128 tokens (median of --iterations on random tokens), masked-LM accuracy on --data, and \
        fidelity to the first model on the same text: top-1 agreement of the MLM predictions and \
        the cosine of mean-pooled sentence embeddings (where the hidden widths agree). All models \
        must share the first model's vocabulary. Time is measured with --threads threads.

        With --probe-train and --probe-test (labelled TSV files, as distill probe reads them) each \
        model is also probed: a logistic regression on its frozen mean-pooled embeddings, whose \
        test accuracy is a "probe acc" column; --probe-folds 10 adds a "probe CV acc" column, \
        cross-validated on --probe-train (see distill probe --help), steadier than a small test \
        split. Example:

          distill compare teacher student student-int8.safetensors.zst \\
              --data heldout.txt --probe-train rt_train.tsv --probe-test rt_dev.tsv \\
              --report comparison.md

        --report writes the same table as Markdown (GitHub tables), for a run's notes or a PR.
        """)

    @Argument(help: "Models to compare; the first is the reference.")
    var models: [String]
    @Option(name: .long, help: "Held-out text (one paragraph a line) or a prepared .tok file.")
    var data: String
    @Option(name: .long, help: "Batches of 16 sequences to evaluate: the first batches × 16 sequences of the file, batched by length.")
    var batches = 8
    @Option(name: .long, help: "Timed forward passes per shape (the median is reported).")
    var iterations = 10
    @Option(name: .long, help: ArgumentHelp("Batch shapes B×S to time, comma-separated.", valueName: "shapes"), transform: BatchShape.list)
    var shapes = [BatchShape(B: 8, S: 128), BatchShape(B: 1, S: 128)]
    @Option(name: .customLong("probe-train"), help: "Labelled training texts (TSV) for a probe column.")
    var probeTrain: String?
    @Option(name: .customLong("probe-test"), help: "Labelled test texts (TSV) for the probe column.")
    var probeTest: String?
    @OptionGroup var probeColumns: ProbeColumns
    @Option(name: .customLong("probe-folds"), help: "Also cross-validate the probe on --probe-train over this many folds (2…; 0: no).")
    var probeFolds = 0
    @Option(name: .long, help: ArgumentHelp("Also write the comparison as a Markdown table to this file.", valueName: "file.md"))
    var report: String?
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard !models.isEmpty else { throw ValidationError("give at least one model") }
        guard (1...100_000).contains(batches), (1...100_000).contains(iterations) else {
            throw ValidationError("--batches and --iterations must be 1…100,000")
        }
        guard (probeTrain == nil) == (probeTest == nil) else { throw ValidationError("give both --probe-train and --probe-test, or neither") }
        guard probeFolds == 0 || (2...100_000).contains(probeFolds) else { throw ValidationError("--probe-folds must be 0 (none) or 2…100,000") }
        guard probeFolds == 0 || probeTrain != nil else { throw ValidationError("--probe-folds needs --probe-train and --probe-test") }
    }

    func run() throws {
        threads.apply()
        var settings = ComparisonSettings()
        settings.maxBatches = batches
        settings.iterations = iterations
        settings.shapes = shapes.map { ($0.B, $0.S) }
        settings.precision = precision.precision
        if let probeTrain, let probeTest {
            var probe = ProbeSettings()
            probe.folds = probeFolds
            settings.probe = try probeColumns.task(train: probeTrain, test: probeTest, settings: probe)
        }
        if let path = self.report { try AtomicFileWriter.checkDestination(path) }  // before minutes of work
        let report = try Comparison.run(models: models, data: data, settings: settings) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        if let path = self.report {
            try AtomicFileWriter.write(Data(RunReport(comparison: report).markdown().utf8), to: path)
        }
        print(json ? try jsonText(report) : Self.table(report))
    }

    /// A difference with its sign always shown.
    static func signed(_ v: Double) -> String { (v >= 0 ? "+" : "−") + fixed(abs(v), 4) }

    static func table(_ r: ComparisonReport) -> String {
        let shapes = r.rows.first?.timings.map { "ms \($0.batch)×\($0.sequence)" } ?? []
        let probed = r.rows.contains { $0.probe != nil }, crossValidated = r.rows.contains { $0.probe?.crossValidation != nil }
        var t = TextTable(["model", "precision", "params", "×", "bytes on disk", "×"] + shapes
                          + ["MLM acc", "top-1 agree", "sentence cos"] + (probed ? ["probe acc"] : [])
                          + (crossValidated ? ["probe CV acc", "CV − first (paired)"] : []))
        let p0 = Double(max(1, r.rows[0].parameters)), b0 = Double(max(1, r.rows[0].bytesOnDisk))
        func opt(_ v: Double?, _ d: Int) -> String { v.map { fixed($0, d) } ?? "—" }
        for (i, row) in r.rows.enumerated() {
            let e = row.evaluation
            t.add([row.model, row.precision, grouped(row.parameters), fixed(Double(row.parameters) / p0, 2),
                   grouped(row.bytesOnDisk), fixed(Double(row.bytesOnDisk) / b0, 2)]
                  + row.timings.map { fixed($0.medianMs, 1) }
                  + [opt(e.mlmAccuracy, 4), i == 0 ? "ref" : opt(e.top1Agreement, 4), i == 0 ? "ref" : opt(e.sentenceCosine, 5)]
                  + (probed ? [opt(row.probe?.testAccuracy, 4)] : [])
                  + (crossValidated ? [opt(row.probe?.crossValidation?.accuracy, 4),
                                       i == 0 ? "ref" : row.probeDifference.map { "\(signed($0.difference)) ± \(fixed($0.standardError, 4))" } ?? "—"] : []))
        }
        var notes = "\n\(grouped(r.sequences)) sequences, \(grouped(r.tokens)) tokens from \(r.data); \(r.threads) threads"
        if let p = r.rows.compactMap(\.probe).first {
            notes += "\nprobe: logistic regression (C = \(p.c)) on \(p.pooling.rawValue)-pooled embeddings, "
                + "\(grouped(p.trainExamples)) examples of \(p.train), accuracy on \(grouped(p.testExamples)) of \(p.test)"
            if let cv = p.crossValidation {
                notes += "; CV: \(cv.folds) contiguous folds of \(p.train), accuracy over all its examples (binomial standard error ±\(fixed(cv.standardError, 4)) for the first model); "
                    + "the paired column is each model's CV accuracy minus the first's, example by example, ± its standard error"
            }
        }
        return t.render() + notes
    }
}
