/// 1234567 → "1,234,567" (reports and the command line).
public func grouped(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

/// x with `digits` decimals, never "-0.00".
public func fixed(_ x: Double, _ digits: Int) -> String {
    var s = String(format: "%.\(digits)f", x)
    if s == "-0" || s.hasPrefix("-0.") && Double(s) == 0 { s.removeFirst() }
    return s
}
