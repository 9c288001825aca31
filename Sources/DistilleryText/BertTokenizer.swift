import Foundation
import DistilleryTensor

/// One encoded input: ids with [CLS]/[SEP], token types (0 first segment, 1 second).
public struct Encoding: Sendable, Equatable, Codable {
    public var inputIds: [Int32]
    public var tokenTypeIds: [Int32]
    enum CodingKeys: String, CodingKey { case inputIds = "input_ids", tokenTypeIds = "token_type_ids" }
}

/// Hugging Face's BERT tokenizer: the basic tokenizer (clean, CJK split, accent strip,
/// lowercase, punctuation split), special tokens matched literally in the raw text, and greedy
/// longest-match WordPiece with "##" continuations (a word over 100 characters is [UNK]).
///
/// Thread-safe: `encode` and `tokenize` may run on many threads at once.
public final class BertTokenizer: Sendable {
    public let vocabulary: Vocabulary
    public let lowercase: Bool
    public let stripAccents: Bool
    public let tokenizeChineseChars: Bool
    public let maxCharsPerWord: Int
    public let unkId: Int32, clsId: Int32, sepId: Int32, padId: Int32, maskId: Int32
    /// Special tokens as they may appear literally in text, longest first.
    let specials: [([UInt8], Int32)]
    let specialFirstBytes: [Bool]
    let normalizer: Normalizer

    public init(vocabulary: Vocabulary, lowercase: Bool = true, stripAccents: Bool? = nil,
                tokenizeChineseChars: Bool = true, maxCharsPerWord: Int = 100,
                unk: String = "[UNK]", cls: String = "[CLS]", sep: String = "[SEP]",
                pad: String = "[PAD]", mask: String = "[MASK]", path: String = "vocab.txt") throws {
        self.vocabulary = vocabulary
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
        self.tokenizeChineseChars = tokenizeChineseChars
        self.maxCharsPerWord = maxCharsPerWord
        func need(_ t: String) throws -> Int32 {
            guard let id = vocabulary.id(t) else { throw TokenizerError.missingSpecialToken(path: path, token: t) }
            return id
        }
        unkId = try need(unk); clsId = try need(cls); sepId = try need(sep); padId = try need(pad); maskId = try need(mask)
        specials = [unk, cls, sep, pad, mask].map { (Array($0.utf8), vocabulary.id($0)!) }.sorted { $0.0.count > $1.0.count }
        var firsts = [Bool](repeating: false, count: 256)
        for (b, _) in specials where !b.isEmpty { firsts[Int(b[0])] = true }
        specialFirstBytes = firsts
        normalizer = Normalizer(lowercase: lowercase, stripAccents: stripAccents ?? lowercase, chineseChars: tokenizeChineseChars)
    }

    /// The ids of [CLS], [SEP], [PAD], [MASK] and [UNK].
    public var specialIds: [Int32] { [clsId, sepId, padId, maskId, unkId] }

