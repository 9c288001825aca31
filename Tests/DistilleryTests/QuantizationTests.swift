import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryQuant

final class QuantizationTests: XCTestCase {
    /// Real sentences as padded batches: the first `count` lines of the held-out demo text.
    static func sentences(_ tokenizer: BertTokenizer, count: Int, maxLength: Int = 128, batch: Int = 16) throws -> [TokenBatch] {
        let text = try String(contentsOfFile: Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt", encoding: .utf8)
        let lines = text.split(separator: "\n").prefix(count).map { tokenizer.encode(String($0), maxLength: maxLength).inputIds }
        return stride(from: 0, to: lines.count, by: batch).map { start in
            let group = Array(lines[start..<min(lines.count, start + batch)])
            let S = group.map(\.count).max()!
            var ids = [Int32](repeating: tokenizer.padId, count: group.count * S), mask = [Float](repeating: 0, count: group.count * S)
            for (b, seq) in group.enumerated() { for (i, t) in seq.enumerated() { ids[b * S + i] = t; mask[b * S + i] = 1 } }
            return TokenBatch(B: group.count, S: S, inputIds: ids, attentionMask: mask, tokenTypes: [Int32](repeating: 0, count: ids.count))
        }
    }

    /// Mean-pooled sentence embeddings of a runner.
    static func embeddings(_ r: EncoderModel, _ batches: [TokenBatch]) throws -> [[Double]] {
        let H = r.config.hiddenSize
        var out: [[Double]] = []
        for b in batches {
            let h = FloatBuffer(count: b.B * b.S * H)
            try r.encode(b, hidden: h.base, logitRows: [], logits: nil)
            for i in 0..<b.B {
                var e = [Double](repeating: 0, count: H), n = 0.0
                for s in 0..<b.S where b.attentionMask[i * b.S + s] != 0 {
                    for k in 0..<H { e[k] += Double(h.base[(i * b.S + s) * H + k]) }
                    n += 1
                }
                out.append(e.map { $0 / n })
            }
        }
        return out
    }

    static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        let d = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        return d / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
    }

    /// all-MiniLM-L6-v2 in int8 keeps a mean cosine ≥ 0.999 to the fp32 sentence embeddings
    /// over 96 real sentences, and its checkpoint is ≤ 26% of the fp32 safetensors bytes
    /// before zstd.
    func testMiniLMInt8Fidelity() throws {
        let folder = try Fixtures.miniLM()
        let fp32 = try HuggingFaceFolder.load(folder)
        let tokenizer = try BertTokenizer.load(path: folder)
        let batches = try Self.sentences(tokenizer, count: 96)
        let ck = Fixtures.temporaryDirectory + "/minilm-int8.safetensors.zst"
        try Quantizer.save(fp32.model, tokenizer: fp32.tokenizer, to: ck, provenance: Provenance(source: folder))
        let int8 = try ModelStore.open(ck).model, checkpoint = try Checkpoint(path: ck)
        let a = try Self.embeddings(fp32.model, batches), b = try Self.embeddings(int8, batches)
        let cosines = zip(a, b).map { Self.cosine($0, $1) }
        let mean = cosines.reduce(0, +) / Double(cosines.count)
        print("MiniLM \(int8.precision): mean sentence cosine \(mean) over \(cosines.count) sentences, min \(cosines.min()!)")
        XCTAssertGreaterThanOrEqual(cosines.count, 64)
        XCTAssertGreaterThanOrEqual(mean, 0.999)

        let fp32Bytes = try FileManager.default.attributesOfItem(atPath: folder + "/model.safetensors")[.size] as! Int
        let share = Double(checkpoint.decompressedSize) / Double(fp32Bytes)
        print("int8 checkpoint: \(checkpoint.decompressedSize) bytes before zstd (\(share * 100)% of fp32's \(fp32Bytes)), \(checkpoint.fileSize) after")
        XCTAssertLessThanOrEqual(share, 0.26)

        // In memory, the same quantization gives the same numbers as through the checkpoint.
        let direct = fp32.model.copy()
        try Quantizer.quantizeInPlace(direct)
        XCTAssertEqual(try Self.embeddings(direct, Array(batches.prefix(1))), try Self.embeddings(int8, Array(batches.prefix(1))))
    }
}
