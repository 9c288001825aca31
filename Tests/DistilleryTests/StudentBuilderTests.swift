import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryTraining

final class StudentBuilderTests: XCTestCase {
    /// LAPACK's SVD recovers a known spectrum, and the rank-k truncation's error is the
    /// Eckart–Young bound sqrt(Σ_{i>k} σᵢ²).
    func testTruncatedSVDIsTheBestRankKApproximation() throws {
        let M = 60, N = 24, k = 7
        var rng = SplitMix64(seed: 99)
        // Orthonormal columns by Gram–Schmidt (double precision).
        func orthonormal(_ rows: Int, _ cols: Int) -> [[Double]] {
            var q: [[Double]] = []
            while q.count < cols {
                var v = (0..<rows).map { _ in Double(rng.nextGaussian()) }
                for u in q { let d = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }; for i in 0..<rows { v[i] -= d * u[i] } }
                let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                q.append(v.map { $0 / n })
            }
            return q
        }
        let U = orthonormal(M, N), V = orthonormal(N, N)
        let sigma = (0..<N).map { 10 * pow(0.7, Double($0)) }
        var a = [Float](repeating: 0, count: M * N)
        for i in 0..<M { for j in 0..<N { a[i * N + j] = Float((0..<N).reduce(0.0) { $0 + U[$1][i] * sigma[$1] * V[$1][j] }) } }
        let svd = try a.withUnsafeBufferPointer { try truncatedSVD($0.baseAddress!, M: M, N: N, k: k) }
        for i in 0..<k { XCTAssertEqual(Double(svd.s[i]), sigma[i], accuracy: 1e-4 * sigma[0]) }
        var err = 0.0
        for i in 0..<M { for j in 0..<N {
            var r: Float = 0
            for e in 0..<k { r += svd.u[i * k + e] * svd.s[e] * svd.vt[e * N + j] }
            err += Double((a[i * N + j] - r) * (a[i * N + j] - r))
        } }
        let bound = sigma[k...].reduce(0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertEqual(err.squareRoot(), bound, accuracy: 1e-3 * bound)
    }

    func teacher() throws -> EncoderModel { try HuggingFaceFolder.load(Fixtures.path("tiny-bert-mlm")).model }

    /// Layer 0 of tiny-bert-mlm with its embeddings and head is exactly the student transformers
    /// built for the distill-step-bert fixture.
    func testLayerSelectionMatchesTheFixtureStudent() throws {
        let s = try StudentBuilder.build(.layers(LayerSelection(layers: [0])), teacher: try teacher(), seed: 0)
        let fixture = try HuggingFaceFolder.load(Fixtures.path("distill-step-bert")).model
        XCTAssertEqual(s.config, fixture.config)
        XCTAssertEqual(s.parameters.toArray(), fixture.parameters.toArray())
    }

    /// A DistilBERT-family student drops token types by folding type 0 into the positions: on
    /// single-segment input it computes what the BERT-family student computes.
    func testDroppingTokenTypesIsExactForSingleSegments() throws {
        let t = try teacher()
        let bert = try StudentBuilder.build(.layers(LayerSelection(layers: [0, 1])), teacher: t, seed: 0)
        let distil = try StudentBuilder.build(.layers(LayerSelection(layers: [0, 1], family: .distilbert)), teacher: t, seed: 0)
        XCTAssertEqual(distil.config.typeVocabSize, 0)
        XCTAssertFalse(distil.config.hasPooler)
        var batch = try TokenBatch.read(from: try SafetensorsFile(path: Fixtures.path("tiny-bert-mlm/reference.safetensors")))
        batch.tokenTypes = [Int32](repeating: 0, count: batch.B * batch.S)
        let a = try bert.referenceOutputs(batch), b = try distil.referenceOutputs(TokenBatch(B: batch.B, S: batch.S, inputIds: batch.inputIds, attentionMask: batch.attentionMask))
        for (x, y) in zip(a, b) { XCTAssertLessThanOrEqual(maxAbsDifference(x.floats, y.floats), 2e-5, x.name) }
    }

    func testAlbertStudentsFactorizeAndShare() throws {
        let t = try teacher()
        let cases: [(LayerSharing, Int, Int)] = [(.all, 1, 1), (.attention, 1, 3), (.ffn, 3, 1), (.none, 3, 3)]
        for (sharing, nA, nF) in cases {
            let s = try StudentBuilder.build(.albert(AlbertStudent(embeddingSize: 16, layers: 3, sharing: sharing, initLayer: 1)), teacher: t, seed: 1)
            XCTAssertEqual(s.layout.attention.count, nA, "\(sharing)")
            XCTAssertEqual(s.layout.ffn.count, nF, "\(sharing)")
            XCTAssertEqual(s.layout.steps.count, 3)
            XCTAssertEqual(s.config.embeddingSize, 16)
        }
        // The factorized word embeddings are the best rank-16 approximation of the teacher's.
        let s = try StudentBuilder.build(.albert(AlbertStudent(embeddingSize: 16)), teacher: t, seed: 1)
        let V = 512, H = 64, E = 16
        let W = t.values("embeddings.word")!, w = s.values("embeddings.word")!, P = s.values("embeddings.projection.weight")!
        var err = 0.0
        for v in 0..<V { for h in 0..<H {
            var r: Float = 0
            for e in 0..<E { r += P[h * E + e] * w[v * E + e] }
            err += Double((W[v * H + h] - r) * (W[v * H + h] - r))
        } }
        let full = try W.withUnsafeBufferPointer { try truncatedSVD($0.baseAddress!, M: V, N: H, k: H) }
        let bound = full.s[E...].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertEqual(err.squareRoot(), bound, accuracy: 1e-3 * bound)
        // The shared block starts as the teacher's layer (default: the middle one).
        XCTAssertEqual(s.values("attention.0.query.weight"), t.values("attention.1.query.weight"))
    }

    func testBadSpecsAreClear() throws {
        let t = try teacher()
        XCTAssertThrowsError(try StudentBuilder.build(.layers(LayerSelection(layers: [0, 5])), teacher: t, seed: 0)) {
            XCTAssertTrue("\($0)".contains("teacher layer 5"), "\($0)")
        }
        XCTAssertThrowsError(try StudentBuilder.build(.albert(AlbertStudent(embeddingSize: 500)), teacher: t, seed: 0)) {
            XCTAssertTrue("\($0)".contains("embedding_size"), "\($0)")
        }
    }
}
