import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryQuant
import DistilleryTraining
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryEvaluation

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert between a Hugging Face folder and a compact checkpoint, either way.",
        discussion: """
        distill convert DIR X.safetensors.zst   compresses a Hugging Face model (config.json, \
        model.safetensors, vocab.txt) into one checksummed checkpoint.
        distill convert X.safetensors.zst DIR   exports config.json, model.safetensors and vocab.txt \
        that transformers loads as BertForMaskedLM, AlbertForMaskedLM or DistilBertForMaskedLM \
        (the family of the source).
        """)

    @Argument(help: "Input: a Hugging Face folder or a .safetensors.zst checkpoint.")
    var input: String
    @Argument(help: "Output: a .safetensors.zst file or a folder.")
    var output: String
    @Option(name: .long, help: "zstd level for checkpoints (1–22; 20 and above use much more memory and time).")
    var level = CheckpointFormat.defaultLevel
    @Flag(name: .long, help: "Byte-shuffle float tensors: smaller, but `zstd -d` no longer yields usable tensors.")
    var byteShuffle = false
    @Flag(name: .long, help: "Leave out a pooler present in the input.")
    var dropPooler = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...22).contains(level) else { throw ValidationError("--level must be 1…22") }
    }

    func run() throws {
        threads.apply()
        let loaded = try ModelStore.load(input, options: LoadOptions(dropPooler: dropPooler))
        try BertTokenizer.checkFiles(of: input, files: loaded.tokenizer, vocabSize: loaded.model.config.vocabSize)
        if output.hasSuffix(".zst") {
            let stats = try ModelStore.saveCheckpoint(loaded, to: output, level: level, byteShuffle: byteShuffle)
            print("\(output): \(grouped(stats.rawBytes)) bytes → \(grouped(stats.compressedBytes)) (\(fixed(stats.ratio, 2))×, \(stats.frames) frames)")
        } else {
            try HuggingFaceFolder.save(loaded.model, tokenizer: loaded.tokenizer, to: output)
            print("\(output): config.json, model.safetensors\(loaded.tokenizer.vocabulary != nil ? ", vocab.txt" : "")")
        }
    }
}
