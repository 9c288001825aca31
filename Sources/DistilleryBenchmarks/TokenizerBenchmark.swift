import Foundation
import DistilleryTensor
import DistilleryText

public enum TokenizerBenchmark {
    /// Tokenizes every line of `file` (in memory) with the current thread count; returns the
    /// seconds taken and the tokens produced. For `distill bench tokenize`.
    public static func time(file: String, tokenizer: BertTokenizer) throws -> (seconds: Double, bytes: Int, tokens: Int) {
        let mapped = try MappedFile(path: file)
        let bytes = mapped.bytes
        var lines: [Range<Int>] = []
        var s = 0
        for i in 0..<bytes.count where bytes[i] == UInt8(ascii: "\n") { lines.append(s..<i); s = i + 1 }
        if s < bytes.count { lines.append(s..<bytes.count) }
        // Touch the pages first so the timing measures tokenization, not disk reads.
        var sink: UInt8 = 0
        for i in stride(from: 0, to: bytes.count, by: 4096) { sink &+= bytes[i] }
        let start = Timing.now()
        let results = Corpus.tokenizeLines(bytes, lines, tokenizer)
        let seconds = Timing.now() - start
        return (seconds, bytes.count + Int(sink & 0), results.reduce(0) { $0 + $1.ids.count })
    }
}
