import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryEvaluation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Held-out quality of a model, alone and against a reference.",
        discussion: """
        Tokenizes FILE (text, one paragraph a line, or a prepared .tok file) with the model's \
        vocabulary, masks 15% of the tokens with a fixed seed (so runs compare), and reports the \
        masked-LM accuracy and loss (models with an MLM head). With --reference (the teacher, or the \
        fp32 model an int8 checkpoint came from) it also reports, at the masked positions, how often \
        the top-1 predictions agree and KL(reference ‖ model), and on the unmasked text the mean \
        cosine of the last hidden states and of mean-pooled sentence embeddings (when the hidden \
        widths agree). Models may be fp32 or int8.

        With --labelled FILE (TSV, or CSV by extension, with a header line) instead of --data, it \
        scores a classifier (distill finetune or a [task] recipe made it): accuracy, macro-F1 and \
        cross-entropy on the file's examples, whose labels must be the model's classes; with \
        --reference, how often the two classifiers predict the same class. For example, the int8 \
        student against its fp32 original:
          distill eval --model runs/sentiment/student-int8.safetensors.zst \\
              --labelled .data/rt_dev.tsv --reference runs/sentiment/student
        """)

    @Option(name: .long, help: "A Hugging Face folder or a .safetensors.zst checkpoint (fp32 or int8).")
    var model: String
    @Option(name: .long, help: "Held-out text (one paragraph a line) or a prepared .tok file.")
    var data: String?
    @Option(name: .long, help: "Labelled examples (TSV or CSV with a header line) to score a classifier on.")
    var labelled: String?
    @Option(name: .long, help: "With --labelled: the label column (header name or 0-based index; default: label).")
    var label: String?
    @Option(name: .long, help: "With --labelled: the text column (header name or 0-based index; default: text).")
    var text: String?
    @Option(name: .long, help: "With --labelled: a second text column, for sentence pairs.")
    var pair: String?
    @Option(name: .long, help: "A model to compare against (teacher or fp32 original).")
    var reference: String?
    @Option(name: .customLong("max-seq-len"), help: "Tokens per sequence (default: 128, or fewer if the models have fewer positions).")
    var maxSequenceLength: Int?
    @Option(name: .customLong("batch-size"), help: "Sequences per batch (1…4096).")
    var batchSize = 16
    @Option(name: .long, help: "With --data: batches to evaluate: the first batches × batch-size sequences of the file, batched by length (default: 16; --labelled scores every example).")
    var batches: Int?
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (data == nil) != (labelled == nil) else { throw ValidationError("give --data (held-out text) or --labelled (a classifier's labelled examples), one of them") }
        guard (3...65536).contains(maxSequenceLength ?? 3) else { throw ValidationError("--max-seq-len must be 3…65536") }
        if data != nil, let given = [("--label", label), ("--text", text), ("--pair", pair)].first(where: { $0.1 != nil }) {
            throw ValidationError("\(given.0) names a column of --labelled data; --data is plain text")
        }
        if labelled != nil && batches != nil { throw ValidationError("--batches limits --data; --labelled scores every example") }
        guard (1...4096).contains(batchSize), (1...1_000_000).contains(batches ?? 16) else {
            throw ValidationError("--batch-size must be 1…4096 and --batches 1…1,000,000")
        }
    }

    func run() throws {
        threads.apply()
        if let labelled { return try scoreClassifier(labelled) }
        guard let data else { return }
        let (m, ref, tokenizer, S) = try openModels(LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let set = try EvalSet.load(data, tokenizer: tokenizer, maxSequenceLength: S, batchSize: batchSize,
                                   maxBatches: batches ?? 16, withTokenTypes: m.model.config.hasTokenTypes || (ref?.model.config.hasTokenTypes ?? false))
        let bar = ProgressBar("evaluating", total: Double(set.batches.count), unit: "batches")
        let report = try Evaluator.evaluate(m.model, reference: ref?.model, on: set) { done, _ in bar.update(Double(done)) }
        bar.finish()
        if json {
            print(try jsonText(EvalOutput(model: model, precision: m.model.precision, reference: reference, data: data, report: report)))
            return
        }
        print("eval  \(model)  \(m.model.precision)\(reference.map { "  vs \($0)" } ?? "")")
        print("\(grouped(report.sequences)) sequences, \(grouped(report.tokens)) tokens, \(grouped(report.targets)) masked targets from \(data)")
        print(EvalOutput.table(report))
        if m.model.config.hasMLMHead == false { print("(no MLM head: accuracy and loss do not apply)") }
    }
}

