import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryTraining

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune an encoder as a sequence classifier on labelled text.",
        discussion: """
        TRAIN and DEV are TSV (or, by their .csv extension, CSV) files with a header line; --label \
        and --text name their columns (or give 0-based indices), --pair a second text column for \
        sentence-pair tasks. Labels are taken as written (integers 0…C−1 keep their order). The \
        model gets its family's classification head (BERT/ALBERT: the pooler, dropout and a dense \
        layer; DistilBERT: pre_classifier + ReLU, dropout, classifier) unless it has one for these \
        labels already, is trained with AdamW for --epochs epochs, and is scored on DEV after each \
        (accuracy, macro-F1); the best epoch is kept.

        Writes OUT/classifier/ (a Hugging Face *ForSequenceClassification folder that transformers \
        loads), OUT/classifier.safetensors.zst and OUT/metrics.jsonl.

        Example:
          distill finetune --model .models/all-MiniLM-L6-v2 --train rt_train.tsv --dev rt_dev.tsv \\
            --max-seq-len 64 --out runs/minilm-sentiment
        """)

    @Option(name: .long, help: "The encoder (Hugging Face folder or .safetensors.zst checkpoint).")
    var model: String
    @Option(name: .long, help: "Training examples (TSV or CSV with a header line).")
    var train: String
    @Option(name: .long, help: "Dev examples, scored after every epoch.")
    var dev: String
    @Option(name: .long, help: "Output folder.")
    var out: String
    @Option(name: .long, help: "The label column (name or 0-based index).")
    var label = "label"
    @Option(name: .long, help: "The text column (name or 0-based index).")
    var text = "text"
    @Option(name: .long, help: "A second text column, for sentence pairs.")
    var pair: String?
    @Option(name: .long, help: "Epochs (1…1000).")
    var epochs = 3
    @Option(name: .long, help: "Peak learning rate (linear warm-up over 10% of the steps, then linear decay).")
    var lr: Float = 5e-5
    @Option(name: .customLong("batch-size"), help: "Examples per step (1…4096).")
    var batchSize = 32
    @Option(name: .customLong("max-seq-len"), help: "Tokens per example, longer ones cut (8…4096; at most the model's positions).")
    var maxSequenceLength = 128
    @Option(name: .long, help: "Stop after this many epochs without a better dev accuracy.")
    var patience: Int?
    @Option(name: .long, help: "Seed for the new head, the order of the examples and dropout.")
    var seed: UInt64 = 42
    @Option(name: .long, help: "fp32, or bf16 matrix products (fp32 master weights).")
    var precision: WeightFormat = .fp32
    @Option(name: .long, help: ArgumentHelp("How each epoch is cut into batches: bucketed (similar lengths together, little padding) or shuffled (plain shuffling, as a PyTorch DataLoader(shuffle=True)).", valueName: "order"))
    var batches: BatchOrder = .bucketed
    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...1000).contains(epochs) else { throw ValidationError("--epochs must be 1…1000") }
        guard lr.isFinite, lr > 0, lr <= 10 else { throw ValidationError("--lr must be in (0, 10]") }
        guard (1...4096).contains(batchSize) else { throw ValidationError("--batch-size must be 1…4096") }
        guard (8...4096).contains(maxSequenceLength) else { throw ValidationError("--max-seq-len must be 8…4096") }
        if let patience, !(1...1000).contains(patience) { throw ValidationError("--patience must be 1…1000") }
        guard precision != .int8 else { throw ValidationError("--precision: train in fp32 or bf16, then distill quantize") }
    }

    func run() throws {
        threads.apply()
        var spec = TaskSpec(train: train, dev: dev)
        spec.label = LabelledData.Column(label)
        spec.text = LabelledData.Column(text)
        spec.pair = pair.map(LabelledData.Column.init)
        spec.maxSequenceLength = maxSequenceLength
        spec.patience = patience
        var training = TaskTraining.fineTuning
        training.epochs = epochs
        training.optimizer.lr = lr
        training.batchSize = batchSize
        training.seed = seed
        training.precision = precision
        training.batches = batches
        let display = TrainingDisplay("fine-tune")
        let summary = try FineTuning.run(model: model, task: spec, training: training, output: out, events: display.show)
        display.finish()
        if json { print(try jsonText(summary)); return }
        let best = summary.best!
        print("""
        best epoch \(summary.bestEpoch) of \(summary.epochs.count)\(summary.stoppedEarly ? " (stopped early)" : ""): \
        dev accuracy \(fixed(best.accuracy * 100, 2))%, macro-F1 \(fixed(best.macroF1 * 100, 2))% (\(grouped(best.examples)) examples) \
        in \(formatDuration(summary.seconds))
          \(summary.folder ?? "")  (Hugging Face folder)
          \(summary.checkpoint ?? "")  (compact checkpoint)
        """)
    }
}
