import Foundation
import XCTest
import DistilleryFormats
import DistilleryTensor
import DistilleryQuant
import DistilleryCLI

/// Paths of the committed fixtures (copied from ../shared/fixtures, produced by Hugging Face).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func path(_ p: String) -> String { root + "/" + p }
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// The real all-MiniLM-L6-v2, fetched by `.ci/fetch-teacher` (or where $MINILM points).
    static func miniLM() throws -> String {
        let p = ProcessInfo.processInfo.environment["MINILM"] ?? repositoryRoot + "/.models/all-MiniLM-L6-v2"
        guard FileManager.default.fileExists(atPath: p + "/model.safetensors") else {
            XCTFail("all-MiniLM-L6-v2 is not at \(p): run .ci/fetch-teacher first")
            throw XCTSkip("missing teacher")
        }
        return p
    }

    /// The skip for a test of an optional library that is missing (`why`), and a failure as well
    /// where `variable`=1: .ci/run installs oneDNN and Open MPI and sets DISTILL_REQUIRE_DNNL and
    /// DISTILL_REQUIRE_MPI, so there a missing library is a broken setup, not a reason to skip.
    static func missingOptional(_ why: String, unless variable: String) -> XCTSkip {
        if ProcessInfo.processInfo.environment[variable] == "1" { XCTFail("\(variable)=1, but \(why)") }
        return XCTSkip(why)
    }

    /// oneDNN's own tests run only where it is loaded (without it the tests that cover both
    /// backends would quietly cover OpenBLAS twice).
    static func requireOneDNN() throws {
        if !OneDNN.available { throw missingOptional("oneDNN: \(OneDNN.status)", unless: "DISTILL_REQUIRE_DNNL") }
    }

    /// The tiny BERT fixture with the 512-token vocabulary made for it, as a model folder.
    static func makeTinyTeacher(at folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try? FileManager.default.removeItem(atPath: folder + "/" + f)
            try FileManager.default.copyItem(atPath: path("tiny-bert-mlm/" + f), toPath: folder + "/" + f)
        }
        try? FileManager.default.removeItem(atPath: folder + "/vocab.txt")
        try FileManager.default.copyItem(atPath: path("tiny-vocab/vocab.txt"), toPath: folder + "/vocab.txt")
    }

    /// A fresh scratch folder `name` holding the tiny teacher (`teacher/`) and its int8
    /// checkpoint (`teacher-int8.safetensors.zst`, as `distill quantize` writes it).
    static func tinyTeacherWithInt8(_ name: String, scheme: QuantizationScheme = QuantizationScheme()) throws
        -> (dir: String, teacher: String, int8: String, summary: QuantizeSummary) {
        let dir = temporaryDirectory + "/" + name
        try? FileManager.default.removeItem(atPath: dir)
        let teacher = dir + "/teacher", int8 = dir + "/teacher-int8.safetensors.zst"
        try makeTinyTeacher(at: teacher)
        let summary = try Quantizer.quantize(input: teacher, output: int8, scheme: scheme)
        return (dir, teacher, int8, summary)
    }

    /// A checkpoint's tensors as owned copies, to write again changed (damaged or older files).
    static func ownedTensors(of checkpoint: Checkpoint) throws -> [OwnedTensor] {
        let image = try SafetensorsImage(try checkpoint.decompressAll(), path: checkpoint.path)
        return try image.tensors.map { t in OwnedTensor(name: t.name, dtype: t.dtype, shape: t.shape, data: try image.withBytes(t) { Array($0) }) }
    }

    static var temporaryDirectory: String {
        let d = NSTemporaryDirectory() + "distillery-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        TemporaryFilesCleanup.register(d)
        return d
    }
}

/// Removes the run's scratch folder when the test bundle finishes: a full run leaves about 10 GB
/// there (models, checkpoints, caches), and CI machines and repeated local runs fill their disks.
/// DISTILL_KEEP_TEST_FILES=1 keeps it for a look.
final class TemporaryFilesCleanup: NSObject, XCTestObservation {
    nonisolated(unsafe) static var registered: TemporaryFilesCleanup?
    static let lock = NSLock()
    let path: String
    init(path: String) { self.path = path }

    static func register(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        guard registered == nil, ProcessInfo.processInfo.environment["DISTILL_KEEP_TEST_FILES"] == nil else { return }
        let c = TemporaryFilesCleanup(path: path)
        registered = c
        XCTestObservationCenter.shared.addTestObserver(c)
    }

    func testBundleDidFinish(_ testBundle: Bundle) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}

extension OwnedTensor {
    var floats: [Float] { data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
}

extension XCTestCase {
    /// Runs a `distill` command line in-process.
    func distill(_ args: [String]) throws {
        var command = try Distill.parseAsRoot(args)
        try command.run()
    }
}
