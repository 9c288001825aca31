import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run a model on a batch of token ids and write every hidden state (and the logits).",
        discussion: """
        IN.safetensors holds int64 tensors input_ids and attention_mask, and optionally \
        token_type_ids, each of shape [B, S] (the layout of the fixtures' reference.safetensors). \
        OUT.safetensors receives F32 hidden_states.0 (the embedding output) … hidden_states.L, \
        shape [B, S, H], and logits [B, S, V] when the model has an MLM head. An int8 checkpoint \
        (from distill quantize) runs on the int8 path; --precision chooses another.
        """)

    @Option(name: .long, help: "A Hugging Face folder or a .safetensors.zst checkpoint (fp32 or int8).")
    var model: String
    @Option(name: .long, help: "Input batch (safetensors).")
    var batch: String
    @Option(name: .long, help: "Output file (safetensors), written atomically.")
    var out: String
    @Flag(name: .long, help: "Load a model whose file has a pooler without it.")
    var dropPooler = false
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try AtomicFileWriter.checkDestination(out)
        let loaded = try ModelStore.open(model, options: LoadOptions(dropPooler: dropPooler, dropPretrainingHeads: true),
                                         precision: precision.precision)
        let batchFile = try SafetensorsFile(path: batch)
        let tokens = try TokenBatch.read(from: batchFile)
        let outputs = try loaded.model.referenceOutputs(tokens)
        try Safetensors.write(outputs, metadata: ["model": loaded.path, "precision": loaded.model.precision], to: out)
        print("wrote \(outputs.count) tensors for \(tokens.B)×\(tokens.S) tokens to \(out)")
    }
}
