import Foundation
import XCTest
import DistilleryTensor
import DistilleryText

/// Corpus preparation, the token file, MLM masking and batching.
final class DataTests: XCTestCase {
    var tokenizer: BertTokenizer { TokenizerTests.tokenizer }
    let dir = Fixtures.temporaryDirectory
    static let demoText = Fixtures.repositoryRoot + "/recipes/data/demo-train.txt"

    func prepare(_ text: String, maxLen: Int = 16, name: String = #function) throws -> (TokenDataset, PrepareSummary) {
        let input = dir + "/\(name.filter { $0.isLetter }).txt", out = input + ".tok"
        try Data(text.utf8).write(to: URL(fileURLWithPath: input))
        let s = try Corpus.prepare(inputs: [input], tokenizer: tokenizer, maxSequenceLength: maxLen, output: out)
        return (try TokenDataset(path: out), s)
    }

    func testPackingRespectsDocumentsAndLength() throws {
        // Two short lines pack together; a blank line ends the document; a long line splits.
        let long = (1...30).map { "w\($0)" }.joined(separator: " ")
        let (data, summary) = try prepare("hello world\nthe dog\n\nnew document\n\(long)\n", maxLen: 16)
        let t = tokenizer
        XCTAssertEqual(t.tokens(data.sequence(0)), ["[CLS]", "hello", "world", "the", "dog", "[SEP]"])
        XCTAssertEqual(t.tokens(data.sequence(1)).first, "[CLS]")
        XCTAssertEqual(Array(t.tokens(data.sequence(1)).prefix(3)), ["[CLS]", "new", "document"])
        for i in 0..<data.count {
            XCTAssertLessThanOrEqual(data.length(i), 16)
            let s = data.sequence(i)
            XCTAssertEqual(s.first, t.clsId); XCTAssertEqual(s.last, t.sepId)
        }
        XCTAssertEqual(summary.documents, 2)
        XCTAssertEqual(summary.lines, 5)
        XCTAssertEqual(summary.sequences, data.count)
        // Every text token is kept, in order.
        let text = (0..<data.count).flatMap { data.sequence($0).dropFirst().dropLast() }
        XCTAssertEqual(text, t.tokenize("hello world the dog new document " + long))
        XCTAssertEqual(data.header.vocabularyHash, t.vocabulary.hash)
    }

