import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryTraining

struct FitHeadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit-head",
        abstract: "Fit an MLM head on a frozen encoder that has none (e.g. a sentence-transformers model).",
        discussion: """
        The soft-target (alpha_ce) and MLM losses need the teacher's token predictions; encoders \
        shipped for sentence embeddings have no MLM head. This fits a BERT-style head (dense + \
        activation + LayerNorm, then a decoder tied to the encoder's own word embeddings, plus a \
        bias) with masked-LM training on TEXT while every encoder weight stays as it is, reports the \
        head's MLM accuracy on --heldout, and writes OUT (a Hugging Face *ForMaskedLM folder whose \
        config.json and safetensors metadata say the head was fitted here) and OUT.safetensors.zst.

        Example:
          distill fit-head --model .models/all-MiniLM-L6-v2 --data train.txt --heldout heldout.txt \\
            --steps 1500 --out runs/minilm-mlm
        A recipe can do the same as a first stage: [teacher.fit_head] steps = 1500.
        """)

    @Option(name: .long, help: "The encoder (Hugging Face folder or .safetensors.zst checkpoint).")
    var model: String
    @Option(name: .long, parsing: .upToNextOption, help: "Training text (one paragraph a line) or one prepared .tok file.")
    var data: [String]
    @Option(name: .long, parsing: .upToNextOption, help: "Held-out text for the head's MLM accuracy.")
    var heldout: [String] = []
    @Option(name: .long, help: "Output folder: a new one, or one an earlier fit-head wrote (a folder holding other files, or a file, is refused rather than replaced).")
    var out: String
    @Option(name: .long, help: "Optimizer steps (1…10,000,000).")
    var steps = 1500
    @Option(name: .customLong("batch-size"), help: "Sequences per step (1…4096).")
    var batchSize = 32
    @Option(name: .long, help: "Peak learning rate (AdamW; warm-up over 5% of the steps, then linear decay).")
    var lr: Float = 1e-3
    @Option(name: .customLong("max-seq-len"), help: "Tokens per sequence (8…4096; at most the model's positions).")
    var maxSequenceLength = 128
    @Option(name: .long, help: "Seed for the head's initial weights, the batches and the masks.")
    var seed: UInt64 = 42
    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("--data needs at least one file") }
        guard (1...10_000_000).contains(steps) else { throw ValidationError("--steps must be 1…10,000,000") }
        guard (1...4096).contains(batchSize) else { throw ValidationError("--batch-size must be 1…4096") }
        guard lr.isFinite, lr > 0, lr <= 10 else { throw ValidationError("--lr must be in (0, 10]") }
        guard (8...4096).contains(maxSequenceLength) else { throw ValidationError("--max-seq-len must be 8…4096") }
    }

    func run() throws {
        threads.apply()
        var settings = HeadFitSettings()
        settings.steps = steps
        settings.batchSize = batchSize
        settings.lr = lr
        settings.seed = seed
        let display = TrainingDisplay("fit head")
        let s = try HeadFitter.run(model: model, train: data, heldout: heldout, output: out, maxSequenceLength: maxSequenceLength,
                                   settings: settings, events: display.show)
        display.finish()
        if json { print(try jsonText(s)); return }
        var lines = ["fitted in \(s.steps) steps, \(grouped(s.tokens)) tokens, \(formatDuration(s.seconds)); last MLM loss \(fixed(s.lastLoss, 4))"]
        if let e = s.heldout, let a = e.mlmAccuracy {
            lines.append("held-out MLM accuracy \(fixed(a * 100, 2))%, loss \(fixed(e.mlmLoss ?? 0, 4)) (\(grouped(e.targets)) masked tokens)")
        }
        lines.append("  \(s.folder ?? "")  (Hugging Face folder, BertForMaskedLM)\n  \(s.checkpoint ?? "")  (compact checkpoint)")
        print(lines.joined(separator: "\n"))
    }
}
