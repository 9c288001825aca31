import Foundation
import DistilleryTensor

/// What `prepare` did.
public struct PrepareSummary: Codable, Sendable, Equatable {
    public var files = 0
    public var bytes = 0
    public var lines = 0
    public var documents = 0
    public var sequences = 0
    public var tokens = 0
    public var unknownTokens = 0
    public var invalidUTF8 = 0
    public var seconds = 0.0

    /// [UNK] share of the text tokens (excluding [CLS] and [SEP]).
    public var unknownRate: Double {
        let text = tokens - 2 * sequences
        return text > 0 ? Double(unknownTokens) / Double(text) : 0
    }
    public var megabytesPerSecond: Double { seconds > 0 ? Double(bytes) / 1e6 / seconds : 0 }
}

public enum PrepareError: Error, CustomStringConvertible, Equatable {
    case noInput
    case badSequenceLength(Int)

    public var description: String {
        switch self {
        case .noInput: return "no input files given"
        case let .badSequenceLength(n): return "--max-seq-len \(n): must be 3…65536 ([CLS], at least one token, [SEP])"
        }
    }
}

/// What one sequence holds.
public enum SequenceUnit: String, Sendable, Equatable, Codable, CaseIterable {
    /// Consecutive lines of a document packed up to the sequence length, as BERT pre-trains.
    case packed
    /// Every line its own sequence.
    case lines
    /// Every sentence its own sequence (`SentenceSplitter`), as a sentence encoder is used.
    case sentences
}

public enum Corpus {
    /// Tokenizes text files (one paragraph or document per line; a blank line ends a document)
    /// on all cores and cuts them into sequences [CLS] … [SEP] of at most `maxSequenceLength`
    /// tokens: consecutive lines of a document packed together (`unit` .packed), or a line or a
    /// sentence a sequence; a piece longer than that is split.
    /// Writes a token file atomically. `progress(bytesDone, bytesTotal)` is called as it goes.
    public static func prepare(inputs: [String], tokenizer: BertTokenizer, maxSequenceLength: Int = 128,
                               unit: SequenceUnit = .packed,
                               output: String, progress: ((Int, Int) -> Void)? = nil) throws -> PrepareSummary {
        guard !inputs.isEmpty else { throw PrepareError.noInput }
        // The token file records the length in 32 bits; no model takes more than 2^16 positions.
        guard (3...65536).contains(maxSequenceLength) else { throw PrepareError.badSequenceLength(maxSequenceLength) }
        let start = Timing.now()
        let files = try inputs.map { try MappedFile(path: $0) }
        let total = files.reduce(0) { $0 + $1.size }
        let vocab = tokenizer.vocabulary
        let tokenBytes = vocab.count <= 65536 ? 2 : 4
        let writer = try AtomicFileWriter(path: output)
        try writer.write([UInt8](repeating: 0, count: TokenFileHeader.size))

        var summary = PrepareSummary()
        summary.files = files.count
        var packer = Packer(cls: tokenizer.clsId, sep: tokenizer.sepId, room: maxSequenceLength - 2)
        var pending: [Int32] = []   // packed tokens not yet written
        var inDocument = false      // a line with tokens since the last blank one: a document to count
        func drain(force: Bool) throws {
            if pending.isEmpty || (!force && pending.count < 1 << 20) { return }
            if tokenBytes == 2 {
                let narrow = pending.map { UInt16(truncatingIfNeeded: $0).littleEndian }
                try narrow.withUnsafeBytes { try writer.write($0) }
            } else {
                let wide = pending.map { UInt32(bitPattern: $0).littleEndian }
                try wide.withUnsafeBytes { try writer.write($0) }
            }
            pending.removeAll(keepingCapacity: true)
        }

        var done = 0
        for file in files {
            let bytes = file.bytes
            var pos = 0
            while pos < bytes.count {
                // A block of whole lines, about 4 MB.
                var end = min(bytes.count, pos + (4 << 20))
                while end < bytes.count && bytes[end - 1] != UInt8(ascii: "\n") { end += 1 }
                var lines: [Range<Int>] = []
                var s = pos
                for i in pos..<end where bytes[i] == UInt8(ascii: "\n") { lines.append(s..<i); s = i + 1 }
                if s < end { lines.append(s..<end) }
                // The pieces each line is cut into: the line itself, or its sentences.
                var pieces: [Range<Int>] = [], first: [Int] = []
                pieces.reserveCapacity(lines.count)
                for line in lines {
                    first.append(pieces.count)
                    if unit == .sentences { SentenceSplitter.split(bytes, line, into: &pieces) } else { pieces.append(line) }
                }
                first.append(pieces.count)
                let results = tokenizeLines(bytes, pieces, tokenizer)
                for l in lines.indices {
                    var blank = true
                    for r in results[first[l]..<first[l + 1]] {
                        summary.invalidUTF8 += r.invalid
                        summary.unknownTokens += r.unknown
                        if r.ids.isEmpty { continue }
                        blank = false
                        packer.add(r.ids, into: &pending)
                        if unit != .packed { packer.flush(into: &pending) }
                    }
                    // A line without tokens ends the document.
                    if blank {
                        if inDocument { summary.documents += 1 }
                        packer.flush(into: &pending)
                        inDocument = false
                    } else {
                        inDocument = true
                    }
                }
                summary.lines += lines.count
                done += end - pos
                pos = end
                try drain(force: false)
                progress?(done, total)
            }
            if inDocument { summary.documents += 1 }
            packer.flush(into: &pending)
            inDocument = false
        }
        try drain(force: true)
        let offsets = packer.offsets.map { UInt64($0).littleEndian }
        try offsets.withUnsafeBytes { try writer.write($0) }
        summary.sequences = packer.offsets.count - 1
        summary.tokens = packer.offsets.last ?? 0
        summary.bytes = total
        let header = TokenFileHeader(vocabularySize: vocab.count, tokenBytes: tokenBytes, maxSequenceLength: maxSequenceLength,
                                     vocabularyHash: vocab.hash, sequences: summary.sequences, tokens: summary.tokens,
                                     lines: summary.lines, documents: summary.documents,
                                     unknownTokens: summary.unknownTokens, invalidUTF8: summary.invalidUTF8)
        try header.encoded().withUnsafeBytes { try writer.write($0, at: 0) }
        try writer.commit()
        summary.seconds = Timing.now() - start
        return summary
    }

