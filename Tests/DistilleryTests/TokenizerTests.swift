import Foundation
import XCTest
import DistilleryText

/// The WordPiece tokenizer gives exactly the ids Hugging Face's tokenizer gave.
final class TokenizerTests: XCTestCase {
    static let tokenizer: BertTokenizer = {
        do { return try BertTokenizer.load(path: Fixtures.path("tokenizer/vocab.txt")) } catch { fatalError("\(error)") }
    }()

    struct Case: Decodable {
        let text: String
        let text_pair: String?
        let max_length: Int?
        let input_ids: [Int32]
        let token_type_ids: [Int32]?
    }

    func cases(_ file: String) throws -> [Case] {
        let data = try String(contentsOfFile: Fixtures.path("tokenizer/" + file), encoding: .utf8)
        return try data.split(separator: "\n").map { try JSONDecoder().decode(Case.self, from: Data($0.utf8)) }
    }

    func check(_ file: String, minimum: Int) throws {
        let all = try cases(file)
        XCTAssertGreaterThanOrEqual(all.count, minimum)
        var failures = 0
        for c in all {
            let e = Self.tokenizer.encode(c.text, pair: c.text_pair, maxLength: c.max_length)
            if e.inputIds != c.input_ids || (c.token_type_ids.map { $0 != e.tokenTypeIds } ?? false) {
                failures += 1
                if failures <= 5 {
                    XCTFail("\(file): \(c.text.prefix(80)):\n  got      \(Self.tokenizer.tokens(e.inputIds))\n  expected \(Self.tokenizer.tokens(c.input_ids))")
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(all.count) cases differ")
    }

    func testFixtureCases() throws { try check("cases.jsonl", minimum: 22) }
    func testExtraCases() throws { try check("extra_cases.jsonl", minimum: 20) }
    /// ≥ 2,000 real lines of ../shared/data/train.txt, tokenized by transformers.
    func testRealTextSample() throws { try check("train_sample.jsonl", minimum: 2000) }

    func testTokenizerFolderHonoursConfig() throws {
        let dir = Fixtures.temporaryDirectory + "/cased-tokenizer"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: dir + "/vocab.txt")
        try FileManager.default.copyItem(atPath: Fixtures.path("tokenizer/vocab.txt"), toPath: dir + "/vocab.txt")
        try #"{"do_lower_case": false, "strip_accents": null, "tokenize_chinese_chars": false}"#
            .write(toFile: dir + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let t = try BertTokenizer.load(path: dir)
        XCTAssertFalse(t.lowercase)
        XCTAssertFalse(t.stripAccents)
        // Uppercase words are not in the uncased vocabulary; accents are kept; CJK not isolated.
        XCTAssertEqual(t.tokens(t.tokenize("Hello")), ["[UNK]"])
        XCTAssertEqual(Self.tokenizer.tokens(Self.tokenizer.tokenize("Hello café")), ["hello", "cafe"])
        XCTAssertEqual(t.tokens(t.tokenize("café")), ["[UNK]"])
        XCTAssertEqual(t.tokens(t.tokenize("中文")), ["中", "##文"])
        XCTAssertEqual(Self.tokenizer.tokens(Self.tokenizer.tokenize("中文")), ["中", "文"])
    }

    func testBadVocabularyErrors() throws {
        let dir = Fixtures.temporaryDirectory
        try "[PAD]\n[UNK]\nhello\nhello\n".write(toFile: dir + "/dup.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BertTokenizer.load(path: dir + "/dup.txt")) { XCTAssertTrue("\($0)".contains("'hello' appears twice"), "\($0)") }
        try "[PAD]\n[UNK]\nhello\n".write(toFile: dir + "/nocls.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BertTokenizer.load(path: dir + "/nocls.txt")) { XCTAssertTrue("\($0)".contains("[CLS]"), "\($0)") }
        XCTAssertThrowsError(try BertTokenizer.load(path: dir + "/absent.txt"))
    }

    /// vocab.txt with Windows (\r\n) or old Mac (\r) line ends reads as the same tokens, as
    /// Python's universal newlines give the Hugging Face tokenizer (it was refused: "\r\n" is one
    /// Character, so the split on "\n" never cut those lines).
    func testVocabularyLineEnds() throws {
        let dir = Fixtures.temporaryDirectory
        let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##s", "é"]
        var expected: [Int32]?
        for (name, end) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
            for last in ["", end] {
                let path = dir + "/vocab-\(name)\(last.isEmpty ? "" : "-end").txt"
                try (tokens.joined(separator: end) + last).write(toFile: path, atomically: true, encoding: .utf8)
                let v = try Vocabulary.load(path: path)
                XCTAssertEqual(v.tokens, tokens, path)
                let t = try BertTokenizer.load(path: path)
                let ids = t.encode("hellos", maxLength: 8).inputIds
                if let e = expected { XCTAssertEqual(ids, e, path) } else { expected = ids }
            }
        }
        XCTAssertEqual(expected, [2, 5, 6, 3])
    }
}
