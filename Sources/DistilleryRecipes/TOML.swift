import Foundation

// A strict TOML reader for recipes: tables, arrays of tables, dotted keys, basic and literal
// strings (one line or several), integers (decimal, hex, octal, binary), floats (inf, nan),
// booleans, arrays and inline tables, comments. Dates and times are refused (recipes have
// none). Every value remembers its line, so errors can name it.
//
// Recipes are files users write and copy around: the reader validates every byte and never
// traps, whatever the input (Tests/Fuzz exercises it).

public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int? { if case .integer(let i) = self { return i }; return nil }
    public var double: Double? {
        switch self {
        case .float(let d): return d
        case .integer(let i): return Double(i)
        default: return nil
        }
    }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [TOMLValue]? { if case .array(let a) = self { return a }; return nil }
    public var table: TOMLTable? { if case .table(let t) = self { return t }; return nil }

    /// "the string \"x\"", "an array", … for messages.
    public var kindDescription: String {
        switch self {
        case .string(let s): return "the string \"\(s)\""
        case .integer(let i): return "the integer \(i)"
        case .float(let d): return "the number \(d)"
        case .bool(let b): return b ? "true" : "false"
        case .array: return "an array"
        case .table: return "a table"
        }
    }

    /// As Foundation's JSON objects (for configs written inline in a recipe).
    /// The dotted path of the first NaN or infinite float in this value (which JSON cannot
    /// carry), nil when there is none.
    public func nonFinitePath(_ prefix: String = "") -> String? {
        switch self {
        case .float(let d): return d.isFinite ? nil : prefix
        case .array(let a):
            for (i, v) in a.enumerated() { if let p = v.nonFinitePath("\(prefix)[\(i)]") { return p } }
            return nil
        case .table(let t):
            for k in t.keys { if let p = t[k]!.nonFinitePath(prefix.isEmpty ? k : prefix + "." + k) { return p } }
            return nil
        default: return nil
        }
    }

    public var jsonObject: Any {
        switch self {
        case .string(let s): return s
        case .integer(let i): return i
        case .float(let d): return d
        case .bool(let b): return b
        case .array(let a): return a.map(\.jsonObject)
        case .table(let t): return Dictionary(uniqueKeysWithValues: t.keys.map { ($0, t[$0]!.jsonObject) })
        }
    }
}

/// A table: keys in the order written, each with the line it was set on.
public final class TOMLTable: Equatable, @unchecked Sendable {
    public private(set) var keys: [String] = []
    private var values: [String: (value: TOMLValue, line: Int)] = [:]
    /// Defined by a [header] (or an inline table, or [[…]]): it cannot be defined again.
    var defined = false
    /// An inline table: closed once written.
    var inline = false
    /// The line of its header.
    public internal(set) var line: Int

    init(line: Int) { self.line = line }

    public subscript(key: String) -> TOMLValue? { values[key]?.value }
    public func line(of key: String) -> Int? { values[key]?.line }

    func set(_ key: String, _ value: TOMLValue, line: Int) {
        if values[key] == nil { keys.append(key) }
        values[key] = (value, line)
    }

    public static func == (a: TOMLTable, b: TOMLTable) -> Bool {
        a.keys == b.keys && a.keys.allSatisfy { a[$0] == b[$0] }
    }
}

public struct TOMLError: Error, CustomStringConvertible, Equatable {
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

public enum TOML {
    /// Parses a document; the root table.
    public static func parse(_ text: String) throws -> TOMLTable {
        var p = Parser(Array(text.utf8))
        return try p.document()
    }
}

struct Parser {
    let b: [UInt8]
    var i = 0
    var line = 1
    /// How deep arrays and inline tables are open: capped, as are a key's parts, so that a
    /// hostile file cannot recurse (or nest tables) deep enough to overflow the stack.
    var depth = 0
    static let maxDepth = 32, maxKeyParts = 32
    var lineStart = 0
    /// Tables created by [[headers]] (their arrays may grow; nothing else may), with the table
    /// and key holding the array.
    var arrayOwners: [ObjectIdentifier: (table: TOMLTable, key: String)] = [:]