    /// Loads a vocab.txt, or a tokenizer folder (vocab.txt + optional tokenizer_config.json with
    /// do_lower_case, strip_accents, tokenize_chinese_chars and special-token names).
    public static func load(path: String) throws -> BertTokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TokenizerError.unreadable(path: path, reason: "no such file or folder")
        }
        if !isDir.boolValue { return try BertTokenizer(vocabulary: .load(path: path), path: path) }
        let vocabPath = path + "/vocab.txt"
        let vocab = try Vocabulary.load(path: vocabPath)
        let configPath = path + "/tokenizer_config.json"
        guard FileManager.default.fileExists(atPath: configPath) else { return try BertTokenizer(vocabulary: vocab, path: vocabPath) }
        return try configured(vocab, config: try readFile(configPath), configPath: configPath, vocabPath: vocabPath)
    }

    /// A tokenizer from vocab.txt text and optional tokenizer_config.json text (as carried in a
    /// checkpoint's metadata).
    public static func from(vocabularyText: String, configText: String?, origin: String) throws -> BertTokenizer {
        let vocab = try Vocabulary(tokens: Vocabulary.lines(vocabularyText), path: origin)
        guard let configText else { return try BertTokenizer(vocabulary: vocab, path: origin) }
        return try configured(vocab, config: Data(configText.utf8), configPath: origin + " (tokenizer_config.json)", vocabPath: origin)
    }

    /// Applies tokenizer_config.json: do_lower_case, strip_accents, tokenize_chinese_chars and
    /// the special-token names.
    static func configured(_ vocab: Vocabulary, config: Data, configPath: String, vocabPath: String) throws -> BertTokenizer {
        let raw: Any
        do { raw = try JSONSerialization.jsonObject(with: config) } catch {
            throw TokenizerError.unreadable(path: configPath, reason: "not JSON")
        }
        guard let c = raw as? [String: Any] else { throw TokenizerError.unreadable(path: configPath, reason: "not a JSON object") }
        func bool(_ k: String, _ d: Bool?) throws -> Bool? {
            guard let v = c[k], !(v is NSNull) else { return d }
            guard let b = v as? Bool else { throw TokenizerError.badTokenizerConfig(path: configPath, field: k, reason: "expected true, false or null") }
            return b
        }
        func token(_ k: String, _ d: String) throws -> String {
            guard let v = c[k], !(v is NSNull) else { return d }
            if let s = v as? String { return s }
            if let o = v as? [String: Any], let s = o["content"] as? String { return s }
            throw TokenizerError.badTokenizerConfig(path: configPath, field: k, reason: "expected a token string")
        }
        let lower = try bool("do_lower_case", true) ?? true
        return try BertTokenizer(vocabulary: vocab, lowercase: lower, stripAccents: try bool("strip_accents", nil),
                                 tokenizeChineseChars: try bool("tokenize_chinese_chars", true) ?? true,
                                 unk: try token("unk_token", "[UNK]"), cls: try token("cls_token", "[CLS]"),
                                 sep: try token("sep_token", "[SEP]"), pad: try token("pad_token", "[PAD]"),
                                 mask: try token("mask_token", "[MASK]"), path: vocabPath)
    }

    // MARK: encoding

    /// [CLS] text [SEP] (text_pair [SEP]), truncated longest-first to `maxLength` tokens in all.
    public func encode(_ text: String, pair: String? = nil, maxLength: Int? = nil) -> Encoding {
        var a = tokenize(text)
        var b = pair.map { tokenize($0) }
        if let maxLength {
            let room = max(0, maxLength - (b == nil ? 2 : 3))
            Self.truncateLongestFirst(&a, &b, to: room)
        }
        var ids: [Int32] = [clsId] + a + [sepId]
        var types = [Int32](repeating: 0, count: ids.count)
        if let b {
            ids += b + [sepId]
            types += [Int32](repeating: 1, count: b.count + 1)
        }
        return Encoding(inputIds: ids, tokenTypeIds: types)
    }

    /// The Rust tokenizers' longest-first rule: keep the shorter side whole if it fits in half,
    /// otherwise give each side half (the second gets the odd token).
    static func truncateLongestFirst(_ a: inout [Int32], _ b: inout [Int32]?, to room: Int) {
        guard var second = b else {
            if a.count > room { a.removeLast(a.count - room) }
            return
        }
        if a.count + second.count <= room { return }
        var n1 = a.count, n2 = second.count
        let swap = n1 > n2
        if swap { Swift.swap(&n1, &n2) }
        n2 = n1 > room ? n1 : max(n1, room - n1)
        if n1 + n2 > room { n1 = room / 2; n2 = n1 + room % 2 }
        if swap { Swift.swap(&n1, &n2) }
        if a.count > n1 { a.removeLast(a.count - n1) }
        if second.count > n2 { second.removeLast(second.count - n2) }
        b = second
    }

    /// WordPiece ids of `text`, without special tokens.
    public func tokenize(_ text: String) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3 + 4)
        var text = text
        text.withUTF8 { appendTokens(of: $0, to: &out) }
        return out
    }

    /// The token strings for ids.
    public func tokens(_ ids: [Int32]) -> [String] {
        ids.map { $0 >= 0 && Int($0) < vocabulary.count ? vocabulary.tokens[Int($0)] : "[?]" }
    }

    /// Appends the WordPiece ids of UTF-8 `bytes` (valid UTF-8) to `out`.
    public func appendTokens(of bytes: UnsafeBufferPointer<UInt8>, to out: inout [Int32]) {
        var word = [UInt8]()
        word.reserveCapacity(64)
        var chars = 0
        let n = bytes.count
        let lower = lowercase
        var i = 0

        @inline(__always) func flush() {
            if !word.isEmpty {
                wordPiece(word, chars: chars, into: &out)
                word.removeAll(keepingCapacity: true)
                chars = 0
            }
        }
        @inline(__always) func appendScalar(_ v: UInt32) {
            if v < 0x80 { word.append(UInt8(v)) } else if v < 0x800 {
                word.append(UInt8(0xC0 | (v >> 6))); word.append(UInt8(0x80 | (v & 0x3F)))
            } else if v < 0x10000 {
                word.append(UInt8(0xE0 | (v >> 12))); word.append(UInt8(0x80 | ((v >> 6) & 0x3F))); word.append(UInt8(0x80 | (v & 0x3F)))
            } else {
                word.append(UInt8(0xF0 | (v >> 18))); word.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
                word.append(UInt8(0x80 | ((v >> 6) & 0x3F))); word.append(UInt8(0x80 | (v & 0x3F)))
            }
            chars += 1
        }
        @inline(__always) func emit(_ v: UInt32, _ kind: UInt8) {
            switch kind {
            case Normalizer.Kind.space.rawValue: flush()
            case Normalizer.Kind.punct.rawValue:
                flush(); appendScalar(v); flush()
            default: appendScalar(v)
            }
        }

        while i < n {
            let b = bytes[i]
            if specialFirstBytes[Int(b)], let (len, id) = matchSpecial(bytes, at: i) {
                flush()
                out.append(id)
                i += len
                continue
            }
            if b < 0x80 {
                i += 1
                switch asciiClass[Int(b)] {
                case 0: word.append(lower && b >= 65 && b <= 90 ? b | 0x20 : b); chars += 1
                case 1: flush()
                case 2: flush(); word.append(b); chars = 1; flush()
                default: break  // removed control character
                }
                continue
            }
            // Multi-byte scalar (input is valid UTF-8).
            var v: UInt32
            if b < 0xE0 { v = UInt32(b & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F); i += 2 } else if b < 0xF0 {
                v = UInt32(b & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F); i += 3
            } else {
                v = UInt32(b & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F)
                i += 4
            }
            if v < 0x10000 {
                switch normalizer.action(v) {
                case .remove: break
                case .space: flush()
                case let .emit(start, count, isolated):
                    if isolated { flush() }
                    for k in Int(start)..<Int(start + count) { emit(normalizer.pool[k], normalizer.poolKinds[k]) }
                    if isolated { flush() }
                }
            } else {
                switch normalizer.computeAstral(v) {
                case .remove: break
                case .space: flush()
                case let .emitList(list, isolated):
                    if isolated { flush() }
                    for (s, k) in list { emit(s, k.rawValue) }
                    if isolated { flush() }
                }
            }
        }
        flush()
    }

    @inline(__always)
    func matchSpecial(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> (Int, Int32)? {
        outer: for (s, id) in specials {
            if i + s.count > bytes.count { continue }
            for k in 0..<s.count where bytes[i + k] != s[k] { continue outer }
            return (s.count, id)
        }
        return nil
    }

    /// Greedy longest-match WordPiece of one normalised word.
    func wordPiece(_ word: [UInt8], chars: Int, into out: inout [Int32]) {
        if chars > maxCharsPerWord { out.append(unkId); return }
        word.withUnsafeBufferPointer { w in
            let before = out.count
            var start = 0
            while start < w.count {
                let trie = start == 0 ? vocabulary.start : vocabulary.continuation
                guard let (id, end) = trie.longestPrefix(w, from: start, end: w.count) else {
                    out.removeLast(out.count - before)
                    out.append(unkId)
                    return
                }
                out.append(id)
                start = end
            }
        }
    }
}

/// ASCII classes: 0 word character, 1 whitespace, 2 punctuation, 3 removed (control).
private let asciiClass: [UInt8] = (0..<128).map { b -> UInt8 in
    switch b {
    case 9, 10, 13, 32: return 1
    case 0..<32, 127: return 3
    case 33...47, 58...64, 91...96, 123...126: return 2
    default: return 0
    }
}
