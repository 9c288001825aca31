import XCTest
import DistilleryFormats
import DistilleryModels

/// The real all-MiniLM-L6-v2 (unprefixed names, a pooler, a position_ids buffer) loads and
/// matches transformers on real sentences.
final class MiniLMTests: XCTestCase {
    func testLastHiddenStateMatchesTransformers() throws {
        let loaded = try HuggingFaceFolder.load(try Fixtures.miniLM())
        let m = loaded.model
        XCTAssertTrue(m.config.hasPooler)
        XCTAssertFalse(m.config.hasMLMHead)
        XCTAssertEqual(m.layout.count, 22_713_216)
        let ref = try SafetensorsFile(path: Fixtures.path("minilm/reference.safetensors"))
        let batch = try TokenBatch.read(from: ref)
        let outs = try m.referenceOutputs(batch)
        let last = outs.first { $0.name == "hidden_states.6" }!
        let d = maxAbsDifference(last.floats, try ref.floats("last_hidden_state"))
        print("MiniLM last hidden state: max abs difference \(d)")
        XCTAssertLessThanOrEqual(d, 1e-4)
    }

    func testDroppingThePoolerIsExplicit() throws {
        let loaded = try HuggingFaceFolder.load(try Fixtures.miniLM(), options: LoadOptions(dropPooler: true))
        XCTAssertFalse(loaded.model.config.hasPooler)
        XCTAssertEqual(loaded.model.layout.count, 22_713_216 - 384 * 384 - 384)
    }
}
