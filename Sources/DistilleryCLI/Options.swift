import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryQuant
import DistilleryText

// Typed option values: each parses the whole argument or refuses it with a message naming the
// bad part (an error thrown from a transform reads "The value 'X' is invalid for '--opt': …").

/// Options every compute-heavy command takes.
struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for our kernels and the matrix products (default: all cores, or $DISTILL_THREADS).")
    var threads: Int?

    func validate() throws {
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be 1…1024, got \(threads)") }
    }

    func apply() {
        if let threads { Parallel.setThreads(threads) }
    }
}

/// A batch shape B×S.
struct BatchShape: Equatable, Sendable, CustomStringConvertible {
    let B: Int, S: Int
    var description: String { "\(B)x\(S)" }
    /// Bounds for timing shapes (a model's own positions bound S further when it runs).
    static let maxBatch = 4096, maxSequence = 65536, maxTokens = 1 << 22

    /// "8x128" (or 8×128).
    static func parse(_ s: Substring) throws -> BatchShape {
        let p = s.lowercased().split(omittingEmptySubsequences: false, whereSeparator: { $0 == "x" || $0 == "×" })
        guard p.count == 2, let b = Int(p[0]), let l = Int(p[1]) else {
            throw ValidationError("'\(s)' is not a batch shape like 8x128")
        }
        guard (1...maxBatch).contains(b), (1...maxSequence).contains(l), b * l <= maxTokens else {
            throw ValidationError("'\(s)': B must be 1…\(maxBatch), S 1…\(maxSequence), and B·S at most \(maxTokens)")
        }
        return BatchShape(B: b, S: l)
    }

    /// "8x128,1x128"
    static func list(_ s: String) throws -> [BatchShape] {
        let parts = s.split(separator: ",", omittingEmptySubsequences: false)
        guard !s.isEmpty else { throw ValidationError("give at least one shape, e.g. 8x128") }
        return try parts.map { try parse(Substring($0.trimmingCharacters(in: .whitespaces))) }
    }
}

/// A comma-separated list of integers in a range: "1,3,9,19".
func integerList(_ s: String, range: ClosedRange<Int>, what: String) throws -> [Int] {
    let parts = s.split(separator: ",", omittingEmptySubsequences: false)
    return try parts.map { part in
        guard let v = Int(part.trimmingCharacters(in: .whitespaces)), range.contains(v) else {
            throw ValidationError("'\(part)' is not \(what) (\(range.lowerBound)…\(range.upperBound))")
        }
        return v
    }
}

/// A comma-separated list of names from a fixed set: "a,b,c".
func choiceList<T>(_ s: String, _ choices: [(String, T)], what: String) throws -> [T] {
    try s.split(separator: ",", omittingEmptySubsequences: false).map { part in
        let name = part.trimmingCharacters(in: .whitespaces)
        guard let c = choices.first(where: { $0.0 == name }) else {
            throw ValidationError("unknown \(what) '\(name)'; choose from \(choices.map(\.0).joined(separator: ", "))")
        }
        return c.1
    }
}

extension RunPrecision: ExpressibleByArgument {
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// `--precision` for commands that run models.
struct PrecisionOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("""
        How matrices run: stored (as the file has them: fp32, or int8 for an int8 checkpoint), fp32, \
        bf16 (bf16 operands, fp32 accumulation) or int8 (quantized in memory as distill quantize would).
        """, valueName: "precision"))
    var precision: RunPrecision = .stored
}

extension WeightFormat: ExpressibleByArgument {}
extension BatchOrder: ExpressibleByArgument {}
