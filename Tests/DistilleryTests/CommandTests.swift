import XCTest
import DistilleryFormats
import DistilleryCLI

/// The `distill` commands, run in-process.
final class CommandTests: XCTestCase {
    func testForwardWritesTheContract() throws {
        let out = Fixtures.temporaryDirectory + "/forward-albert.safetensors"
        try distill(["forward", "--model", Fixtures.path("tiny-albert-mlm"),
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
        XCTAssertThrowsError(try distill(["forward", "--model", Fixtures.path("tiny-bert-mlm"),
                                      "--batch", Fixtures.path("tiny-bert-mlm/model.safetensors"),
                                      "--out", Fixtures.temporaryDirectory + "/x.safetensors"])) { e in
            XCTAssertTrue("\(e)".contains("input_ids"), "\(e)")
        }
        XCTAssertThrowsError(try distill(["forward", "--model", "/nonexistent", "--batch", "b", "--out", "o"])) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent"), "\(e)")
        }
    }

    func testConvertBothWaysAndInspect() throws {
        let dir = Fixtures.temporaryDirectory
        let ck = dir + "/cli-bert.safetensors.zst", out = dir + "/cli-bert-export"
        try distill(["convert", Fixtures.path("tiny-bert-mlm"), ck])
        try distill(["inspect", ck, "--verify"])
        try distill(["inspect", ck, "--json"])
        try distill(["convert", ck, out])
        for f in ["config.json", "model.safetensors"] { XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f) }
        // Every command that takes a model takes the checkpoint too.
        let fwd = dir + "/cli-forward.safetensors"
        try distill(["forward", "--model", ck, "--batch", Fixtures.path("tiny-bert-mlm/reference.safetensors"), "--out", fwd])
        try distill(["params", ck, Fixtures.path("tiny-bert-mlm"), "--json"])
        XCTAssertThrowsError(try distill(["inspect", Fixtures.path("tokenizer/vocab.txt")]))
    }

    func testParamsPresetsConfigsAndWhatIf() throws {
        let configs = Fixtures.path("param-counts/configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: configs).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertEqual(files.count, 35)
        try distill(["params"] + files.map { configs + "/" + $0 })
        try distill(["params"] + files.map { configs + "/" + $0 + ":base" } + ["--json"])
        try distill(["params", "bert-base-uncased", "t5-11b:mlm", "gpt3-175b", "facebook/bart-large", "--seq-len", "2048"])
        try distill(["params", "--like", "bert-base-uncased", "--layers", "6", "--hidden", "384", "--embedding", "128", "--share", "all"])
        try distill(["params", "--like", "t5-base", "--layers", "6", "--decoder-layers", "2", "gpt2", "--json"])
        for bad in [["params"], ["params", "no-such-model"], ["params", "--like", "gpt2", "--layers=-1"],
                    ["params", "--like", "gpt2", "--layers", "many"], ["params", "--layers", "6", "gpt2"],
                    ["params", "--like", "t5-small", "--share", "all"], ["params", "gpt2", "--seq-len", "0"], ["params", "gpt2", "--seq-len", "x"]] {
            XCTAssertThrowsError(try distill(bad), bad.joined(separator: " "))
        }
    }

    func testTokenizeReadsTheFixtureFormat() throws {
        try distill(["tokenize", "--tokenizer", Fixtures.path("tokenizer/vocab.txt"), "--input", Fixtures.path("tokenizer/cases.jsonl")])
        XCTAssertThrowsError(try distill(["tokenize", "--tokenizer", Fixtures.path("tokenizer/vocab.txt")]))
    }
}