extension EvalCommand {
    /// --labelled: accuracy, macro-F1 and loss of a classifier, and agreement with --reference.
    /// The model (at --precision), the reference, their shared tokenizer, and the tokens per
    /// sequence: --max-seq-len, checked against both models' positions, or up to 128.
    func openModels(_ options: LoadOptions) throws -> (LoadedModel, LoadedModel?, BertTokenizer, Int) {
        let m = try ModelStore.open(model, options: options, precision: precision.precision)
        let ref = try reference.map { try ModelStore.open($0, options: options) }
        let tokenizer = try BertTokenizer.shared(by: [m] + (ref.map { [$0] } ?? []))
        let positions = min(m.model.config.maxPositions, ref?.model.config.maxPositions ?? .max)
        if let maxSequenceLength, maxSequenceLength > positions {
            throw ValidationError("--max-seq-len \(maxSequenceLength) is longer than the \(positions) positions the model\(ref == nil ? "" : "s") can take")
        }
        return (m, ref, tokenizer, maxSequenceLength ?? min(128, positions))
    }

    func scoreClassifier(_ file: String) throws {
        let (m, ref, tokenizer, S) = try openModels(LoadOptions())  // the pooler feeds the classifier
        let r = try ClassificationEvaluator.evaluate(m.model, name: model, file: file, label: .init(label ?? "label"), text: .init(text ?? "text"), pair: pair.map { .init($0) },
                                                     tokenizer: tokenizer, maxSequenceLength: S,
                                                     reference: ref.map { ($0.model, reference!) }, batchSize: batchSize)
        if json {
            print(try jsonText(LabelledEvalOutput(model: model, precision: m.model.precision, reference: reference, labelled: file, report: r)))
            return
        }
        print("eval  \(model)  \(m.model.precision)\(reference.map { "  vs \($0)" } ?? "")")
        print("\(grouped(r.examples)) labelled examples from \(file); classes \(m.model.config.labels.joined(separator: ", "))")
        var t = TextTable(["metric", "value"])
        t.add(["accuracy", fixed(r.accuracy, 4)])
        t.add(["macro-F1", fixed(r.macroF1, 4)])
        t.add(["cross-entropy", fixed(r.loss, 4)])
        if let a = r.agreement { t.add(["agreement with reference", fixed(a, 4)]) }
        print(t.render())
    }
}

struct LabelledEvalOutput: Encodable {
    let model: String
    let precision: String
    let reference: String?
    let labelled: String
    let report: ClassificationReport
}

struct EvalOutput: Encodable {
    let model: String
    let precision: String
    let reference: String?
    let data: String
    let report: EvalReport

    static func table(_ r: EvalReport) -> String {
        var t = TextTable(["metric", "value"])
        func add(_ name: String, _ v: Double?, _ digits: Int) { if let v { t.add([name, fixed(v, digits)]) } }
        add("MLM accuracy", r.mlmAccuracy, 4)
        add("MLM loss", r.mlmLoss, 4)
        add("top-1 agreement", r.top1Agreement, 4)
        add("KL(reference ‖ model)", r.kl, 5)
        add("hidden-state cosine", r.hiddenCosine, 5)
        add("sentence-embedding cosine", r.sentenceCosine, 5)
        return t.render()
    }
}
