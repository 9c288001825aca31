import Foundation

/// A line chart rendered as SVG text with no dependencies: several series, axes with "nice"
/// ticks (1, 2, 2.5, 5 × 10ᵏ), a legend, a title and axis labels, optionally a log-scaled y
/// axis. Points that are NaN or infinite (or not positive on a log axis) break a line instead of
/// breaking the chart. The output is deterministic text (fixed number formatting, no dates or
/// random ids), so reports diff cleanly.
public struct LineChart: Sendable, Equatable {
    public struct Series: Sendable, Equatable {
        public var name: String
        public var x: [Double]
        public var y: [Double]
        public init(name: String, x: [Double], y: [Double]) {
            precondition(x.count == y.count, "a series needs as many x as y values")
            self.name = name; self.x = x; self.y = y
        }
    }

    public var title: String
    public var series: [Series]
    public var xLabel: String
    public var yLabel: String?
    public var logY: Bool
    /// The x values are counts (epochs): ticks at whole numbers only.
    public var integerX = false
    public var width = 760.0
    public var height = 340.0

    public init(title: String, series: [Series], xLabel: String = "step", yLabel: String? = nil, logY: Bool = false) {
        self.title = title; self.series = series; self.xLabel = xLabel; self.yLabel = yLabel; self.logY = logY
    }

    /// The chart as a standalone SVG document.
    public func svg() -> String { SVGPlot.document([self]) }
}

