import XCTest
import DistilleryFormats
import DistilleryModels

/// Loading fails on a missing, unused or mis-shaped tensor, naming it.
final class ModelLoadingTests: XCTestCase {
    /// A copy of tiny-bert-mlm whose tensors went through `edit`.
    func folder(_ name: String, _ edit: (inout [OwnedTensor]) -> Void) throws -> String {
        let src = Fixtures.path("tiny-bert-mlm")
        let dir = Fixtures.temporaryDirectory + "/" + name
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: src + "/config.json", toPath: dir + "/config.json")
        let f = try SafetensorsFile(path: src + "/model.safetensors")
        var tensors = f.tensors.map { OwnedTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, data: Array(f.bytes($0))) }
        edit(&tensors)
        try Safetensors.write(tensors, to: dir + "/model.safetensors")
        return dir
    }

    func error(_ path: String, options: LoadOptions = LoadOptions()) -> ModelLoadError? {
        do { _ = try HuggingFaceFolder.load(path, options: options); return nil } catch let e as ModelLoadError { return e } catch {
            XCTFail("\(error)"); return nil
        }
    }

    func testMissingTensorIsNamed() throws {
        let dir = try folder("missing") { $0.removeAll { $0.name == "bert.encoder.layer.1.output.dense.bias" } }
        guard case .missingTensor(_, let t, let shape)? = error(dir) else { return XCTFail() }
        XCTAssertEqual(t, "bert.encoder.layer.1.output.dense.bias")
        XCTAssertEqual(shape, [64])
    }

    func testUnexpectedTensorIsNamed() throws {
        // A question-answering head: a task head Distillery does not run (sequence classifiers it does).
        let dir = try folder("extra") { $0.append(OwnedTensor(name: "qa_outputs.weight", shape: [2, 64], floats: .init(repeating: 0, count: 128))) }
        guard case .unexpectedTensor(_, "qa_outputs.weight", _)? = error(dir) else { return XCTFail() }
    }

    func testWrongShapeIsNamed() throws {
        let dir = try folder("shape") { ts in
            let i = ts.firstIndex { $0.name == "bert.embeddings.LayerNorm.bias" }!
            ts[i] = OwnedTensor(name: ts[i].name, shape: [8, 8], floats: .init(repeating: 0, count: 64))
        }
        guard case .wrongShape(_, "bert.embeddings.LayerNorm.bias", [8, 8], [64])? = error(dir) else { return XCTFail() }
    }

    func testPretrainingHeadNeedsExplicitDrop() throws {
        let dir = try folder("nsp") { ts in
            ts.append(OwnedTensor(name: "cls.seq_relationship.weight", shape: [2, 64], floats: .init(repeating: 0, count: 128)))
            ts.append(OwnedTensor(name: "cls.seq_relationship.bias", shape: [2], floats: [0, 0]))
        }
        guard case .unexpectedTensor(_, "cls.seq_relationship.bias", let hint)? = error(dir) else { return XCTFail() }
        XCTAssertTrue(hint.contains("--drop-pretraining-heads"))
        XCTAssertNil(error(dir, options: LoadOptions(dropPretrainingHeads: true)))
    }

    func testTiedDecoderMustMatch() throws {
        let same = try folder("tied") { ts in
            let w = ts.first { $0.name == "bert.embeddings.word_embeddings.weight" }!
            ts.append(OwnedTensor(name: "cls.predictions.decoder.weight", dtype: .F32, shape: w.shape, data: w.data))
        }
        XCTAssertNil(error(same))
        let different = try folder("untied") { ts in
            let w = ts.first { $0.name == "bert.embeddings.word_embeddings.weight" }!
            ts.append(OwnedTensor(name: "cls.predictions.decoder.weight", dtype: .F32, shape: w.shape, data: w.data.map { $0 ^ 1 }))
        }
        guard case .untiedDecoder? = error(different) else { return XCTFail() }
    }

    func testUnprefixedNamesAndBuffersLoad() throws {
        let dir = try folder("unprefixed") { ts in
            ts = ts.map { t in
                OwnedTensor(name: t.name.hasPrefix("bert.") ? String(t.name.dropFirst(5)) : t.name, dtype: t.dtype, shape: t.shape, data: t.data)
            }
            ts.append(OwnedTensor(name: "embeddings.position_ids", shape: [1, 64], int64s: (0..<64).map { Int64($0) }))
        }
        let a = try HuggingFaceFolder.load(dir).model
        let b = try HuggingFaceFolder.load(Fixtures.path("tiny-bert-mlm")).model
        XCTAssertEqual(a.parameters.toArray(), b.parameters.toArray())
    }

    func testBadConfigsAreClear() throws {
        let dir = Fixtures.temporaryDirectory + "/badconfig"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try #"{"model_type": "gpt2"}"#.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HuggingFaceConfig.load(path: dir + "/config.json")) { e in
            XCTAssertTrue("\(e)".contains("model_type 'gpt2'"), "\(e)")
        }
        try #"{"model_type": "bert", "hidden_size": "wide"}"#.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HuggingFaceConfig.load(path: dir + "/config.json")) { e in
            XCTAssertTrue("\(e)".contains("hidden_size"), "\(e)")
        }
        try #"{"model_type": "bert", "hidden_size": 100, "num_attention_heads": 12}"#.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HuggingFaceConfig.load(path: dir + "/config.json").encoder.validate()) { e in
            XCTAssertTrue("\(e)".contains("num_attention_heads"), "\(e)")
        }
    }
}
