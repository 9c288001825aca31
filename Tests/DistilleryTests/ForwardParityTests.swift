import XCTest
import DistilleryFormats
import DistilleryModels

/// Every hidden state and the logits of the tiny Hugging Face models, within 1e-4 (max abs)
/// of what PyTorch computed.
final class ForwardParityTests: XCTestCase {
    func check(_ name: String, expectedLayers: Int) throws {
        let loaded = try HuggingFaceFolder.load(Fixtures.path(name))
        let reference = try SafetensorsFile(path: Fixtures.path(name + "/reference.safetensors"))
        let batch = try TokenBatch.read(from: reference)
        let outputs = try loaded.model.referenceOutputs(batch)
        XCTAssertEqual(outputs.count, expectedLayers + 2, "hidden_states.0…\(expectedLayers) and logits")
        for o in outputs {
            let expected = try reference.floats(o.name)
            XCTAssertEqual(reference.info(o.name)?.shape, o.shape, o.name)
            let d = maxAbsDifference(o.floats, expected)
            XCTAssertLessThanOrEqual(d, 1e-4, "\(name) \(o.name): max abs difference \(d)")
            print("parity \(name) \(o.name): max abs difference \(d), max |reference| \(expected.map(abs).max()!)")
        }
    }

    func testTinyBERT() throws { try check("tiny-bert-mlm", expectedLayers: 2) }
    func testTinyALBERT() throws { try check("tiny-albert-mlm", expectedLayers: 4) }
    func testTinyDistilBERT() throws { try check("tiny-distilbert-mlm", expectedLayers: 2) }
    /// ALBERT with layers that do not split evenly into groups: 5 layers in 2 groups run groups
    /// 0, 0, 0, 1, 1, as transformers computes int(i / (L / G)).
    func testALBERTUnevenGroups() throws { try check("tiny-albert-uneven", expectedLayers: 5) }
    /// ALBERT with two sub-layers a group: transformers 5 reports a hidden state after each of
    /// the 6 × 2 sub-layers.
    func testALBERTInnerGroups() throws { try check("tiny-albert-groups2x2", expectedLayers: 12) }
}
