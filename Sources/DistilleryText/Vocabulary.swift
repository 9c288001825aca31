import Foundation
import DistilleryTensor

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case emptyVocabulary(path: String)
    case duplicateToken(path: String, token: String, line: Int)
    case missingSpecialToken(path: String, token: String)
    case badTokenizerConfig(path: String, field: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read tokenizer: \(r)"
        case let .emptyVocabulary(p): return "\(p): the vocabulary is empty"
        case let .duplicateToken(p, t, l): return "\(p):\(l): token '\(t)' appears twice"
        case let .missingSpecialToken(p, t): return "\(p): the vocabulary has no '\(t)' token"
        case let .badTokenizerConfig(p, f, r): return "\(p): \(f): \(r)"
        }
    }
}

/// A WordPiece vocabulary (vocab.txt: one token per line, id = line number) with the tries the
/// tokenizer walks: one for word-initial pieces, one for "##" continuations.
public struct Vocabulary: Sendable {
    public let tokens: [String]
    public let ids: [String: Int32]
    /// FNV-1a 64 of the tokens joined by "\n": identifies the vocabulary in prepared data.
    public let hash: UInt64
    let start: ByteTrie
    let continuation: ByteTrie

    public var count: Int { tokens.count }
    public func id(_ token: String) -> Int32? { ids[token] }

    public init(tokens: [String], path: String = "vocabulary") throws {
        guard !tokens.isEmpty else { throw TokenizerError.emptyVocabulary(path: path) }
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            if ids[t] != nil { throw TokenizerError.duplicateToken(path: path, token: t, line: i + 1) }
            ids[t] = Int32(i)
        }
        self.tokens = tokens
        self.ids = ids
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for (i, t) in tokens.enumerated() {
            if i > 0 { h = (h ^ 10) &* 0x100_0000_01b3 }
            for b in t.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        hash = h
        start = ByteTrie(tokens.enumerated().map { (Array($1.utf8), Int32($0)) })
        // Compare bytes, not Characters: in "##ि" the mark joins the second '#' into one grapheme.
        continuation = ByteTrie(tokens.enumerated().compactMap { i, t in
            t.utf8.starts(with: "##".utf8) && t.utf8.count > 2 ? (Array(t.utf8.dropFirst(2)), Int32(i)) : nil
        })
    }

    /// Reads vocab.txt. Lines end in \n, \r\n or \r (Python's universal newlines, which the
    /// Hugging Face tokenizer reads with); the last empty line is not a token.
    public static func load(path: String) throws -> Vocabulary {
        let data: Data
        do { data = try readFile(path) } catch { throw TokenizerError.unreadable(path: path, reason: "\(error)") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError.unreadable(path: path, reason: "not UTF-8")
        }
        return try Vocabulary(tokens: lines(text), path: path)
    }

    /// vocab.txt's tokens: its lines, ended by \n, \r\n or \r; the last empty line is not one.
    public static func lines(_ text: String) -> [String] {
        // "\r\n" is one Character in Swift (so splitting on "\n" alone never cuts it), and a
        // line break is always a Character of its own.
        var lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }.map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}

/// A byte trie in flat arrays: longest-prefix lookups touch no dictionaries and allocate nothing.
struct ByteTrie: Sendable {
    // Node n: its edges are edgeBytes/edgeTargets[first[n] ..< first[n] + count[n]], sorted.
    private var first: [Int32] = []
    private var count: [Int32] = []
    private var value: [Int32] = []     // token id, or -1
    private var edgeBytes: [UInt8] = []
    private var edgeTargets: [Int32] = []
    /// The root's children by byte, for the hot first step.
    private var rootTable = [Int32](repeating: -1, count: 256)

    init(_ entries: [([UInt8], Int32)]) {
        // Build with per-node dictionaries, then flatten breadth-first.
        var children: [[UInt8: Int]] = [[:]]
        var values: [Int32] = [-1]
        for (bytes, id) in entries {
            var n = 0
            for b in bytes {
                if let c = children[n][b] { n = c } else {
                    children.append([:]); values.append(-1)
                    children[n][b] = children.count - 1
                    n = children.count - 1
                }
            }
            if values[n] < 0 { values[n] = id }
        }
        var order = [0], index = [0: 0]
        var i = 0
        while i < order.count {
            for (_, c) in children[order[i]].sorted(by: { $0.key < $1.key }) { index[c] = order.count; order.append(c) }
            i += 1
        }
        for old in order {
            first.append(Int32(edgeBytes.count))
            let kids = children[old].sorted { $0.key < $1.key }
            count.append(Int32(kids.count))
            value.append(values[old])
            for (b, c) in kids { edgeBytes.append(b); edgeTargets.append(Int32(index[c]!)) }
        }
        for e in 0..<Int(count[0]) { rootTable[Int(edgeBytes[e])] = edgeTargets[e] }
    }

    @inline(__always)
    func child(_ n: Int32, _ b: UInt8) -> Int32 {
        if n == 0 { return rootTable[Int(b)] }
        var lo = Int(first[Int(n)]), hi = lo + Int(count[Int(n)])
        while lo < hi {
            let mid = (lo + hi) >> 1
            let m = edgeBytes[mid]
            if m == b { return edgeTargets[mid] }
            if m < b { lo = mid + 1 } else { hi = mid }
        }
        return -1
    }

    /// The longest vocabulary entry that is a prefix of bytes[from ..< end]: (id, its end).
    @inline(__always)
    func longestPrefix(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, end: Int) -> (Int32, Int)? {
        var n: Int32 = 0
        var best: (Int32, Int)? = nil
        var i = from
        while i < end {
            n = child(n, bytes[i])
            if n < 0 { break }
            i += 1
            let v = value[Int(n)]
            if v >= 0 { best = (v, i) }
        }
        return best
    }
}
