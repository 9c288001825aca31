import Foundation
import DistilleryTensor

/// A one-line progress bar on standard error, redrawn at most ten times a second; silent when
/// standard error is not a terminal (logs, CI) except for the final line.
final class ProgressBar {
    let label: String
    let total: Double
    let unit: String
    private var last = 0.0
    private let start = Date()
    private let tty = isatty(2) != 0

    init(_ label: String, total: Double, unit: String = "") {
        self.label = label; self.total = max(total, 1); self.unit = unit
    }

    /// `extra` is appended after the bar (rates, losses…).
    func update(_ done: Double, _ extra: String = "") {
        let now = Date().timeIntervalSince(start)
        guard tty, now - last >= 0.1 || done >= total else { return }
        last = now
        let frac = min(1, done / total)
        let width = 28
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let eta = frac > 0 ? now / frac - now : 0
        let line = "\r\(label) \(bar) \(String(format: "%5.1f%%", frac * 100))  \(extra)  ETA \(formatDuration(eta))\u{1B}[K"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish(_ message: String = "") {
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
    }
}

func formatDuration(_ s: Double) -> String {
    if !s.isFinite || s < 0 { return "--:--" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%02d:%02d", t / 60, t % 60)
}