    init(_ bytes: [UInt8]) { b = bytes }

    var atEnd: Bool { i >= b.count }
    var c: UInt8 { i < b.count ? b[i] : 0 }
    func peek(_ k: Int) -> UInt8 { i + k < b.count ? b[i + k] : 0 }

    func fail(_ message: String) -> TOMLError { TOMLError(line: line, column: i - lineStart + 1, message: message) }

    mutating func newline() { line += 1; lineStart = i }

    /// Spaces and tabs.
    mutating func spaces() { while c == 0x20 || c == 0x09 { i += 1 } }

    /// A comment up to the end of the line (control characters other than tab are refused).
    mutating func comment() throws {
        guard c == UInt8(ascii: "#") else { return }
        while !atEnd && c != 0x0A && c != 0x0D {
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a comment") }
            i += 1
        }
    }

    /// The end of a line: optional spaces and comment, then a newline or the end.
    mutating func endOfLine() throws {
        spaces()
        try comment()
        if atEnd { return }
        if c == 0x0D && peek(1) == 0x0A { i += 2; newline(); return }
        if c == 0x0A { i += 1; newline(); return }
        throw fail("expected the end of the line, found '\(Self.show(c))'")
    }

    /// Spaces, newlines and comments (between array elements, and between statements).
    mutating func blank() throws {
        while !atEnd {
            if c == 0x20 || c == 0x09 { i += 1 } else if c == 0x0A { i += 1; newline() } else if c == 0x0D && peek(1) == 0x0A {
                i += 2; newline()
            } else if c == UInt8(ascii: "#") { try comment() } else { return }
        }
    }

    static func show(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
    }

    // MARK: document

    mutating func document() throws -> TOMLTable {
        // A byte-order mark is allowed.
        if b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { i = 3; lineStart = 3 }
        let root = TOMLTable(line: 1)
        root.defined = true
        var current = root
        while true {
            try blank()
            if atEnd { return root }
            if c == UInt8(ascii: "[") {
                let array = peek(1) == UInt8(ascii: "[")
                let headerLine = line
                i += array ? 2 : 1
                spaces()
                let path = try keyPath()
                spaces()
                guard c == UInt8(ascii: "]") && (!array || peek(1) == UInt8(ascii: "]")) else {
                    throw fail(array ? "expected ']]' to close the table header" : "expected ']' to close the table header")
                }
                i += array ? 2 : 1
                current = array ? try appendArrayTable(root, path, line: headerLine) : try defineTable(root, path, line: headerLine)
                try endOfLine()
            } else {
                try keyValue(into: current)
                try endOfLine()
            }
        }
    }

    /// The table at `path` below `root`, made where missing (implicitly, for dotted keys and
    /// header prefixes). The last element of an array of tables stands for the array.
    mutating func table(_ root: TOMLTable, _ path: [String], line: Int) throws -> TOMLTable {
        var t = root
        for (k, key) in path.enumerated() {
            switch t[key] {
            case nil:
                let n = TOMLTable(line: line)
                t.set(key, .table(n), line: line)
                t = n
            case .table(let n)?:
                if n.inline { throw fail("'\(path[...k].joined(separator: "."))' is an inline table, which cannot be extended") }
                t = n
            case .array(let a)?:
                // [[array of tables]]: the last table written stands for it.
                guard let last = a.last?.table, arrayOwners[ObjectIdentifier(last)] != nil else {
                    throw fail("'\(path[...k].joined(separator: "."))' is an array, not a table")
                }
                t = last
            case let v?:
                throw fail("'\(path[...k].joined(separator: "."))' is already \(v.kindDescription), not a table")
            }
        }
        return t
    }