    package struct LineResult { package var ids: [Int32] = []; var unknown = 0; var invalid = 0 }

    /// Tokenizes lines on all cores; invalid UTF-8 is replaced by U+FFFD (which BERT drops) and counted.
    package static func tokenizeLines(_ bytes: UnsafeRawBufferPointer, _ lines: [Range<Int>], _ t: BertTokenizer) -> [LineResult] {
        var results = [LineResult](repeating: LineResult(), count: lines.count)
        results.withUnsafeMutableBufferPointer { out in
            let out = SendablePointer(out.baseAddress!)
            Parallel.forEachChunk(lines.count, minPerChunk: 16) { _, chunk in
                for i in chunk {
                    let raw = UnsafeBufferPointer(rebasing: bytes.bindMemory(to: UInt8.self)[lines[i]])
                    var r = LineResult()
                    if UTF8Check.isValid(raw) {
                        t.appendTokens(of: raw, to: &r.ids)
                    } else {
                        var s = String(decoding: raw, as: UTF8.self)
                        r.invalid = UTF8Check.replacements(raw, repaired: s)
                        s.withUTF8 { t.appendTokens(of: $0, to: &r.ids) }
                    }
                    for id in r.ids where id == t.unkId { r.unknown += 1 }
                    out.p[i] = r
                }
            }
        }
        return results
    }
}

/// Packs lines of a document into [CLS] … [SEP] sequences of at most `room` text tokens.
struct Packer {
    let cls: Int32, sep: Int32, room: Int
    var current: [Int32] = []
    /// Token offsets of the sequences written so far (starts at 0).
    var offsets: [Int] = [0]

    mutating func add(_ line: [Int32], into out: inout [Int32]) {
        if current.count + line.count <= room {
            current += line
            return
        }
        flush(into: &out)
        var i = 0
        while line.count - i > room {
            current = Array(line[i..<(i + room)])
            flush(into: &out)
            i += room
        }
        current = Array(line[i...])
    }

    mutating func flush(into out: inout [Int32]) {
        if current.isEmpty { return }
        out.append(cls); out.append(contentsOf: current); out.append(sep)
        offsets.append(offsets.last! + current.count + 2)
        current.removeAll(keepingCapacity: true)
    }
}