    func sentences(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var out: [Range<Int>] = []
        bytes.withUnsafeBytes { SentenceSplitter.split($0, 0..<bytes.count, into: &out) }
        return out.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    func testSentenceSplitterCutsAtSentenceEndsOnly() {
        XCTAssertEqual(sentences("Dr. Smith went home at 5 p.m. on Friday. He slept!  Then he woke? 3 dogs barked."),
                       ["Dr. Smith went home at 5 p.m. on Friday.", "He slept!", "Then he woke?", "3 dogs barked."])
        // Closing quotes and brackets stay with their sentence; an opening quote starts the next.
        XCTAssertEqual(sentences("He said \"Stop.\" \u{201C}Why?\u{201D} she asked. (It rained.) [Sic.] Done"),
                       ["He said \"Stop.\"", "\u{201C}Why?\u{201D} she asked.", "(It rained.)", "[Sic.]", "Done"])
        // Initials, dotted abbreviations, titles; a lower-case word or no space after the dot.
        XCTAssertEqual(sentences("J. R. R. Tolkien lived in the U.S. Army era, e.g. Oxford. Mr. Brown vs. Mrs. Green."),
                       ["J. R. R. Tolkien lived in the U.S. Army era, e.g. Oxford.", "Mr. Brown vs. Mrs. Green."])
        XCTAssertEqual(sentences("version 2.0 is out. it works.Really"), ["version 2.0 is out. it works.Really"])
        XCTAssertEqual(sentences("Wait... What?! Yes."), ["Wait...", "What?!", "Yes."])
        XCTAssertEqual(sentences("  "), ["  "])
        XCTAssertEqual(sentences("No end"), ["No end"])
        XCTAssertEqual(sentences("Ends here. "), ["Ends here. "])
        // Latin-1 capitals open sentences; other text around the cuts stays whole.
        XCTAssertEqual(sentences("Café ouvert. École fermée. Über alles. × 2. Ωmega."),
                       ["Café ouvert.", "École fermée.", "Über alles. × 2. Ωmega."])
        XCTAssertEqual(sentences("Il pleut. Ça va."), ["Il pleut.", "Ça va."])
    }

    func testSequencesByLineAndBySentence() throws {
        let text = "The cat sat. The dog ran!\nA bird sang.\n\nNew document here.\n"
        let t = tokenizer
        func prepared(_ unit: SequenceUnit) throws -> (texts: [[String]], summary: PrepareSummary) {
            let input = dir + "/units-\(unit.rawValue).txt", out = input + ".tok"
            try Data(text.utf8).write(to: URL(fileURLWithPath: input))
            let s = try Corpus.prepare(inputs: [input], tokenizer: t, maxSequenceLength: 32, unit: unit, output: out)
            let d = try TokenDataset(path: out)
            XCTAssertEqual(s.sequences, d.count)
            return ((0..<d.count).map { t.tokens(d.sequence($0)) }, s)
        }
        let packed = try prepared(.packed)
        XCTAssertEqual(packed.texts.count, 2)
        XCTAssertEqual(packed.summary.documents, 2)
        let lines = try prepared(.lines)
        let wrapped = { (s: String) in t.tokens([t.clsId] + t.tokenize(s) + [t.sepId]) }
        XCTAssertEqual(lines.texts, ["The cat sat. The dog ran!", "A bird sang.", "New document here."].map(wrapped))
        XCTAssertEqual(lines.summary.documents, 2)
        let sentences = try prepared(.sentences)
        XCTAssertEqual(sentences.texts, ["The cat sat.", "The dog ran!", "A bird sang.", "New document here."].map(wrapped))
        XCTAssertEqual(sentences.summary.documents, 2)
        XCTAssertEqual(sentences.summary.lines, 4)
    }

    func testInvalidUTF8IsReplacedAndCounted() throws {
        let input = dir + "/bad-utf8.txt", out = input + ".tok"
        var bytes = Array("good line\nbad ".utf8)
        bytes += [0xFF, 0xC3, 0x28]  // invalid byte; truncated two-byte sequence
        bytes += Array(" line\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: input))
        let s = try Corpus.prepare(inputs: [input], tokenizer: tokenizer, maxSequenceLength: 32, output: out)
        XCTAssertEqual(s.invalidUTF8, 2)
        let data = try TokenDataset(path: out)
        XCTAssertEqual(tokenizer.tokens(data.sequence(0)), ["[CLS]", "good", "line", "bad", "(", "line", "[SEP]"])
    }

    func testUnreadableInputIsAClearError() {
        XCTAssertThrowsError(try Corpus.prepare(inputs: ["/no/such/file.txt"], tokenizer: tokenizer, output: dir + "/x.tok")) { e in
            XCTAssertTrue("\(e)".contains("/no/such/file.txt"), "\(e)")
        }
        XCTAssertThrowsError(try Corpus.prepare(inputs: [dir], tokenizer: tokenizer, output: dir + "/x.tok")) { e in
            XCTAssertTrue("\(e)".contains("directory"), "\(e)")
        }
    }

    func testCorruptTokenFilesAreRejected() throws {
        let (_, _) = try prepare("one two three\nfour five\n", maxLen: 8, name: "corrupt")
        let path = dir + "/corrupt.txt.tok"
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        func expect(_ bytes: Data, _ fragment: String, line: UInt = #line) {
            let p = dir + "/corrupt-variant.tok"
            try? bytes.write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try TokenDataset(path: p), line: line) { XCTAssertTrue("\($0)".contains(fragment), "\($0)", line: line) }
        }
        expect(good.prefix(100), "not a Distillery token file")
        expect(good.dropLast(3), "bytes, the header describes")
        var b = good; b[8] = 9; expect(b, "version 9")
        b = good; b[TokenFileHeader.size] = 0xFF; b[TokenFileHeader.size + 1] = 0xFF; expect(b, "outside the")
        b = good; b[good.count - 8] = 99; expect(b, "out of order or past")
        XCTAssertThrowsError(try TokenDataset(path: Fixtures.path("tiny-bert-mlm/model.safetensors")))
    }

    func testDemoDataPreparesAndChecksVocabulary() throws {
        let out = dir + "/demo.tok"
        let s = try Corpus.prepare(inputs: [Self.demoText], tokenizer: tokenizer, maxSequenceLength: 128, output: out)
        XCTAssertGreaterThan(s.tokens, 400_000)
        XCTAssertLessThan(s.unknownRate, 0.001)
        let data = try TokenDataset(path: out)
        XCTAssertNoThrow(try data.checkVocabulary(tokenizer.vocabulary))
        let other = try Vocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        XCTAssertThrowsError(try data.checkVocabulary(other)) { XCTAssertTrue("\($0)".contains("another vocabulary"), "\($0)") }
    }

    /// Over more than a million real tokens: 15% ± 0.2% of non-special tokens selected,
    /// 80/10/10 ± 1%, never a special or padding token, and the same key gives the same masks.
    func testMaskingStatistics() throws {
        let out = dir + "/mask-stats.tok"
        _ = try Corpus.prepare(inputs: [Self.demoText], tokenizer: tokenizer, maxSequenceLength: 128, output: out)
        let data = try TokenDataset(path: out)
        let masker = MLMMasker(policy: MaskingPolicy(), tokenizer: tokenizer)
        let batches = EpochBatches(lengths: (0..<data.count).map(data.length), batchSize: 32, seed: 5)
        let special = Set(tokenizer.specialIds)
        var candidates = 0, selected = 0, masked = 0, random = 0, kept = 0, step: UInt64 = 0
        var epoch = 0
        while candidates < 1_000_000 {
            for b in batches.epoch(epoch) {
                let batch = data.collate(b, padId: tokenizer.padId)
                let m = masker.apply(TokenBatchView(inputIds: batch.ids, attentionMask: batch.mask), key: streamKey(1, step))
                step += 1
                for i in 0..<batch.ids.count where batch.mask[i] != 0 && !special.contains(batch.ids[i]) { candidates += 1 }
                for i in 0..<batch.ids.count where m.labels[i] != -100 {
                    selected += 1
                    XCTAssertEqual(m.labels[i], batch.ids[i])
                    XCTAssertFalse(special.contains(batch.ids[i]), "special token selected")
                    XCTAssertEqual(batch.mask[i], 1, "padding selected")
                    if m.inputIds[i] == tokenizer.maskId { masked += 1 } else if m.inputIds[i] == batch.ids[i] { kept += 1 } else { random += 1 }
                }
                for i in 0..<batch.ids.count where m.labels[i] == -100 { XCTAssertEqual(m.inputIds[i], batch.ids[i]) }
            }
            epoch += 1
        }
        let rate = Double(selected) / Double(candidates)
        XCTAssertEqual(rate, 0.15, accuracy: 0.002)
        // A random replacement can draw the original id (1 in 30,522): count it as kept.
        XCTAssertEqual(Double(masked) / Double(selected), 0.8, accuracy: 0.01)
        XCTAssertEqual(Double(random) / Double(selected), 0.1, accuracy: 0.01)
        XCTAssertEqual(Double(kept) / Double(selected), 0.1, accuracy: 0.01)
        print("masking over \(candidates) tokens: selected \(rate), mask \(Double(masked) / Double(selected)), random \(Double(random) / Double(selected)), kept \(Double(kept) / Double(selected))")

        // Reproducible for the same key; different for the next serving.
        let batch = data.collate(Array(0..<8), padId: tokenizer.padId)
        let view = TokenBatchView(inputIds: batch.ids, attentionMask: batch.mask)
        let a = masker.apply(view, key: 42), b = masker.apply(view, key: 42), c = masker.apply(view, key: 43)
        XCTAssertEqual(a.inputIds, b.inputIds); XCTAssertEqual(a.labels, b.labels)
        XCTAssertNotEqual(a.labels, c.labels)
    }

    func testSmoothedAndWholeWordMasking() throws {
        let out = dir + "/mask-smooth.tok"
        _ = try Corpus.prepare(inputs: [Self.demoText], tokenizer: tokenizer, maxSequenceLength: 128, output: out)
        let data = try TokenDataset(path: out)
        let counts = data.tokenCounts()
        var policy = MaskingPolicy(); policy.smoothing = 0.7
        let smooth = MLMMasker(policy: policy, tokenizer: tokenizer, tokenCounts: counts)
        let plain = MLMMasker(policy: MaskingPolicy(), tokenizer: tokenizer)
        let the = tokenizer.vocabulary.id("the")!
        var theSmooth = 0, thePlain = 0, total = 0
        for k in 0..<60 {
            let batch = data.collate(Array((k * 32)..<(k * 32 + 32)), padId: tokenizer.padId)
            let view = TokenBatchView(inputIds: batch.ids, attentionMask: batch.mask)
            let s = smooth.apply(view, key: UInt64(k)), p = plain.apply(view, key: UInt64(k))
            XCTAssertEqual(s.targetCount, p.targetCount)
            total += s.targetCount
            theSmooth += s.labels.filter { $0 == the }.count
            thePlain += p.labels.filter { $0 == the }.count
        }
        // Smoothing down-weights frequent tokens such as "the".
        XCTAssertLessThan(Double(theSmooth), 0.5 * Double(thePlain))

        policy = MaskingPolicy(); policy.wholeWord = true
        let wwm = MLMMasker(policy: policy, tokenizer: tokenizer)
        let batch = data.collate(Array(0..<64), padId: tokenizer.padId)
        let m = wwm.apply(TokenBatchView(inputIds: batch.ids, attentionMask: batch.mask), key: 9)
        // A selected continuation piece always follows a selected piece of the same word.
        for i in 1..<batch.ids.count where m.labels[i] != -100 && tokenizer.vocabulary.tokens[Int(batch.ids[i])].hasPrefix("##") {
            XCTAssertNotEqual(m.labels[i - 1], -100, "whole word broken at \(i)")
        }
        let candidates = (0..<batch.ids.count).filter { batch.mask[$0] != 0 && !tokenizer.specialIds.contains(batch.ids[$0]) }.count
        XCTAssertEqual(Double(m.targetCount) / Double(candidates), 0.15, accuracy: 0.01)
    }

    func testEpochBatches() {
        var rng = SplitMix64(seed: 3)
        let lengths = (0..<5000).map { _ in 3 + Int(rng.next() % 126) }
        let b = EpochBatches(lengths: lengths, batchSize: 16, seed: 11)
        let e0 = b.epoch(0), again = b.epoch(0), e1 = b.epoch(1)
        XCTAssertEqual(e0, again)
        XCTAssertNotEqual(e0, e1)
        XCTAssertEqual(e0.flatMap { $0 }.sorted(), Array(0..<5000))
        // Similar lengths together: far less padding than random batches.
        func padding(_ batches: [[Int]]) -> Int { batches.reduce(0) { acc, bt in acc + bt.map { lengths.map { $0 }[$0] }.max()! * bt.count - bt.reduce(0) { $0 + lengths[$1] } } }
        var shuffled = Array(0..<5000); shuffled.shuffle(using: &rng)
        let random = stride(from: 0, to: 5000, by: 16).map { Array(shuffled[$0..<min(5000, $0 + 16)]) }
        XCTAssertLessThan(padding(e0), padding(random) / 10)

        // Shuffled: every example once, full batches in the shuffled order, the same epoch twice,
        // and as much padding as any random cut (nothing sorted by length).
        let s = EpochBatches(lengths: lengths, batchSize: 16, seed: 11, order: .shuffled)
        let s0 = s.epoch(0)
        XCTAssertEqual(s0, s.epoch(0))
        XCTAssertNotEqual(s0, s.epoch(1))
        XCTAssertEqual(s0.flatMap { $0 }.sorted(), Array(0..<5000))
        XCTAssertEqual(s0.map(\.count), [Int](repeating: 16, count: 312) + [8])
        XCTAssertGreaterThan(padding(s0), padding(random) / 2)
        XCTAssertLessThan(padding(s0), padding(random) * 2)
    }
}