    mutating func defineTable(_ root: TOMLTable, _ path: [String], line: Int) throws -> TOMLTable {
        let t = try table(root, path, line: line)
        if t.defined || arrayOwners[ObjectIdentifier(t)] != nil {
            throw fail("table [\(path.joined(separator: "."))] is defined twice")
        }
        t.defined = true
        t.line = line
        return t
    }

    mutating func appendArrayTable(_ root: TOMLTable, _ path: [String], line: Int) throws -> TOMLTable {
        let parent = try table(root, Array(path.dropLast()), line: line)
        let key = path.last!
        let n = TOMLTable(line: line)
        n.defined = true
        switch parent[key] {
        case nil:
            parent.set(key, .array([.table(n)]), line: line)
        case .array(let a)? where !a.isEmpty && a.allSatisfy({ $0.table.map { arrayOwners[ObjectIdentifier($0)] != nil } ?? false }):
            parent.set(key, .array(a + [.table(n)]), line: parent.line(of: key) ?? line)
        case let v?:
            throw fail("'\(path.joined(separator: "."))' is already \(v.kindDescription); [[\(path.joined(separator: "."))]] needs an array of tables")
        }
        arrayOwners[ObjectIdentifier(n)] = (parent, key)
        return n
    }

    // MARK: keys

    mutating func simpleKey() throws -> String {
        if c == UInt8(ascii: "\"") {
            if peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") { throw fail("a key cannot be a multi-line string") }
            return try basicString()
        }
        if c == UInt8(ascii: "'") {
            if peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") { throw fail("a key cannot be a multi-line string") }
            return try literalString()
        }
        let start = i
        while isBare(c) { i += 1 }
        guard i > start else {
            throw fail(atEnd ? "expected a key, found the end of the file" : "expected a key, found '\(Self.show(c))'")
        }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    func isBare(_ x: UInt8) -> Bool {
        (x >= 0x41 && x <= 0x5A) || (x >= 0x61 && x <= 0x7A) || (x >= 0x30 && x <= 0x39) || x == 0x5F || x == 0x2D
    }

    mutating func keyPath() throws -> [String] {
        var path = [try simpleKey()]
        while true {
            spaces()
            guard c == UInt8(ascii: ".") else { return path }
            i += 1
            spaces()
            if path.count == Self.maxKeyParts { throw fail("a key has more than \(Self.maxKeyParts) dotted parts") }
            path.append(try simpleKey())
        }
    }

    mutating func keyValue(into table: TOMLTable) throws {
        let keyLine = line
        let path = try keyPath()
        spaces()
        guard c == UInt8(ascii: "=") else { throw fail("expected '=' after the key '\(path.joined(separator: "."))'") }
        i += 1
        spaces()
        let v = try value()
        let target = try self.table(table, Array(path.dropLast()), line: keyLine)
        let key = path.last!
        if target[key] != nil { throw fail("'\(path.joined(separator: "."))' is set twice") }
        target.set(key, v, line: keyLine)
    }

    // MARK: values

    mutating func value() throws -> TOMLValue {
        if atEnd { throw fail("expected a value, found the end of the file") }
        switch c {
        case UInt8(ascii: "\""):
            if peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") { return .string(try multilineBasic()) }
            return .string(try basicString())
        case UInt8(ascii: "'"):
            if peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") { return .string(try multilineLiteral()) }
            return .string(try literalString())
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "{"): return try inlineTable()
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            if word("true") { return .bool(true) }
            if word("false") { return .bool(false) }
            throw fail("expected a value (strings are quoted)")
        default: return try number()
        }
    }

    mutating func word(_ w: String) -> Bool {
        let u = Array(w.utf8)
        guard i + u.count <= b.count, Array(b[i..<(i + u.count)]) == u, !isBare(peek(u.count)) else { return false }
        i += u.count
        return true
    }

