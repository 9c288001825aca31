import Foundation

/// BERT's text normalisation and pre-tokenisation for one Unicode scalar, as Hugging Face's
/// BertNormalizer and BertPreTokenizer do it (the Rust `tokenizers` order):
///   1. clean: remove U+0000, U+FFFD and control/format/unassigned characters; whitespace → ' '
///   2. put spaces around CJK ideographs
///   3. strip accents: NFD, then drop non-spacing marks (Mn)
///   4. lowercase (per character, full Unicode mapping)
///   5. split on whitespace and around every punctuation character
///
/// Every step is a function of one scalar, so a scalar maps to a short list of output scalars,
/// each either part of a word, a word boundary, or a punctuation token. The Basic Multilingual
/// Plane is precomputed into a table (about 45 ms once per process); rarer scalars are
/// computed on the fly.
struct Normalizer: Sendable {
    enum Kind: UInt8 { case word = 0, space = 1, punct = 2 }

    /// What one input scalar becomes.
    enum Action: Equatable {
        case remove
        case space
        /// Output scalars with their kinds; `isolated` (a CJK ideograph) also ends the word
        /// before and after it.
        case emit(start: Int32, count: Int32, isolated: Bool)
    }

    let lowercase: Bool
    let stripAccents: Bool
    let chineseChars: Bool
    /// BMP table: for each scalar, an action encoded as (kind byte, pool offset, count).
    private let table: [UInt64]
    let pool: [UInt32]       // output scalars
    let poolKinds: [UInt8]   // Kind of each output scalar

    init(lowercase: Bool, stripAccents: Bool, chineseChars: Bool) {
        self.lowercase = lowercase; self.stripAccents = stripAccents; self.chineseChars = chineseChars
        var table = [UInt64](repeating: 0, count: 0x10000)
        var pool: [UInt32] = [], kinds: [UInt8] = []
        for cp in UInt32(0)..<0x10000 {
            switch Self.compute(cp, lowercase: lowercase, stripAccents: stripAccents, chineseChars: chineseChars) {
            case .remove: table[Int(cp)] = 0
            case .space: table[Int(cp)] = 1
            case let .emitList(list, isolated):
                table[Int(cp)] = (isolated ? 3 : 2) | UInt64(pool.count) << 8 | UInt64(list.count) << 40
                for (s, k) in list { pool.append(s); kinds.append(k.rawValue) }
            }
        }
        self.table = table; self.pool = pool; self.poolKinds = kinds
    }

    enum Computed { case remove, space, emitList([(UInt32, Kind)], Bool) }

    /// BMP scalars come from the table; others are computed (and their outputs returned in
    /// `scratch`, which the caller passes back as the pool).
    @inline(__always)
    func action(_ cp: UInt32) -> Action {
        let e = table[Int(cp & 0xFFFF)]
        switch e & 0xFF {
        case 0: return .remove
        case 1: return .space
        default: return .emit(start: Int32(truncatingIfNeeded: (e >> 8) & 0xFFFF_FFFF), count: Int32(e >> 40), isolated: e & 0xFF == 3)
        }
    }

    static func compute(_ cp: UInt32, lowercase: Bool, stripAccents: Bool, chineseChars: Bool) -> Computed {
        guard let s = Unicode.Scalar(cp) else { return .remove }  // surrogates
        if cp == 0 || cp == 0xFFFD || isControl(s) { return .remove }
        if isWhitespace(s) { return .space }
        let isolated = chineseChars && isChinese(cp)
        var out: [Unicode.Scalar] = [s]
        if stripAccents {
            if cp >= 0x80 {
                out = String(Character(s)).decomposedStringWithCanonicalMapping.unicodeScalars
                    .filter { $0.properties.generalCategory != .nonspacingMark }
            }
        }
        if lowercase {
            out = out.flatMap { $0.value < 0x80 ? [Unicode.Scalar(UInt8(ascii: $0) | (($0.value >= 65 && $0.value <= 90) ? 0x20 : 0))]
                                                : Array($0.properties.lowercaseMapping.unicodeScalars) }
        }
        return .emitList(out.map { ($0.value, isWhitespace($0) ? .space : isPunctuation($0) ? .punct : .word) }, isolated)
    }

    /// Classifies a non-BMP scalar (rare: emoji, historic scripts, CJK extensions).
    func computeAstral(_ cp: UInt32) -> Computed {
        Self.compute(cp, lowercase: lowercase, stripAccents: stripAccents, chineseChars: chineseChars)
    }

    /// Control, format, surrogate, private-use and unassigned characters, except \t \n \r
    /// (which count as whitespace).
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// ASCII punctuation and every Unicode punctuation category.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// The CJK ideograph blocks BERT isolates (the Rust tokenizer's list).
    static func isChinese(_ cp: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(cp) || (0x3400...0x4DBF).contains(cp) || (0x20000...0x2A6DF).contains(cp)
            || (0x2A700...0x2B73F).contains(cp) || (0x2B740...0x2B81F).contains(cp) || (0x2B920...0x2CEAF).contains(cp)
            || (0xF900...0xFAFF).contains(cp) || (0x2F800...0x2FA1F).contains(cp)
    }
}
