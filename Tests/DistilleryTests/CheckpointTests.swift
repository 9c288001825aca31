import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant

/// Compact checkpoints: bit-exact round trips, zstd -d compatibility, validation of every
/// corruption, atomic writes, and models through checkpoints.
final class CheckpointTests: XCTestCase {
    let dir = Fixtures.temporaryDirectory

    func sampleTensors() -> [OwnedTensor] {
        var rng = SplitMix64(seed: 1)
        func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        let floats = (0..<3000).map { _ in rng.nextGaussian() }
        return [
            OwnedTensor(name: "f32", shape: [30, 100], floats: floats),
            OwnedTensor(name: "f16", dtype: .F16, shape: [1001], data: bytes(2002)),
            OwnedTensor(name: "bf16", dtype: .BF16, shape: [7, 9], data: bytes(126)),
            OwnedTensor(name: "i8", dtype: .I8, shape: [513], data: bytes(513)),
            OwnedTensor(name: "i64", shape: [3, 5], int64s: (0..<15).map { Int64($0) * -77_777_777_777 }),
            OwnedTensor(name: "zeros", shape: [20000], floats: .init(repeating: 0, count: 20000)),
            OwnedTensor(name: "empty", shape: [0], floats: []),
        ]
    }

    func write(_ tensors: [OwnedTensor], _ path: String, shuffle: Bool = false, chunk: Int = 4096) throws {
        try Safetensors.withPayloads(tensors) {
            _ = try CheckpointWriter.write($0, metadata: ["k": "v"], to: path, level: 3, chunkSize: chunk, byteShuffle: shuffle)
        }
    }

