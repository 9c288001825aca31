import XCTest
import DistilleryFormats
import DistilleryCLI

/// The `distill` commands, run in-process.
final class CommandTests: XCTestCase {
    func run(_ args: [String]) throws {
        var command = try Distill.parseAsRoot(args)
        try command.run()
    }

    func testForwardWritesTheContract() throws {
        let out = Fixtures.temporaryDirectory + "/forward-albert.safetensors"
        try run(["forward", "--model", Fixtures.path("tiny-albert-mlm"),
                 "--batch", Fixtures.path("tiny-albert-mlm/reference.safetensors"), "--out", out])
        let got = try SafetensorsFile(path: out)
        let ref = try SafetensorsFile(path: Fixtures.path("tiny-albert-mlm/reference.safetensors"))
        XCTAssertEqual(Set(got.tensors.map(\.name)), Set(["hidden_states.0", "hidden_states.1", "hidden_states.2",
                                                          "hidden_states.3", "hidden_states.4", "logits"]))
        for t in got.tensors {
            XCTAssertEqual(t.dtype, .F32)
            XCTAssertLessThanOrEqual(maxAbsDifference(try got.floats(t.name), try ref.floats(t.name)), 1e-4, t.name)
        }
    }

    func testForwardRejectsBadInput() throws {
        // The batch file has no input_ids: a clear error, not a crash.
        XCTAssertThrowsError(try run(["forward", "--model", Fixtures.path("tiny-bert-mlm"),
                                      "--batch", Fixtures.path("tiny-bert-mlm/model.safetensors"),
                                      "--out", Fixtures.temporaryDirectory + "/x.safetensors"])) { e in
            XCTAssertTrue("\(e)".contains("input_ids"), "\(e)")
        }
        XCTAssertThrowsError(try run(["forward", "--model", "/nonexistent", "--batch", "b", "--out", "o"])) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent"), "\(e)")
        }
    }

    func testConvertBothWaysAndInspect() throws {
        let dir = Fixtures.temporaryDirectory
        let ck = dir + "/cli-bert.safetensors.zst", out = dir + "/cli-bert-export"
        try run(["convert", Fixtures.path("tiny-bert-mlm"), ck])
        try run(["inspect", ck, "--verify"])
        try run(["inspect", ck, "--json"])
        try run(["convert", ck, out])
        for f in ["config.json", "model.safetensors"] { XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f) }
        // Every command that takes a model takes the checkpoint too.
        let fwd = dir + "/cli-forward.safetensors"
        try run(["forward", "--model", ck, "--batch", Fixtures.path("tiny-bert-mlm/reference.safetensors"), "--out", fwd])
        try run(["params", ck, Fixtures.path("tiny-bert-mlm"), "--json"])
        XCTAssertThrowsError(try run(["inspect", Fixtures.path("tokenizer/vocab.txt")]))
    }

    func testTokenizeReadsTheFixtureFormat() throws {
        try run(["tokenize", "--tokenizer", Fixtures.path("tokenizer/vocab.txt"), "--input", Fixtures.path("tokenizer/cases.jsonl")])
        XCTAssertThrowsError(try run(["tokenize", "--tokenizer", Fixtures.path("tokenizer/vocab.txt")]))
    }
}
