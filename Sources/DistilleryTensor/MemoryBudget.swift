import Foundation

/// How much memory a model or a batch may take, checked before anything is allocated: a
/// 600-byte config.json can ask for 10¹⁸ parameters, and a recipe for 65,536 sequences a batch.
/// The budget is what the system has available (MemAvailable), lowered by an address-space
/// limit (`ulimit -v`) when one is set, or set with DISTILL_MEMORY_LIMIT (bytes, or with a
/// K/M/G suffix).
public enum MemoryBudget {
    public static var bytes: Int {
        if let v = environmentLimit { return v }
        var budget = availableBytes()
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur < UInt64(Int.max) {
            budget = min(budget, max(0, Int(limit.rlim_cur) - virtualBytes()))
        }
        return budget
    }

    /// DISTILL_MEMORY_LIMIT (read each time: tests set it); a value that is not a size is
    /// reported on stderr, once, and ignored.
    static var environmentLimit: Int? {
        guard let s = ProcessInfo.processInfo.environment["DISTILL_MEMORY_LIMIT"] else { return nil }
        if let v = parse(s) { return v }
        warnedLock.lock()
        defer { warnedLock.unlock() }
        if warned != s {
            warned = s
            FileHandle.standardError.write(Data("distill: DISTILL_MEMORY_LIMIT=\(s) is not a size (bytes, or a number with K, M, G or T, e.g. 8G); ignoring it\n".utf8))
        }
        return nil
    }
    private static let warnedLock = NSLock()
    nonisolated(unsafe) private static var warned: String?

    /// Bytes from "123", "1.5G" or "512m"; nil for anything else, including negative,
    /// non-finite and out-of-range sizes.
    public static func parse(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Double] = ["K": 0x1p10, "M": 0x1p20, "G": 0x1p30, "T": 0x1p40]
        if let u = t.last, let m = units[u], let v = Double(t.dropLast()) {
            let bytes = v * m
            // 2⁶³ is the first Double past Int.max; NaN fails both comparisons.
            guard bytes >= 0, bytes < 0x1p63 else { return nil }
            return Int(bytes)
        }
        guard let v = Int(t), v >= 0 else { return nil }
        return v
    }

    /// MemAvailable from /proc/meminfo (physical memory when it cannot be read).
    static func availableBytes() -> Int {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                if let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) { return kb * 1024 }
            }
        }
        return Int(ProcessInfo.processInfo.physicalMemory)
    }

    /// The process's mapped address space (VmSize).
    static func virtualBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmSize:") {
            return (line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
        }
        return 0
    }

    /// Throws when `bytes` (nil: the arithmetic overflowed) exceeds the budget.
    public static func check(_ bytes: Int?, for what: String) throws {
        let budget = Self.bytes
        guard let bytes, bytes <= budget else {
            throw MemoryBudgetError.tooLarge(what: what, bytes: bytes, budget: budget)
        }
    }

    /// a · b · … with overflow reported as nil.
    public static func product(_ factors: Int...) -> Int? {
        var p = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: f)
            if o { return nil }
            p = r
        }
        return p
    }

    /// a + b + … with overflow reported as nil.
    public static func sum(_ terms: [Int?]) -> Int? {
        var s = 0
        for t in terms {
            guard let t else { return nil }
            let (r, o) = s.addingReportingOverflow(t)
            if o { return nil }
            s = r
        }
        return s
    }
}

public enum MemoryBudgetError: Error, CustomStringConvertible, Equatable {
    case tooLarge(what: String, bytes: Int?, budget: Int)

    public var description: String {
        switch self {
        case let .tooLarge(w, b, budget):
            let need = b.map { "needs \(formatBytes($0))" } ?? "needs more bytes than a 64-bit count holds"
            return "\(w) \(need); \(formatBytes(budget)) are available (free memory, ulimit -v, or DISTILL_MEMORY_LIMIT)"
        }
    }
}

/// 1234567890 → "1.15 GiB".
public func formatBytes(_ n: Int) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var v = Double(n), u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) bytes" : String(format: "%.2f %@", v, units[u])
}