    mutating func number() throws -> TOMLValue {
        let start = i, startColumn = i - lineStart + 1
        while isBare(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: ":") { i += 1 }
        let token = String(decoding: b[start..<i], as: UTF8.self)
        func bad() -> TOMLError { TOMLError(line: line, column: startColumn, message: token.isEmpty ? "expected a value, found '\(Self.show(c))'" : "'\(token)' is not a TOML value (strings are quoted)") }
        if token.isEmpty { throw bad() }
        if token.contains(":") || (token.count >= 8 && token.dropFirst(4).first == "-" && token.prefix(4).allSatisfy(\.isNumber)) {
            throw TOMLError(line: line, column: startColumn, message: "dates and times are not supported in recipes")
        }
        var sign = 1.0, body = Substring(token)
        if body.first == "+" || body.first == "-" { sign = body.first == "-" ? -1 : 1; body = body.dropFirst() }
        switch body {
        case "inf": return .float(sign * .infinity)
        case "nan": return .float(.nan)
        default: break
        }
        // Underscores only between digits.
        if body.hasPrefix("_") || body.hasSuffix("_") || body.contains("__") { throw bad() }
        for (k, ch) in body.enumerated() where ch == "_" {
            let before = body[body.index(body.startIndex, offsetBy: k - 1)], after = body[body.index(body.startIndex, offsetBy: k + 1)]
            guard before.isHexDigit, after.isHexDigit else { throw bad() }
        }
        let digits = body.replacingOccurrences(of: "_", with: "")
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where digits.hasPrefix(prefix) {
            guard token.first != "+" && token.first != "-", let v = Int(digits.dropFirst(2), radix: radix), !digits.dropFirst(2).isEmpty else { throw bad() }
            return .integer(v)
        }
        guard digits.allSatisfy({ $0.isASCII && ($0.isNumber || "eE+-.".contains($0)) }), digits.first?.isNumber == true else { throw bad() }
        // No leading zeros in decimal integers or the integer part of floats.
        let intPart = digits.prefix { $0.isNumber }
        if intPart.count > 1 && intPart.first == "0" { throw bad() }
        if digits.contains(".") || digits.contains("e") || digits.contains("E") {
            // A digit on both sides of the point.
            if let dot = digits.firstIndex(of: ".") {
                let after = digits[digits.index(after: dot)...]
                guard after.first?.isNumber == true else { throw bad() }
            }
            guard let v = Double(digits) else { throw bad() }
            return .float(sign * v)
        }
        guard let v = Int(digits) else {
            throw TOMLError(line: line, column: startColumn, message: "'\(token)' does not fit in a 64-bit integer")
        }
        return .integer(sign < 0 ? -v : v)
    }

    /// Enters an array or inline table, refusing nesting deeper than `maxDepth`.
    mutating func enter() throws {
        if depth == Self.maxDepth { throw fail("arrays and inline tables nest more than \(Self.maxDepth) deep") }
        depth += 1
    }

    mutating func array() throws -> TOMLValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var items: [TOMLValue] = []
        while true {
            try blank()
            if c == UInt8(ascii: "]") { i += 1; return .array(items) }
            if atEnd { throw fail("the array is not closed with ']'") }
            items.append(try value())
            try blank()
            if c == UInt8(ascii: ",") { i += 1; continue }
            if c == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail(atEnd ? "the array is not closed with ']'" : "expected ',' or ']' in the array, found '\(Self.show(c))'")
        }
    }

