import Foundation
import DistilleryTensor

/// Labelled text for sequence classification: a TSV or CSV file with a header line, one example
/// a row, the label and the text (and optionally a second text) in columns named or numbered.
public struct LabelledData: Sendable {
    public struct Example: Sendable, Equatable {
        public let text: String
        public let pair: String?
        public let label: Int32
        /// The line the row starts on (for messages).
        public let line: Int
    }

    /// A column by its header name or its 0-based index ("label", "0").
    public enum Column: Sendable, Equatable, CustomStringConvertible {
        case name(String), index(Int)
        public init(_ s: String) { self = Int(s).map { .index($0) } ?? .name(s) }
        public var description: String {
            switch self {
            case .name(let n): return "'\(n)'"
            case .index(let i): return "column \(i)"
            }
        }
    }

    public let path: String
    public let examples: [Example]
    /// Class names by id: the labels as written in the file (ids in their numeric order when
    /// every label is an integer 0…C−1, sorted otherwise).
    public let labels: [String]

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case format(path: String, line: Int, reason: String)
        case column(path: String, column: String, header: [String])
        case unknownLabel(path: String, line: Int, label: String, known: [String])
        case unknownClass(path: String, line: Int, label: String, classes: [String])
        case empty(path: String)

        public var description: String {
            switch self {
            case let .format(p, l, r): return "\(p):\(l): \(r)"
            case let .column(p, c, h): return "\(p): no \(c) column; the header has \(h.map { "'\($0)'" }.joined(separator: ", "))"
            case let .unknownLabel(p, l, label, known):
                return "\(p):\(l): label '\(label)' is not one of the training labels (\(known.joined(separator: ", ")))"
            case let .empty(p): return "\(p): no examples"
            case let .unknownClass(p, l, label, c):
                let shown = c.count > 12 ? c.prefix(12).joined(separator: ", ") + ", …" : c.joined(separator: ", ")
                return "\(p):\(l): label '\(label)' is neither one of the model's classes (\(shown)) nor a class id 0…\(c.count - 1)"
            }
        }
    }

    /// Reads a file. With `labels` (the training set's classes) every label must be one of them.
    public static func load(_ path: String, label: Column, text: Column, pair: Column? = nil, labels known: [String]? = nil) throws -> LabelledData {
        let data = try readFile(path)
        guard let content = String(validating: data, as: UTF8.self) else {
            // Name the first line that is not UTF-8.
            var line = 1
            for chunk in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                if String(validating: chunk, as: UTF8.self) == nil { break }
                line += 1
            }
            throw Failure.format(path: path, line: line, reason: "not valid UTF-8")
        }
        let separator: Character = path.lowercased().hasSuffix(".csv") ? "," : "\t"
        let rows = try parse(content, separator: separator, path: path)
        guard let header = rows.first else { throw Failure.empty(path: path) }
        func index(_ c: Column) throws -> Int {
            switch c {
            case .name(let n):
                guard let i = header.fields.firstIndex(of: n) else { throw Failure.column(path: path, column: c.description, header: header.fields) }
                if header.fields.lastIndex(of: n) != i {
                    throw Failure.format(path: path, line: header.line, reason: "the header names the column '\(n)' twice; which one is meant cannot be told (rename one, or give the column by number)")
                }
                return i
            case .index(let i):
                guard i >= 0 && i < header.fields.count else { throw Failure.column(path: path, column: c.description, header: header.fields) }
                return i
            }
        }
        let li = try index(label), ti = try index(text), pi = try pair.map(index)
        var raw: [(label: String, text: String, pair: String?, line: Int)] = []
        for r in rows.dropFirst() {
            if r.fields.count == 1 && r.fields[0].isEmpty { continue }
            guard r.fields.count == header.fields.count else {
                throw Failure.format(path: path, line: r.line, reason: "\(r.fields.count) fields, the header has \(header.fields.count)")
            }
            raw.append((r.fields[li].trimmingCharacters(in: .whitespaces), r.fields[ti], pi.map { r.fields[$0] }, r.line))
        }
        if raw.isEmpty { throw Failure.empty(path: path) }
        let names: [String]
        if let known {
            names = known
        } else {
            let distinct = Set(raw.map(\.label))
            let ints = distinct.compactMap { Int($0) }.sorted()
            names = ints.count == distinct.count && ints == Array(0..<ints.count) ? ints.map(String.init) : distinct.sorted()
        }
        guard names.count >= 2 else {
            throw Failure.format(path: path, line: raw[0].line, reason: "every example has the label '\(names.first ?? "")': a classifier needs at least two")
        }
        let ids = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
        let examples = try raw.map { r -> Example in
            guard let id = ids[r.label] else { throw Failure.unknownLabel(path: path, line: r.line, label: r.label, known: names) }
            return Example(text: r.text, pair: r.pair, label: id, line: r.line)
        }
        return LabelledData(path: path, examples: examples, labels: names)
    }

    /// Reads a labelled file for a classifier whose classes are `classes` (its id2label, in
    /// order): each label is a class name or, where the file names none, a class id 0…C−1 (TSVs
    /// such as GLUE's carry ids while a fine-tuned model names its classes). `labels` of the
    /// result are the classes either way.
    public static func load(_ path: String, label: Column, text: Column, pair: Column? = nil, classes: [String]) throws -> LabelledData {
        do {
            return try load(path, label: label, text: text, pair: pair, labels: classes)
        } catch Failure.unknownLabel(let p, let line, let l, _) {
            let ids = (0..<classes.count).map(String.init)
            guard ids != classes, Int(l) != nil else { throw Failure.unknownClass(path: p, line: line, label: l, classes: classes) }
            do {
                let byId = try load(path, label: label, text: text, pair: pair, labels: ids)
                return LabelledData(path: byId.path, examples: byId.examples, labels: classes)
            } catch Failure.unknownLabel(let p2, let line2, let l2, _) {
                // Read as ids, the first label that is not one is the one to name.
                throw Failure.unknownClass(path: p2, line: line2, label: l2, classes: classes)
            }
        }
    }

    /// Rows of fields: tab-separated fields are taken as they are; comma-separated ones follow
    /// RFC 4180 (fields in double quotes may hold commas, quotes written twice, and line breaks).
    static func parse(_ s: String, separator: Character, path: String) throws -> [(fields: [String], line: Int)] {
        var rows: [(fields: [String], line: Int)] = []
        var fields: [String] = [], field = "", quoted = false, line = 1, rowLine = 1, wasQuoted = false
        var it = s.makeIterator()
        var pending: Character? = nil
        func next() -> Character? { if let p = pending { pending = nil; return p }; return it.next() }
        while let ch = next() {
            if quoted {
                if ch == "\"" {
                    let after = next()
                    if after == "\"" { field.append("\"") } else { quoted = false; pending = after }
                } else {
                    if ch == "\n" || ch == "\r\n" { line += 1 }
                    field.append(ch)
                }
                continue
            }
            switch ch {
            case "\"" where separator == "," && field.isEmpty && !wasQuoted:
                quoted = true; wasQuoted = true
            case separator:
                fields.append(field); field = ""; wasQuoted = false
            case "\n", "\r\n":
                fields.append(field); field = ""; wasQuoted = false
                rows.append((fields, rowLine)); fields = []
                line += 1; rowLine = line
            default:
                if wasQuoted { throw Failure.format(path: path, line: line, reason: "text after a closing quote") }
                field.append(ch)
            }
        }
        if quoted { throw Failure.format(path: path, line: rowLine, reason: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty { fields.append(field); rows.append((fields, rowLine)) }
        return rows
    }
}

/// Labelled examples tokenized once: ids and token types per example, batched and padded.
public struct ClassificationSet: Sendable {
    public let data: LabelledData
    public let ids: [[Int32]]
    public let types: [[Int32]]
    public let maxSequenceLength: Int

    public init(_ data: LabelledData, tokenizer: BertTokenizer, maxSequenceLength: Int) {
        self.data = data
        self.maxSequenceLength = maxSequenceLength
        var ids: [[Int32]] = [], types: [[Int32]] = []
        for e in data.examples {
            let enc = tokenizer.encode(e.text, pair: e.pair, maxLength: maxSequenceLength)
            ids.append(enc.inputIds)
            types.append(enc.tokenTypeIds)
        }
        self.ids = ids; self.types = types
    }

    public var count: Int { ids.count }

    /// The examples at `indices` padded to the longest: ids, mask, types [B×S] and labels [B].
    public func batch(_ indices: [Int], padId: Int32, withTokenTypes: Bool) -> (inputIds: [Int32], mask: [Float], types: [Int32]?, labels: [Int32], B: Int, S: Int) {
        let B = indices.count, S = max(1, indices.map { ids[$0].count }.max() ?? 1)
        var inputIds = [Int32](repeating: padId, count: B * S), mask = [Float](repeating: 0, count: B * S)
        var t = [Int32](repeating: 0, count: B * S)
        for (b, i) in indices.enumerated() {
            for (k, id) in ids[i].enumerated() { inputIds[b * S + k] = id; mask[b * S + k] = 1; t[b * S + k] = types[i][k] }
        }
        return (inputIds, mask, withTokenTypes ? t : nil, indices.map { data.examples[$0].label }, B, S)
    }
}