public enum SVGPlot {
    /// Tableau 10: distinguishable colours, in a fixed order.
    public static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                          "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    /// Several charts stacked top to bottom in one SVG document.
    public static func document(_ charts: [LineChart]) -> String {
        let width = charts.map(\.width).max() ?? 400
        let height = max(1, charts.reduce(0) { $0 + $1.height })
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(height))\" "
        out += "viewBox=\"0 0 \(f(width)) \(f(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
        out += "<rect x=\"0\" y=\"0\" width=\"\(f(width))\" height=\"\(f(height))\" fill=\"#ffffff\"/>\n"
        var top = 0.0
        for c in charts {
            out += render(c, top: top)
            top += c.height
        }
        return out + "</svg>\n"
    }

    /// One chart as a group of elements, its top edge at `top`.
    static func render(_ c: LineChart, top: Double) -> String {
        let legendWidth = c.series.isEmpty ? 0.0 : 170
        let left = 70.0, right = c.width - 16 - legendWidth, upper = 34.0, lower = c.height - 44
        var out = "<g transform=\"translate(0,\(f(top)))\">\n"
        out += "<text x=\"\(f(c.width / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(escape(c.title))</text>\n"

        // The finite points (positive ones on a log axis), in axis units.
        let transform: (Double) -> Double? = { v in
            // Beyond ±1e300 the axis arithmetic would overflow: drawn as a gap.
            guard v.isFinite, abs(v) <= 1e300 else { return nil }
            if c.logY { return v > 0 ? log10(v) : nil }
            return v
        }
        let points: [[(Double, Double)?]] = c.series.map { s in
            zip(s.x, s.y).map { x, y in x.isFinite && abs(x) <= 1e300 ? transform(y).map { (x, $0) } : nil }
        }
        let finite = points.flatMap { $0.compactMap { $0 } }
        let xs = axis(finite.map(\.0), log: false, integers: c.integerX)
        let ys = axis(finite.map(\.1), log: c.logY)
        func px(_ x: Double) -> Double { left + (x - xs.lo) / (xs.hi - xs.lo) * (right - left) }
        func py(_ y: Double) -> Double { lower - (y - ys.lo) / (ys.hi - ys.lo) * (lower - upper) }

        out += "<rect x=\"\(f(left))\" y=\"\(f(upper))\" width=\"\(f(right - left))\" height=\"\(f(lower - upper))\" fill=\"none\" stroke=\"#999999\"/>\n"
        for t in xs.ticks {
            let x = px(t)
            out += "<line x1=\"\(f(x))\" y1=\"\(f(upper))\" x2=\"\(f(x))\" y2=\"\(f(lower))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(x))\" y=\"\(f(lower + 16))\" text-anchor=\"middle\">\(escape(label(t, step: xs.step, log: false)))</text>\n"
        }
        for t in ys.ticks {
            let y = py(t)
            out += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(right))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(escape(label(t, step: ys.step, log: c.logY)))</text>\n"
        }
        out += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(c.height - 8))\" text-anchor=\"middle\">\(escape(c.xLabel))</text>\n"
        if let yLabel = c.yLabel ?? (c.logY ? "log scale" : nil) {
            out += "<text x=\"14\" y=\"\(f((upper + lower) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(f((upper + lower) / 2)))\">\(escape(yLabel))</text>\n"
        }
        if finite.isEmpty {
            out += "<text x=\"\(f((left + right) / 2))\" y=\"\(f((upper + lower) / 2))\" text-anchor=\"middle\" fill=\"#777777\">no data</text>\n"
        }

        // One path per series with a point to draw; a gap starts a new subpath, and a point on
        // its own is drawn as a dot (a zero-length segment with round caps).
        for (i, s) in c.series.enumerated() {
            let colour = palette[i % palette.count]
            var d = "", run = 0
            for p in points[i] {
                guard let (x, y) = p else { if run == 1 { d += " h0" }; run = 0; continue }
                d += (d.isEmpty ? "" : " ") + (run == 0 ? "M" : "L") + "\(f(px(x))) \(f(py(y)))"
                run += 1
            }
            if run == 1 { d += " h0" }
            if !d.isEmpty {
                out += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.8\" stroke-linejoin=\"round\" stroke-linecap=\"round\">"
                out += "<title>\(escape(s.name))</title></path>\n"
            }
            let ly = upper + 8 + Double(i) * 18
            let lx = c.width - legendWidth
            out += "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 18))\" y2=\"\(f(ly))\" stroke=\"\(colour)\" stroke-width=\"3\"/>\n"
            out += "<text x=\"\(f(lx + 24))\" y=\"\(f(ly + 4))\">\(escape(s.name + (d.isEmpty ? " (no data)" : "")))</text>\n"
        }
        return out + "</g>\n"
    }

    /// An axis over `values` (log10 units on a log axis): its ends, which are ticks, the step
    /// between ticks (0 on a log axis) and the ticks.
    public static func axis(_ values: [Double], log: Bool, integers: Bool = false) -> (lo: Double, hi: Double, step: Double, ticks: [Double]) {
        var lo = values.min() ?? 0, hi = values.max() ?? 1
        if lo == hi {
            // One value: a range around it.
            let pad = log ? 0.5 : (lo == 0 ? 1 : abs(lo) * 0.1)
            lo -= pad; hi += pad
        }
        if log {
            let a = floor(lo), b = max(ceil(hi), a + 1)
            if b - a >= 2 {
                // Decades (every k-th when there are many).
                let k = ceil((b - a) / 8), top = a + ceil((b - a) / k) * k
                return (a, top, 0, stride(from: a, through: top + k / 2, by: k).map { $0 })
            }
            // One decade: 1, 2 and 5 in it.
            return (a, b, 0, [a, a + log10(2), a + log10(5), b])
        }
        let step = integers ? max(1, niceStep((hi - lo) / 5).rounded(.up)) : niceStep((hi - lo) / 5)
        let a = floor(lo / step + 1e-9) * step, b = ceil(hi / step - 1e-9) * step
        let count = Int(((b - a) / step).rounded())
        return (a, b, step, (0...max(1, count)).map { a + Double($0) * step })
    }

    /// The smallest of 1, 2, 2.5, 5 × 10ᵏ at least `rough`.
    public static func niceStep(_ rough: Double) -> Double {
        guard rough > 0, rough.isFinite else { return 1 }
        let magnitude = pow(10, floor(log10(rough)))
        for m in [1.0, 2, 2.5, 5, 10] where m * magnitude >= rough * (1 - 1e-9) { return m * magnitude }
        return 10 * magnitude
    }

    /// A tick label with as many decimals as the step needs (10ᵏ on a log axis).
    public static func label(_ v: Double, step: Double, log: Bool) -> String {
        if log {
            let x = pow(10, v)
            if abs(x) >= 1e-3 && abs(x) < 1e5 { return trimmed(String(format: "%.3f", x)) }
            return String(format: "%.0e", x)
        }
        if abs(v) < step * 1e-6 { return "0" }
        if abs(v) >= 1e6 || abs(v) < 1e-4 { return String(format: "%.3g", v) }
        var decimals = 0
        while decimals < 8 && abs(step * pow(10, Double(decimals)) - (step * pow(10, Double(decimals))).rounded()) > 1e-6 { decimals += 1 }
        return String(format: "%.\(decimals)f", v)
    }

    static func trimmed(_ s: String) -> String {
        guard s.contains(".") else { return s }
        var t = s
        while t.hasSuffix("0") { t.removeLast() }
        if t.hasSuffix(".") { t.removeLast() }
        return t
    }

    /// A coordinate: one decimal, "-0.0" written as "0.0".
    static func f(_ v: Double) -> String {
        let s = String(format: "%.1f", v)
        return s == "-0.0" ? "0.0" : s
    }

    /// Text for XML content or a quoted attribute; characters XML 1.0 forbids are dropped.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(u)
            default:
                if u.value < 0x20 || u.value == 0xFFFE || u.value == 0xFFFF { continue }
                out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