    func testRoundTripBitExact() throws {
        for shuffle in [false, true] {
            let path = dir + "/rt-\(shuffle).safetensors.zst"
            let tensors = sampleTensors()
            try write(tensors, path, shuffle: shuffle)
            let c = try Checkpoint(path: path)
            XCTAssertEqual(c.byteShuffled, shuffle)
            XCTAssertEqual(c.metadata["k"], "v")
            XCTAssertGreaterThan(c.frames.count, 5, "large tensors span several frames")
            for t in tensors {
                let info = try c.require(t.name)
                XCTAssertEqual(info.shape, t.shape)
                XCTAssertEqual(try c.withBytes(info) { Array($0) }, t.data, "\(t.name) shuffle=\(shuffle)")
            }
            // Deterministic bytes.
            let again = dir + "/rt-again.safetensors.zst"
            try write(tensors.reversed(), again, shuffle: shuffle)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), try Data(contentsOf: URL(fileURLWithPath: again)))
        }
    }

    /// `zstd -d` (or any zstd decoder) yields a safetensors file that Python's safetensors loads
    /// and that equals the source. Runs where python3 has safetensors and numpy.
    func testZstdDecompressesToSafetensorsPythonLoads() throws {
        guard python("import safetensors, numpy") else {
            print("SKIPPED: python3 with safetensors and numpy is not available (CI installs them with pip)")
            return
        }
        let path = dir + "/py.safetensors.zst", plain = dir + "/py-plain.safetensors", out = dir + "/py-out.safetensors"
        let tensors = sampleTensors().filter { $0.dtype != .BF16 }  // numpy has no bfloat16
        try write(tensors, path)
        try Safetensors.write(tensors, metadata: ["k": "v"], to: plain)
        try? FileManager.default.removeItem(atPath: out)
        let decompress = """
        import shutil, subprocess, sys
        if shutil.which("zstd"):
            subprocess.run(["zstd", "-q", "-d", "-f", sys.argv[1], "-o", sys.argv[2]], check=True)
        else:
            import zstandard
            with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as o:
                o.write(zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read())
        from safetensors.numpy import load_file
        a, b = load_file(sys.argv[2]), load_file(sys.argv[3])
        assert sorted(a) == sorted(b), (sorted(a), sorted(b))
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and (a[k].tobytes() == b[k].tobytes()), k
        print("python safetensors loaded", len(a), "tensors")
        """
        XCTAssertTrue(python(decompress, args: [path, out, plain]), "python check failed")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), try Data(contentsOf: URL(fileURLWithPath: plain)))
    }

    func python(_ code: String, args: [String] = []) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", code] + args
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    // MARK: corruption

    func expectError(_ path: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let c = try Checkpoint(path: path)
            try c.verify()
            XCTFail("expected an error containing '\(fragment)'", file: file, line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(fragment), "\(error)", file: file, line: line)
        }
    }

    func corrupt(_ edit: (inout [UInt8]) -> Void) throws -> String {
        let path = dir + "/good.safetensors.zst"
        try write(sampleTensors(), path)
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        edit(&b)
        let bad = dir + "/bad.safetensors.zst"
        try Data(b).write(to: URL(fileURLWithPath: bad))
        return bad
    }

    func testTruncation() throws {
        expectError(try corrupt { $0.removeLast(100) }, "truncated")
        expectError(try corrupt { $0.removeLast($0.count - 3) }, "not a Distillery checkpoint")
        expectError(try corrupt { $0 = Array($0.prefix(40)) }, "truncated")
    }

    func testBadFrameChecksum() throws {
        // Flip a byte inside a data frame's compressed payload.
        let path = dir + "/good.safetensors.zst"
        try write(sampleTensors(), path)
        let c = try Checkpoint(path: path)
        let f = c.frames[1]
        expectError(try corrupt { $0[f.compressedOffset + f.compressedSize / 2] ^= 0x40 }, "frame 1")
        // The last 4 bytes of a frame are its checksum.
        expectError(try corrupt { $0[f.compressedOffset + f.compressedSize - 2] ^= 1 }, "frame 1")
    }

    func testSeekTableDisagreesWithFrames() throws {
        let path = dir + "/good.safetensors.zst"
        try write(sampleTensors(), path)
        let c = try Checkpoint(path: path)
        let n = try Data(contentsOf: URL(fileURLWithPath: path)).count
        let tableStart = n - (8 + c.frames.count * 8 + 9)
        // Move a byte of compressed size from frame 1 to frame 2: sums still agree, frames do not.
        expectError(try corrupt { b in
            b[tableStart + 8 + 8] &-= 1
            b[tableStart + 8 + 16] &+= 1
        }, "seek table gives")
        // Claim a different decompressed size for frame 2.
        expectError(try corrupt { $0[tableStart + 8 + 16 + 4] &+= 1 }, "seek table gives")
        // Frame count that does not fit.
        expectError(try corrupt { b in b[n - 9] = 0xFF; b[n - 8] = 0xFF }, "bad seek table")
    }

    func testAbsurdSizesAreRefused() throws {
        let path = dir + "/good.safetensors.zst"
        try write(sampleTensors(), path)
        let c = try Checkpoint(path: path)
        let n = try Data(contentsOf: URL(fileURLWithPath: path)).count
        let tableStart = n - (8 + c.frames.count * 8 + 9)
        // A frame declaring 4 GB of output: rejected before any allocation.
        expectError(try corrupt { b in for k in 0..<4 { b[tableStart + 8 + 12 + k] = 0xFF } }, "out of range")
        // A total over the cap.
        XCTAssertThrowsError(try Checkpoint(path: path, maxDecompressedBytes: 1000)) { XCTAssertTrue("\($0)".contains("limit"), "\($0)") }
    }

    func testBadSafetensorsHeaderInside() throws {
        // A well-formed frame stream whose header frame is not a safetensors header.
        let path = dir + "/badheader.safetensors.zst"
        var junk = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(9_000_000_000).littleEndian) { junk = Array($0) }
        junk += Array("{}".utf8)
        let frame = try junk.withUnsafeBytes { try Zstd.compressFrame($0, level: 3) }
        var file = frame
        file += CheckpointWriter.seekTable([(UInt32(frame.count), UInt32(junk.count))])
        try Data(file).write(to: URL(fileURLWithPath: path))
        expectError(path, "header")
    }

    /// Seeded mutations of a real checkpoint never crash the reader.
    func testMutatedCheckpointsNeverCrash() throws {
        let path = dir + "/fuzz-src.safetensors.zst"
        try write(sampleTensors(), path, chunk: 1024)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var rng = SplitMix64(seed: 2024)
        var rejected = 0
        for i in 0..<400 {
            var b = original
            switch i % 4 {
            case 0: for _ in 0..<(1 + Int(rng.next() % 4)) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1: b.removeLast(Int(rng.next() % UInt64(b.count)))
            case 2: let at = Int(rng.next() % UInt64(b.count)); b.insert(contentsOf: (0..<Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            default: let at = b.count - 1 - Int(rng.next() % 64); b[max(0, at)] ^= UInt8(1 << (rng.next() % 8))
            }
            let p = dir + "/fuzz.safetensors.zst"
            try Data(b).write(to: URL(fileURLWithPath: p))
            do { try Checkpoint(path: p).verify() } catch { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 300)
    }

    // MARK: atomic writes

    func testInterruptedWriteLeavesThePreviousFile() throws {
        let path = dir + "/atomic.safetensors.zst"
        try write(sampleTensors(), path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            let w = try AtomicFileWriter(path: path)
            try w.write(Array("half a file".utf8))
            // dropped without commit: as if the process died here
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("atomic.safetensors.zst.tmp") }
        XCTAssertEqual(leftovers, [])
        // A write that fails part-way (a duplicate tensor name) also leaves it intact.
        XCTAssertThrowsError(try write(sampleTensors() + sampleTensors(), path))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
    }

    // MARK: models

    func testModelsThroughCheckpointsAndBack() throws {
        for name in ["tiny-bert-mlm", "tiny-albert-mlm", "tiny-distilbert-mlm"] {
            let src = try HuggingFaceFolder.load(Fixtures.path(name))
            let ck = dir + "/\(name).safetensors.zst"
            try ModelStore.saveCheckpoint(src, to: ck)
            let back = try ModelStore.load(ck)
            XCTAssertEqual(back.model.config, src.model.config)
            XCTAssertEqual(back.model.parameters.toArray(), src.model.parameters.toArray(), name)
            let export = dir + "/\(name)-export"
            try HuggingFaceFolder.save(back.model, tokenizer: back.tokenizer, to: export)
            let again = try HuggingFaceFolder.load(export)
            XCTAssertEqual(again.model.parameters.toArray(), src.model.parameters.toArray(), name)
            let ref = try SafetensorsFile(path: Fixtures.path(name + "/reference.safetensors"))
            let out = try back.model.referenceOutputs(try TokenBatch.read(from: ref))
            for o in out { XCTAssertLessThanOrEqual(maxAbsDifference(o.floats, try ref.floats(o.name)), 1e-4) }
        }
    }
}

