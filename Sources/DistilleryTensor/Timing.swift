import Foundation

/// Wall-clock timing for benchmarks (release builds only give meaningful figures).
public enum Timing {
    public static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Runs `body` `warmup` times untimed, then `iterations` times; returns seconds per run.
    public static func measure(warmup: Int, iterations: Int, _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmup { try body() }
        var times: [Double] = []
        for _ in 0..<iterations {
            let t = now()
            try body()
            times.append(now() - t)
        }
        return times
    }

    /// Peak resident set size of this process so far, in bytes (Linux: VmHWM).
    public static func peakRSS() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }
}

extension Array where Element == Double {
    public var median: Double {
        if isEmpty { return 0 }
        let s = sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
