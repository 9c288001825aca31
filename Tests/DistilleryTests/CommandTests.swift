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
}