/// Cuts a line of English text into sentences, by rule: a sentence ends at `.`, `!` or `?` (and
/// any closing quotes or brackets after it) followed by white space and a capital letter, a digit
/// or an opening quote or bracket; a `.` after an initial ("J."), a dotted abbreviation ("U.S.",
/// "e.g.") or a common title or short form ("Dr.", "St.", "vs.") ends none. Cuts fall on ASCII
/// bytes only, so every piece stays valid UTF-8 when the line is; the white space between
/// sentences is dropped.
public enum SentenceSplitter {
    /// Appends the sentences of `bytes[line]` to `out` (the whole line when it has one).
    public static func split(_ raw: UnsafeRawBufferPointer, _ line: Range<Int>, into out: inout [Range<Int>]) {
        let b = raw.bindMemory(to: UInt8.self)
        let end = line.upperBound
        var start = line.lowerBound, i = line.lowerBound
        while i < end {
            let c = b[i]
            guard c == 0x2E || c == 0x21 || c == 0x3F else { i += 1; continue }   // . ! ?
            // The terminator run: more . ! ?, then closing quotes and brackets.
            var j = i + 1
            while j < end {
                let d = b[j]
                if d == 0x2E || d == 0x21 || d == 0x3F || d == 0x22 || d == 0x27 || d == 0x29 || d == 0x5D { j += 1; continue }
                if j + 2 < end, d == 0xE2, b[j + 1] == 0x80, b[j + 2] == 0x9D || b[j + 2] == 0x99 { j += 3; continue }   // ” ’
                break
            }
            var k = j
            while k < end && (b[k] == 0x20 || b[k] == 0x09) { k += 1 }
            if k > j && k < end && opensSentence(b, k, end) && !(c == 0x2E && j == i + 1 && isAbbreviation(b, from: start, dot: i)) {
                out.append(start..<j)
                start = k
            }
            i = k > j ? k : j
        }
        if start < end { out.append(start..<end) }
    }

    /// A capital (A…Z, À…Þ), a digit, or an opening quote or bracket.
    static func opensSentence(_ b: UnsafeBufferPointer<UInt8>, _ k: Int, _ end: Int) -> Bool {
        let d = b[k]
        if (0x41...0x5A).contains(d) || (0x30...0x39).contains(d) || d == 0x22 || d == 0x27 || d == 0x28 || d == 0x5B { return true }
        if k + 2 < end, d == 0xE2, b[k + 1] == 0x80, b[k + 2] == 0x9C || b[k + 2] == 0x98 { return true }   // “ ‘
        if k + 1 < end, d == 0xC3, (0x80...0x9E).contains(b[k + 1]), b[k + 1] != 0x97 { return true }   // À…Þ but ×
        return false
    }

    /// Whether the word before the `.` at `dot` is an initial, holds a dot itself, or is one of `shortForms`.
    static func isAbbreviation(_ b: UnsafeBufferPointer<UInt8>, from start: Int, dot: Int) -> Bool {
        var w = dot
        while w > start, isLetter(b[w - 1]) || b[w - 1] == 0x2E { w -= 1 }
        let n = dot - w
        if n == 0 { return false }
        if n == 1 { return (0x41...0x5A).contains(b[w]) }   // an initial
        var key: UInt64 = 0
        for p in w..<dot {
            if b[p] == 0x2E { return true }                 // U.S, e.g, i.e
            if p - w >= 5 { return false }
            key = key << 8 | UInt64(b[p] | 0x20)
        }
        return shortForms.contains(key)
    }

    static func isLetter(_ c: UInt8) -> Bool { (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) }

    /// Titles and short forms that a capitalised word often follows, lower-cased, packed a byte a letter.
    static let shortForms: Set<UInt64> = Set([
        "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "mt", "ft", "vs", "vol", "pp", "fig",
        "gen", "col", "lt", "sgt", "capt", "cmdr", "rev", "hon", "gov", "sen", "rep", "pres", "inc", "ltd", "co",
        "corp", "bros", "jan", "feb", "mar", "apr", "aug", "sep", "sept", "oct", "nov", "dec", "ca", "cf",
    ].map { (s: String) -> UInt64 in s.utf8.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } })
}

enum UTF8Check {
    /// Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
    static func isValid(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = b.count
        while i < n {
            // Eight ASCII bytes at a time.
            if i + 8 <= n, UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8; continue
            }
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            var need = 0, lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return false
            }
            if i + need >= n { return false }   // truncated sequence
            let c1 = b[i + 1]
            if c1 < lo || c1 > hi { return false }
            var k = 2
            while k <= need {
                if b[i + k] & 0xC0 != 0x80 { return false }
                k += 1
            }
            i += need + 1
        }
        return true
    }

    /// How many replacement characters decoding introduced (beyond those spelled in the input).
    static func replacements(_ raw: UnsafeBufferPointer<UInt8>, repaired: String) -> Int {
        var spelled = 0
        if raw.count >= 3 { for i in 0..<(raw.count - 2) where raw[i] == 0xEF && raw[i + 1] == 0xBF && raw[i + 2] == 0xBD { spelled += 1 } }
        return repaired.unicodeScalars.reduce(0) { $0 + ($1 == "\u{FFFD}" ? 1 : 0) } - spelled
    }
}
