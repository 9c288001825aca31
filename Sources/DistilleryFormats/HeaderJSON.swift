/// A small strict JSON parser for binary-format headers (safetensors, checkpoints).
///
/// Foundation's parser turns every number into NSNumber, where 1 and true are hard to tell
/// apart and large integers become doubles; a header's offsets must be exact unsigned
/// integers, and a duplicated key must be an error rather than silently take the last value.
public indirect enum HeaderJSON: Equatable, Sendable {
    case object([(String, HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    /// A non-negative integer that fits in UInt64.
    case unsigned(UInt64)
    /// Any other number (negative, fractional, exponent or too large), kept as text.
    case number(String)
    case bool(Bool)
    case null

    public static func == (a: HeaderJSON, b: HeaderJSON) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.unsigned(x), .unsigned(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    public struct ParseError: Error, CustomStringConvertible {
        public let offset: Int
        public let message: String
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// Parses JSON, refusing a key given twice in one object, except in objects nested
    /// `strictDepth` or more levels below the top (there the last value stands, as in Python):
    /// a config.json may carry other tools' settings Distillery never reads.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64, strictDepth: Int = .max) throws -> HeaderJSON {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.strictDepth = strictDepth
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        if p.i != bytes.count { throw ParseError(offset: p.i, message: "unexpected data after the JSON value") }
        return v
    }

    public static func parse(_ string: String) throws -> HeaderJSON {
        var s = string
        return try s.withUTF8 { try parse(UnsafeRawBufferPointer($0)) }
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let maxDepth: Int
        var strictDepth = Int.max
        var i = 0

        init(bytes: UnsafeRawBufferPointer, maxDepth: Int) { self.bytes = bytes; self.maxDepth = maxDepth }

        func fail(_ m: String) -> ParseError { ParseError(offset: i, message: m) }

        mutating func skipWhitespace() {
            while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        }

        mutating func expect(_ literal: String) throws {
            for c in literal.utf8 {
                guard i < bytes.count, bytes[i] == c else { throw fail("expected '\(literal)'") }
                i += 1
            }
        }

        mutating func value(depth: Int) throws -> HeaderJSON {
            guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
            guard i < bytes.count else { throw fail("unexpected end of JSON") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, HeaderJSON)] = []
                var seen = Set<String>()
                skipWhitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    let key = try string()
                    let again = !seen.insert(key).inserted
                    if again && depth < strictDepth { throw fail("duplicate key \"\(key)\"") }
                    skipWhitespace()
                    try expect(":")
                    skipWhitespace()
                    let v = try value(depth: depth + 1)
                    if again { members.removeAll { $0.0 == key } }
                    members.append((key, v))
                    skipWhitespace()
                    guard i < bytes.count else { throw fail("unexpected end of object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [HeaderJSON] = []
                skipWhitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipWhitespace()
                    items.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard i < bytes.count else { throw fail("unexpected end of array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            default:
                return try number()
            }
        }

        mutating func number() throws -> HeaderJSON {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            let digitsStart = i
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
            guard i > digitsStart else { throw fail("invalid value") }
            if bytes[digitsStart] == 0x30 && i - digitsStart > 1 { throw fail("leading zero in number") }
            var integral = true
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                integral = false; i += 1
                let f = i
                while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
                guard i > f else { throw fail("invalid fraction") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                integral = false; i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                let e = i
                while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
                guard i > e else { throw fail("invalid exponent") }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            if integral, bytes[start] != UInt8(ascii: "-"), let u = UInt64(text) { return .unsigned(u) }
            return .number(text)
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out = [UInt8]()
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("control character in string") }
                if c == UInt8(ascii: "\\") {
                    i += 1
                    guard i < bytes.count else { throw fail("unterminated escape") }
                    let e = bytes[i]; i += 1
                    switch e {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var cp = try hex4()
                        if (0xD800..<0xDC00).contains(cp) {
                            try expect("\\u")
                            let lo = try hex4()
                            guard (0xDC00..<0xE000).contains(lo) else { throw fail("unpaired surrogate") }
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(cp) {
                            throw fail("unpaired surrogate")
                        }
                        guard let scalar = Unicode.Scalar(cp) else { throw fail("invalid code point") }
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: throw fail("invalid escape")
                    }
                } else {
                    out.append(c); i += 1
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not UTF-8") }
            return s
        }

        mutating func hex4() throws -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard i < bytes.count else { throw fail("short \\u escape") }
                let c = bytes[i]; i += 1
                switch c {
                case 0x30...0x39: v = v << 4 | UInt32(c - 0x30)
                case 0x41...0x46: v = v << 4 | UInt32(c - 0x37)
                case 0x61...0x66: v = v << 4 | UInt32(c - 0x57)
                default: throw fail("invalid hex digit")
                }
            }
            return v
        }
    }

    // MARK: writing

    /// Compact, deterministic text: members in the order given, no spaces.
    public var serialized: String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .object(let m):
            out += "{"
            for (k, (key, v)) in m.enumerated() {
                if k > 0 { out += "," }
                HeaderJSON.writeString(key, to: &out)
                out += ":"
                v.write(to: &out)
            }
            out += "}"
        case .array(let a):
            out += "["
            for (k, v) in a.enumerated() {
                if k > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .string(let s): HeaderJSON.writeString(s, to: &out)
        case .unsigned(let u): out += String(u)
        case .number(let t): out += t
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    // MARK: access

    public subscript(key: String) -> HeaderJSON? {
        if case .object(let m) = self { return m.first { $0.0 == key }?.1 }
        return nil
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var unsignedValue: UInt64? { if case .unsigned(let u) = self { return u }; return nil }
    /// Any number, as a Double (nil for other values and for text Double cannot read).
    public var doubleValue: Double? {
        switch self {
        case .unsigned(let u): return Double(u)
        case .number(let s): return Double(s)
        default: return nil
        }
    }
    public var arrayValue: [HeaderJSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [(String, HeaderJSON)]? { if case .object(let m) = self { return m }; return nil }
}
