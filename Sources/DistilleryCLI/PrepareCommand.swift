import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryTraining
import DistilleryText

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize text files into a compact token file for training.",
        discussion: """
        Input: UTF-8 text, one paragraph or document per line; a blank line ends a document. \
        Consecutive lines of a document are packed into sequences [CLS] … [SEP] of at most \
        --max-seq-len tokens (--sequences packed, as BERT pre-trains), or every line \
        (--sequences lines) or every sentence (--sequences sentences: English punctuation rules, \
        for distilling a sentence encoder on the kind of input it will embed) is its own \
        sequence; a longer piece is split. Invalid UTF-8 is replaced and counted. \
        Tokenization runs on all cores; the output is written atomically.
        """)

    @Option(name: .long, help: "A vocab.txt or tokenizer folder (usually the teacher's folder).")
    var tokenizer: String
    @Option(name: .long, parsing: .upToNextOption, help: "Text files.")
    var input: [String]
    @Option(name: .long, help: "Output token file.")
    var out: String
    @Option(name: .long, help: "Longest sequence, [CLS] and [SEP] included.")
    var maxSeqLen = 128
    @Option(name: .long, help: "What a sequence holds (see above).")
    var sequences: SequenceUnit = .packed
    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (3...65536).contains(maxSeqLen) else { throw ValidationError("--max-seq-len must be 3…65536 ([CLS] and [SEP] take two), got \(maxSeqLen)") }
        guard !input.isEmpty else { throw ValidationError("give at least one --input text file") }
    }

    func run() throws {
        threads.apply()
        try AtomicFileWriter.checkDestination(out)
        let t = try BertTokenizer.load(path: tokenizer)
        let bar = ProgressBar("prepare", total: 1)
        let start = Date()
        let summary = try Corpus.prepare(inputs: input, tokenizer: t, maxSequenceLength: maxSeqLen, unit: sequences, output: out) { done, total in
            let mb = Double(done) / 1e6
            bar.update(Double(done) / Double(max(total, 1)), String(format: "%.1f MB  %.1f MB/s", mb, mb / max(1e-9, Date().timeIntervalSince(start))))
        }
        bar.finish()
        if json {
            print(try jsonText(summary))
            return
        }
        print("""
        \(out)
          files      \(summary.files)  (\(fixed(Double(summary.bytes) / 1e6, 1)) MB)
          lines      \(grouped(summary.lines))  in \(grouped(summary.documents)) documents
          sequences  \(grouped(summary.sequences))  (at most \(maxSeqLen) tokens)
          tokens     \(grouped(summary.tokens))
          [UNK]      \(grouped(summary.unknownTokens))  (\(fixed(summary.unknownRate * 100, 3))% of text tokens)
          invalid UTF-8 replaced  \(grouped(summary.invalidUTF8))
          time       \(fixed(summary.seconds, 2)) s  (\(fixed(summary.megabytesPerSecond, 1)) MB/s)
        """)
    }
}

extension SequenceUnit: ExpressibleByArgument {
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
