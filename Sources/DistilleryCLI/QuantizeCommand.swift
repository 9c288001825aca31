import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryTraining
import DistilleryFormats
import DistilleryQuant
import DistilleryText
import DistilleryEvaluation

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a model as an int8 checkpoint (per-channel int8 weights, fp32 scales).",
        discussion: """
        IN is a Hugging Face folder, a safetensors file or an fp32 checkpoint; OUT is a \
        NAME.safetensors.zst checkpoint. Every linear layer gets symmetric int8 weights with one \
        fp32 scale per output channel, every embedding table one scale per row; LayerNorms and \
        biases stay fp32. The few widest channels of each layer input (--outliers, 2 by \
        default) stay fp32 with their weight columns, so they do not coarsen every other \
        channel's step. Activations are quantized per token at run time (distill forward, eval, \
        compare and bench run the int8 checkpoint directly; distill convert turns it back into an \
        fp32 Hugging Face folder).

        --keep-fp32 keeps the matrices whose Hugging Face name contains the given text in fp32, \
        e.g. --keep-fp32 word_embeddings --keep-fp32 layer.5.
        """)

    @Argument(help: "Input model: a Hugging Face folder, a safetensors file or an fp32 .safetensors.zst checkpoint.")
    var input: String
    @Argument(help: "Output checkpoint (NAME.safetensors.zst), written atomically.")
    var output: String
    @Option(name: .customLong("keep-fp32"), help: "Keep matrices whose Hugging Face name contains this text in fp32 (repeatable).")
    var keep: [String] = []
    @Option(name: .customLong("two-pass"), help: ArgumentHelp(
        "Layer inputs quantized in two int8 passes (~15-bit activations, ~13 with the 7-bit codes of AVX2 without VNNI, at twice the int8 work; none by default), comma-separated from: \(QuantizationScheme.Input.allCases.map(\.rawValue).joined(separator: ", ")); 'none' for none.",
        valueName: "inputs"), transform: Self.twoPassInputs)
    var twoPass: [QuantizationScheme.Input]?
    @Option(name: .customLong("outliers"), help: ArgumentHelp(
        "Channels of each layer input kept out of int8 and multiplied in fp32 (the widest ones on calibration; 0 turns this off; at most \(QuantizationScheme.maxOutlierChannels)). Default: \(QuantizationScheme().outlierChannels).",
        valueName: "k"))
    var outliers: Int?
    @Flag(name: .customLong("no-smoothing"), help: "Do not move activation outliers into the weights (SmoothQuant-style smoothing).")
    var noSmoothing = false
    @Option(name: .long, help: "zstd level (1–22).")
    var level = CheckpointFormat.defaultLevel
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    static func twoPassInputs(_ s: String) throws -> [QuantizationScheme.Input] {
        if s == "none" { return [] }
        return try choiceList(s, QuantizationScheme.Input.allCases.map { ($0.rawValue, $0) }, what: "layer input")
    }

    func validate() throws {
        guard (1...22).contains(level) else { throw ValidationError("--level must be 1…22") }
        if let outliers, !(0...QuantizationScheme.maxOutlierChannels).contains(outliers) {
            throw ValidationError("--outliers must be 0…\(QuantizationScheme.maxOutlierChannels)")
        }
    }

    func scheme() -> QuantizationScheme {
        var s = QuantizationScheme(keptFP32: keep)
        if noSmoothing { s.smoothedInputs = [] }
        if let twoPass { s.twoPassInputs = twoPass }
        if let outliers { s.outlierChannels = outliers }
        return s
    }

    func run() throws {
        threads.apply()
        let described = try ModelStore.describe(input)
        try BertTokenizer.checkFiles(of: input, files: described.tokenizer, vocabSize: described.config.vocabSize)
        let summary = try Quantizer.quantize(input: input, output: output, scheme: scheme(), level: level)
        if json { print(try jsonText(summary)); return }
        let share = Double(summary.rawBytes) / Double(max(1, summary.fp32Bytes)) * 100
        print("""
        \(output): \(summary.quantizedMatrices) matrices in int8, \(summary.fp32Matrices) kept in fp32
          fp32 tensors      \(grouped(summary.fp32Bytes)) bytes
          int8 safetensors  \(grouped(summary.rawBytes)) bytes (\(fixed(share, 1))% of fp32)
          after zstd        \(grouped(summary.compressedBytes)) bytes
        """)
    }
}
