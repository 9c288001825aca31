import Foundation

/// A value that moves from `start` to `end` over the first `until` share of training, then
/// stays: linearly, or along half a cosine (slow at both ends).
public struct ScheduledValue: Codable, Sendable, Equatable {
    public enum Shape: String, Codable, Sendable, CaseIterable { case linear, cosine }
    public var start: Float
    public var end: Float
    public var shape: Shape = .linear
    public var until: Double = 1
    public init(start: Float, end: Float, shape: Shape = .linear, until: Double = 1) {
        self.start = start; self.end = end; self.shape = shape; self.until = until
    }
    public static let keys = ["start", "end", "shape", "until"]

    /// The value at `progress` (steps done / all steps, 0…1).
    public func at(_ progress: Double) -> Float {
        let x = min(1, max(0, progress / until))
        let f = shape == .linear ? x : (1 - cos(Double.pi * x)) / 2
        return start + (end - start) * Float(f)
    }
}

extension LossSettings {
    /// The settings at `progress` (0…1): every scheduled weight and the temperature at their
    /// current values.
    public func at(_ progress: Double) -> LossSettings {
        guard !schedules.isEmpty || matches.contains(where: { $0.weightSchedule != nil }) else { return self }
        var s = self
        for (key, v) in schedules {
            let x = v.at(progress)
            switch key {
            case "temperature": s.temperature = x
            case "alpha_ce": s.alphaCE = x
            case "alpha_mlm": s.alphaMLM = x
            case "alpha_cos": s.alphaCos = x
            case "alpha_mse": s.alphaMSE = x
            case "alpha_hidden": s.alphaHidden = x
            case "alpha_soft": s.alphaSoft = x
            case "alpha_hard": s.alphaHard = x
            default: break
            }
        }
        for i in s.matches.indices { if let w = s.matches[i].weightSchedule { s.matches[i].weight = w.at(progress) } }
        return s
    }

    /// The scheduled values at `progress`, by recipe key (for the progress line and metrics).
    public func scheduledValues(at progress: Double) -> [String: Double] {
        var out: [String: Double] = [:]
        for (key, v) in schedules { out[key] = Double(v.at(progress)) }
        for (i, m) in matches.enumerated() { if let w = m.weightSchedule { out["match_\(i)_weight"] = Double(w.at(progress)) } }
        return out
    }
}
