import Foundation
import XCTest
import DistilleryRecipes

/// The recipe TOML reader against Python's tomllib (the standard library's TOML 1.0 parser) on
/// documents using every construct recipes use, and on documents both must refuse.
final class TOMLTests: XCTestCase {
    static let accepted = [
        #"""
        # comment
        name = "demo"   # trailing comment
        seed = 42
        output = '../runs/demo'
        [teacher]
        model = "../.models/all-MiniLM-L6-v2"
        [student]
        layers = [0, 3, 5]
        [data]
        train = ["a.txt", "b.txt",]
        mlm_probability = 0.0
        [loss]
        temperature = 2.0
        alpha_ce = 5e-1
        lr = 5E-4
        big = 1_000_000
        hex = 0xdead_beef
        oct = 0o755
        bin = 0b1101
        neg = -17
        plus = +3.5
        inf1 = inf
        ninf = -inf
        yes = true
        no = false
        """#,
        #"""
        s1 = "tab\there \"quoted\" \\ back \u00e9 \U0001F600"
        s2 = 'C:\raw\path'
        s3 = """
        two
        lines"""
        s4 = """one \
             continued"""
        s5 = '''
        literal "multi"
        line'''
        s6 = """ends with quotes"\""""
        "quoted key" = 1
        'literal key' = 2
        a.b.c = 3
        a.d = 4
        nested = [[1, 2], ["x", "y"], []]
        inline = { x = 1, y = "two", z = { w = [3] } }
        empty = {}
        multi = [
          1,   # one
          2,
        ]
        """#,
        #"""
        [[loss.match]]
        teacher_layer = 2
        kind = "relation"
        [[loss.match]]
        teacher_layer = 4
        kind = "hidden_mse"
        [loss.match.extra]
        w = 1.5
        [loss]
        temperature = 1.0
        [x.y]
        z = 1
        [x]
        w = 2
        """#,
    ]

    static let refused = [
        "a = 1\na = 2", "[t]\n[t]", "a = \"unclosed", "a = 01", "a = 1.", "a = .5", "a = 1__0", "a = _1",
        "a = [1, 2", "a = { b = 1", "a = {b = 1,}", "[a\nb = 1", "= 1", "a = \"\\q\"",
        "a = 1 b = 2", "a = true2", "a = \"tab\u{01}\"", "[ = 500\n", "a.b = 1\na = 2", "a = 1\n[a]", "x = [1]\n[[x]]",
        "a = 'x\ny'", "a = {b = 1}\n[a]\nc = 2",
    ]

    /// Valid TOML that recipes refuse on purpose: dates and times (no recipe field is one), and
    /// integers beyond 64 bits (TOML 1.0 lets a reader refuse what it cannot hold exactly).
    static let refusedByRecipes = ["a = 1979-05-27", "a = 07:32:00", "a = 1979-05-27T07:32:00Z", "a = 99999999999999999999"]

    func python(_ program: String, _ input: String) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", program]
        let inPipe = Pipe(), outPipe = Pipe()
        p.standardInput = inPipe; p.standardOutput = outPipe; p.standardError = outPipe
        try p.run()
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try inPipe.fileHandleForWriting.close()
        let out = String(decoding: outPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, out)
    }

    /// Equal as JSON values, floats within 1e-12 relative, infinities alike.
    func same(_ a: Any, _ b: Any) -> Bool {
        switch (a, b) {
        case let (x as [String: Any], y as [String: Any]):
            return Set(x.keys) == Set(y.keys) && x.keys.allSatisfy { same(x[$0]!, y[$0]!) }
        case let (x as [Any], y as [Any]): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case let (x as String, y as String): return x == y
        case let (x as Bool, y as Bool): return x == y
        case let (x as NSNumber, y as NSNumber):
            let u = x.doubleValue, v = y.doubleValue
            return u == v || abs(u - v) <= 1e-12 * max(abs(u), abs(v))
        default: return false
        }
    }

    func testAgreesWithTomllib() throws {
        // tomllib's values as JSON (infinities spelled out, which JSON lacks).
        let program = """
        import sys, json, math, tomllib
        def fix(v):
            if isinstance(v, float) and math.isinf(v): return "INF" if v > 0 else "-INF"
            if isinstance(v, dict): return {k: fix(x) for k, x in v.items()}
            if isinstance(v, list): return [fix(x) for x in v]
            return v
        try:
            print(json.dumps(fix(tomllib.loads(sys.stdin.read()))))
        except tomllib.TOMLDecodeError as e:
            print("REFUSED", e); sys.exit(3)
        """
        func ours(_ v: TOMLValue) -> Any {
            if case .float(let d) = v, d.isInfinite { return d > 0 ? "INF" : "-INF" }
            if case .array(let a) = v { return a.map(ours) }
            if case .table(let t) = v { return Dictionary(uniqueKeysWithValues: t.keys.map { ($0, ours(t[$0]!)) }) }
            return v.jsonObject
        }
        for doc in Self.accepted {
            let (status, out) = try python(program, doc)
            XCTAssertEqual(status, 0, out)
            let reference = try JSONSerialization.jsonObject(with: Data(out.utf8), options: [.fragmentsAllowed])
            let parsed = ours(.table(try TOML.parse(doc)))
            XCTAssertTrue(same(parsed, reference), "\(doc)\nours: \(parsed)\ntomllib: \(reference)")
        }
        for doc in Self.refused {
            let (status, out) = try python(program, doc)
            XCTAssertEqual(status, 3, "tomllib accepts \(doc.debugDescription): \(out)")
            XCTAssertThrowsError(try TOML.parse(doc), doc.debugDescription) { e in
                XCTAssertTrue("\(e)".contains("line"), "\(e)")
            }
        }
    }

    func testDatesAndHugeIntegersAreRefused() throws {
        for doc in Self.refusedByRecipes {
            XCTAssertThrowsError(try TOML.parse(doc), doc) { e in
                XCTAssertTrue("\(e)".contains("dates") || "\(e)".contains("64-bit"), "\(e)")
            }
        }
    }

    func testErrorsNameTheLine() throws {
        XCTAssertThrowsError(try TOML.parse("a = 1\n\nb = \"open\n")) { e in
            XCTAssertEqual((e as? TOMLError)?.line, 3, "\(e)")
        }
        XCTAssertThrowsError(try TOML.parse("[t]\nx = 1\n[t]\n")) { e in XCTAssertEqual((e as? TOMLError)?.line, 3, "\(e)") }
    }

    /// Nesting is capped where it enters, so a hostile file gets an error, not a stack overflow
    /// (40,000 open brackets used to crash the parser); nesting up to the cap still parses.
    func testDeepNestingIsRefusedWithTheLine() throws {
        let cap = 32
        func nested(_ n: Int, _ open: String, _ close: String, _ inner: String) -> String {
            "x = " + String(repeating: open, count: n) + inner + String(repeating: close, count: n) + "\n"
        }
        XCTAssertNoThrow(try TOML.parse(nested(cap, "[", "]", "1")))
        XCTAssertNoThrow(try TOML.parse(nested(cap, "{a = ", "}", "1")))
        for doc in ["\n" + nested(cap + 1, "[", "]", "1"), "\n" + nested(cap + 1, "{a = ", "}", "1"),
                    "\nx = " + String(repeating: "[", count: 40_000)] {
            XCTAssertThrowsError(try TOML.parse(doc)) { e in
                XCTAssertEqual((e as? TOMLError)?.line, 2, "\(e)")
                XCTAssertTrue("\(e)".contains("nest more than 32 deep"), "\(e)")
            }
        }
        let key = { (n: Int) in Array(repeating: "a", count: n).joined(separator: ".") }
        XCTAssertNoThrow(try TOML.parse("[\(key(cap))]\nx = 1\n\(key(cap)) = 2\n"))
        for doc in ["\n[\(key(cap + 1))]\n", "\n\(key(cap + 1)) = 1\n", "\n[" + key(100_000) + "]\n"] {
            XCTAssertThrowsError(try TOML.parse(doc)) { e in
                XCTAssertEqual((e as? TOMLError)?.line, 2, "\(e)")
                XCTAssertTrue("\(e)".contains("more than 32 dotted parts"), "\(e)")
            }
        }
    }
}
