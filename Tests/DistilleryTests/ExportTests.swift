import Foundation
import XCTest
import DistilleryFormats
import DistilleryModels
import DistilleryQuant
import DistilleryTraining

/// Exported folders load in transformers as the source family's *ForMaskedLM and match our
/// forward within 1e-4 (Tests/Scripts/check_export.py). Runs where python3 has torch and
/// transformers; prints SKIPPED otherwise.
final class ExportTests: XCTestCase {
    static func pythonHas(_ modules: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import \(modules)"]
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    /// Exports each model (through a checkpoint), writes our outputs on its batch, and runs the
    /// script once for all of them.
    static func checkWithTransformers(_ models: [(name: String, model: EncoderModel, batch: String)],
                                      file: StaticString = #filePath, line: UInt = #line) throws {
        var args: [String] = []
        for (name, model, batch) in models {
            let dir = Fixtures.temporaryDirectory + "/export-\(name)"
            let ck = dir + ".safetensors.zst"
            try ModelCheckpoint.save(model, tokenizer: TokenizerFiles(), to: ck, provenance: Provenance(source: name))
            let loaded = try ModelStore.load(ck)
            try HuggingFaceFolder.save(loaded.model, tokenizer: loaded.tokenizer, to: dir)
            let ours = dir + "-ours.safetensors"
            try Safetensors.write(try loaded.model.referenceOutputs(try TokenBatch.read(from: try SafetensorsFile(path: batch))), to: ours)
            args += [dir, batch, ours]
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Fixtures.repositoryRoot + "/Tests/Scripts/check_export.py"] + args
        let pipe = Pipe()
        p.standardOutput = pipe; p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print(text)
        XCTAssertEqual(p.terminationStatus, 0, text, file: file, line: line)
    }

    func testFixturesExportToTransformers() throws {
        guard Self.pythonHas("torch, transformers, safetensors") else {
            print("SKIPPED: python3 with torch and transformers is not available")
            return
        }
        var models = try ["tiny-bert-mlm", "tiny-albert-mlm", "tiny-distilbert-mlm", "tiny-albert-uneven", "tiny-albert-groups2x2"].map {
            ($0, try HuggingFaceFolder.load(Fixtures.path($0)).model, Fixtures.path($0 + "/reference.safetensors"))
        }
        // Students Distillery builds, including sharing Hugging Face ALBERT has no name for
        // (exported unrolled, one layer group per layer).
        let teacher = try HuggingFaceFolder.load(Fixtures.path("tiny-bert-mlm")).model
        let batch = Fixtures.path("tiny-bert-mlm/reference.safetensors")
        let noTypes = Fixtures.path("tiny-distilbert-mlm/reference.safetensors")
        for (name, sharing) in LayerSharing.studentChoices {
            let s = try StudentBuilder.build(.albert(AlbertStudent(embeddingSize: 16, layers: 3, sharing: sharing)), teacher: teacher, seed: 3)
            models.append(("albert-student-\(name)", s, batch))
        }
        models.append(("distilbert-student", try StudentBuilder.build(.layers(LayerSelection(layers: [1], family: .distilbert)), teacher: teacher, seed: 0), noTypes))
        try Self.checkWithTransformers(models)
    }
}
