/// Plain-text tables with a header row, right-aligned numbers and left-aligned text.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    /// Rows after which a separator line is drawn.
    var separators = Set<Int>()

    init(_ header: [String]) { self.header = header }

    mutating func add(_ row: [String]) { rows.append(row) }
    mutating func separator() { separators.insert(rows.count) }

    func render() -> String {
        let cols = header.count
        var width = [Int](repeating: 0, count: cols)
        for r in [header] + rows { for (i, c) in r.enumerated() where i < cols { width[i] = max(width[i], c.count) } }
        func line(_ r: [String]) -> String {
            r.enumerated().map { i, c in
                let pad = String(repeating: " ", count: width[i] - c.count)
                return i == 0 ? c + pad : pad + c
            }.joined(separator: "  ")
        }
        var out = [line(header), width.map { String(repeating: "─", count: $0) }.joined(separator: "──")]
        for (i, r) in rows.enumerated() {
            if separators.contains(i) { out.append(width.map { String(repeating: "─", count: $0) }.joined(separator: "──")) }
            out.append(line(r))
        }
        return out.joined(separator: "\n")
    }
}


import Foundation
import DistilleryTensor

/// Compact JSON for --json output (sorted keys, so scripts and diffs see stable text).
func jsonText<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return String(decoding: try e.encode(value), as: UTF8.self)
}
