import Foundation
import XCTest
import DistilleryFuzzing

/// Replays, through each fuzz target, the inputs the fuzzers once broke Distillery with
/// (Fixtures/fuzz-regressions/TARGET, copied there by Tests/Fuzz/run.sh), the smallest part of
/// the fuzzers' minimised corpus (Fixtures/fuzz-corpus/TARGET: up to 300 KB a target, from
/// `-merge=1` after 11-minute runs) and a few small fixture files: each must end in a value or
/// an error, never a crash.
final class FuzzRegressionTests: XCTestCase {
    func testRegressionInputsAndSeeds() throws {
        var replayed = 0
        var corpus = 0
        for (root, target) in ["fuzz-regressions", "fuzz-corpus"].flatMap({ r in FuzzTarget.allCases.map { (Fixtures.path(r), $0) } }) {
            let dir = root + "/" + target.rawValue
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map { dir + "/" + $0 }
            for f in files {
                target.run(try Data(contentsOf: URL(fileURLWithPath: f)))
                replayed += 1
                if root.hasSuffix("fuzz-corpus") { corpus += 1 }
            }
        }
        XCTAssertGreaterThan(corpus, 1000, "the committed fuzz corpus is missing")
        // The fixtures the fuzzers start from, cut short and bit-flipped: the cheapest hostile
        // inputs, through every target.
        let seeds = [Fixtures.path("tiny-bert-mlm/reference.safetensors"), Fixtures.path("tiny-bert-mlm/config.json"),
                     Fixtures.path("tiny-vocab/vocab.txt"), Fixtures.repositoryRoot + "/recipes/demo.toml",
                     Fixtures.path("param-counts/configs/t5-small.json"), Fixtures.path("param-counts/configs/microsoft__deberta-v3-base.json")]
        var rng = UInt64(1)
        for path in seeds {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            for target in FuzzTarget.allCases {
                target.run(data)
                target.run(data.prefix(data.count / 3))
                var flipped = data
                for _ in 0..<8 {
                    rng = rng &* 6364136223846793005 &+ 1442695040888963407
                    let i = Int(rng >> 33) % max(1, flipped.count)
                    if !flipped.isEmpty { flipped[i] ^= UInt8(truncatingIfNeeded: rng >> 13) | 1 }
                }
                target.run(flipped)
                replayed += 3
            }
        }
        print("replayed \(replayed) inputs through \(FuzzTarget.allCases.count) fuzz targets")
    }
}