    mutating func inlineTable() throws -> TOMLValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        let t = TOMLTable(line: line)
        t.defined = true
        spaces()
        if c == UInt8(ascii: "}") { i += 1; t.inline = true; return .table(t) }
        while true {
            spaces()
            try keyValue(into: t)
            spaces()
            if c == UInt8(ascii: ",") { i += 1; continue }
            if c == UInt8(ascii: "}") { i += 1; t.inline = true; return .table(t) }
            throw fail(atEnd ? "the inline table is not closed with '}'" : "expected ',' or '}' in the inline table (which stays on one line), found '\(Self.show(c))'")
        }
    }

    // MARK: strings

    /// Bytes up to the closing delimiter as UTF-8 text (invalid UTF-8 is refused).
    func text(_ bytes: ArraySlice<UInt8>) throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("the string is not valid UTF-8") }
        return s
    }

    mutating func basicString() throws -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            if atEnd || c == 0x0A || c == 0x0D { throw fail("the string is not closed on its line") }
            if c == UInt8(ascii: "\"") { i += 1; return try text(out[...]) }
            if c == UInt8(ascii: "\\") { try escape(into: &out); continue }
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a string (write it as an escape)") }
            out.append(c)
            i += 1
        }
    }

    mutating func escape(into out: inout [UInt8]) throws {
        i += 1
        let e = c
        i += 1
        switch e {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let n = e == UInt8(ascii: "u") ? 4 : 8
            guard i + n <= b.count, let v = UInt32(String(decoding: b[i..<(i + n)], as: UTF8.self), radix: 16),
                  let scalar = UnicodeScalar(v) else { throw fail("bad \\\(Self.show(e)) escape (a Unicode scalar in \(n) hex digits)") }
            i += n
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
            throw fail("unknown escape '\\\(Self.show(e))'")
        }
    }

    mutating func literalString() throws -> String {
        i += 1
        let start = i
        while true {
            if atEnd || c == 0x0A || c == 0x0D { throw fail("the string is not closed on its line") }
            if c == UInt8(ascii: "'") { let s = try text(b[start..<i]); i += 1; return s }
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a string") }
            i += 1
        }
    }

    mutating func multilineBasic() throws -> String {
        i += 3
        if c == 0x0A { i += 1; newline() } else if c == 0x0D && peek(1) == 0x0A { i += 2; newline() }
        var out: [UInt8] = []
        while true {
            if atEnd { throw fail("the multi-line string is not closed with \"\"\"") }
            if c == UInt8(ascii: "\"") && peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") {
                // Up to two quotes may end the content just before the delimiter.
                var quotes = 3
                while peek(quotes) == UInt8(ascii: "\"") && quotes < 5 { quotes += 1 }
                out.append(contentsOf: [UInt8](repeating: 0x22, count: quotes - 3))
                i += quotes
                return try text(out[...])
            }
            if c == UInt8(ascii: "\\") {
                // A backslash at the end of a line trims the line break and leading blanks.
                var k = 1
                while peek(k) == 0x20 || peek(k) == 0x09 { k += 1 }
                if peek(k) == 0x0A || (peek(k) == 0x0D && peek(k + 1) == 0x0A) {
                    i += k
                    while c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D {
                        if c == 0x0A { i += 1; newline() } else { i += 1 }
                    }
                    continue
                }
                try escape(into: &out)
                continue
            }
            if c == 0x0A { out.append(c); i += 1; newline(); continue }
            if c == 0x0D && peek(1) == 0x0A { out.append(0x0A); i += 2; newline(); continue }
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a string") }
            out.append(c)
            i += 1
        }
    }

    mutating func multilineLiteral() throws -> String {
        i += 3
        if c == 0x0A { i += 1; newline() } else if c == 0x0D && peek(1) == 0x0A { i += 2; newline() }
        var out: [UInt8] = []
        while true {
            if atEnd { throw fail("the multi-line string is not closed with '''") }
            if c == UInt8(ascii: "'") && peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") {
                var quotes = 3
                while peek(quotes) == UInt8(ascii: "'") && quotes < 5 { quotes += 1 }
                out.append(contentsOf: [UInt8](repeating: 0x27, count: quotes - 3))
                i += quotes
                return try text(out[...])
            }
            if c == 0x0A { out.append(c); i += 1; newline(); continue }
            if c == 0x0D && peek(1) == 0x0A { out.append(0x0A); i += 2; newline(); continue }
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a string") }
            out.append(c)
            i += 1
        }
    }
}
