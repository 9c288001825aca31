import Foundation
import DistilleryTensor

// A Distillery checkpoint, NAME.safetensors.zst, is a safetensors file compressed as a series of
// independent zstd frames, followed by a seek table in a skippable frame:
//
//   frame 0        the safetensors header (8-byte length + JSON)
//   frames 1…n     tensor data in file order; each frame holds bytes of one tensor only
//                  (large tensors span several frames of at most `chunkSize` bytes)
//   seek table     zstd's seekable format: a skippable frame (magic 0x184D2A5E) holding, per
//                  frame, u32 compressed size and u32 decompressed size, then the footer
//                  u32 frame count, u8 descriptor (0), u32 magic 0x8F92EAB1
//
// Every frame carries its content size and an XXH64 content checksum. Concatenated frames
// decompress to the concatenated content and decoders skip skippable frames, so
// `zstd -d NAME.safetensors.zst` yields the plain safetensors file. The seek table lets a
// reader decompress one tensor's frames alone.
//
// With the optional byte-shuffle filter (metadata "distillery.filter" = "byteshuffle"),
// the bytes of every F32/F16/BF16 frame are stored transposed (all first bytes, then all
// second bytes, …); `zstd -d` then no longer gives usable tensors, so it is never the default.

public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case notACheckpoint(path: String, reason: String)
    case truncated(path: String, reason: String)
    case seekTable(path: String, reason: String)
    case tooLarge(path: String, declared: Int, limit: Int)
    case frame(path: String, index: Int, reason: String)
    case filter(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notACheckpoint(p, r): return "\(p): not a Distillery checkpoint: \(r)"
        case let .truncated(p, r): return "\(p): truncated checkpoint: \(r)"
        case let .seekTable(p, r): return "\(p): bad seek table: \(r)"
        case let .tooLarge(p, d, l):
            return "\(p): declares \(d) decompressed bytes, over the \(l)-byte limit (a corrupt or hostile file; raise DISTILL_MAX_DECOMPRESSED if it is real)"
        case let .frame(p, i, r): return "\(p): frame \(i): \(r)"
        case let .filter(p, r): return "\(p): \(r)"
        }
    }
}

public enum CheckpointFormat {
    public static let seekableMagic: UInt32 = 0x8F92_EAB1
    public static let footerSize = 9
    /// Largest frame the writer makes, and the largest a reader accepts.
    public static let defaultChunkSize = 4 << 20
    public static let maxFrameSize = 64 << 20
    public static let defaultLevel = 3
    public static let formatVersion = "1"

    /// The most decompressed bytes a reader accepts (16 GiB, or $DISTILL_MAX_DECOMPRESSED).
    public static var maxDecompressedBytes: Int {
        if let s = ProcessInfo.processInfo.environment["DISTILL_MAX_DECOMPRESSED"], let n = Int(s), n > 0 { return n }
        return 16 << 30
    }

    /// Whether bytes of this dtype are byte-shuffled under the filter.
    static func shuffles(_ d: DType) -> Bool { d == .F32 || d == .F16 || d == .BF16 }
}

/// Byte (de)transposition for the shuffle filter: element size `w`, `count` bytes.
enum ByteShuffle {
    static func shuffle(_ src: UnsafeRawBufferPointer, width w: Int) -> [UInt8] {
        let n = src.count / w
        var out = [UInt8](repeating: 0, count: src.count)
        for i in 0..<n { for b in 0..<w { out[b * n + i] = src[i * w + b] } }
        return out
    }
    static func unshuffle(_ buf: UnsafeMutableRawBufferPointer, width w: Int) {
        let n = buf.count / w
        let copy = [UInt8](buf)
        for i in 0..<n { for b in 0..<w { buf[i * w + b] = copy[b * n + i] } }
    }
}

/// Sizes of a written checkpoint.
public struct CheckpointWriteStats: Sendable, Codable, Equatable {
    public let rawBytes: Int
    public let compressedBytes: Int
    public let frames: Int
    public var ratio: Double { compressedBytes > 0 ? Double(rawBytes) / Double(compressedBytes) : 0 }
}

public enum CheckpointWriter {
    /// Writes tensors as a checkpoint, atomically and deterministically (same tensors, metadata
    /// and level → same bytes). Frames are compressed on all cores.
    @discardableResult
    public static func write(_ tensors: [TensorPayload], metadata: [String: String], to path: String,
                             level: Int = CheckpointFormat.defaultLevel, chunkSize: Int = CheckpointFormat.defaultChunkSize,
                             byteShuffle: Bool = false) throws -> CheckpointWriteStats {
        precondition(chunkSize > 0 && chunkSize % 8 == 0 && chunkSize <= CheckpointFormat.maxFrameSize)
        var meta = metadata
        if byteShuffle { meta["distillery.filter"] = "byteshuffle" } else { meta.removeValue(forKey: "distillery.filter") }
        let layout = try SafetensorsLayout(tensors: tensors.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) }, metadata: meta)
        // Frame sources: the header, then each tensor's bytes in chunks.
        struct Piece { let bytes: UnsafeRawBufferPointer; let shuffleWidth: Int }
        var pieces: [Piece] = []
        let header = layout.header
        return try header.withUnsafeBytes { h -> CheckpointWriteStats in
            pieces.append(Piece(bytes: h, shuffleWidth: 0))
            for i in layout.order {
                let t = tensors[i]
                let w = byteShuffle && CheckpointFormat.shuffles(t.dtype) ? t.dtype.size : 0
                var at = 0
                while at < t.bytes.count {
                    let n = min(chunkSize, t.bytes.count - at)
                    pieces.append(Piece(bytes: UnsafeRawBufferPointer(rebasing: t.bytes[at..<(at + n)]), shuffleWidth: w))
                    at += n
                }
            }
            var frames = [[UInt8]](repeating: [], count: pieces.count)
            var failure: Error?
            let lock = NSLock()
            frames.withUnsafeMutableBufferPointer { out in
                let out = SendablePointer(out.baseAddress!)
                nonisolated(unsafe) let pieces = pieces
                Parallel.forEachChunk(pieces.count) { _, range in
                    for k in range {
                        do {
                            let p = pieces[k]
                            if p.shuffleWidth > 0 {
                                let s = ByteShuffle.shuffle(p.bytes, width: p.shuffleWidth)
                                out.p[k] = try s.withUnsafeBytes { try Zstd.compressFrame($0, level: level) }
                            } else {
                                out.p[k] = try Zstd.compressFrame(p.bytes, level: level)
                            }
                        } catch {
                            lock.lock(); failure = failure ?? error; lock.unlock()
                        }
                    }
                }
            }
            if let failure { throw failure }
            let w = try AtomicFileWriter(path: path)
            for f in frames { try w.write(f) }
            try w.write(seekTable(zip(frames, pieces).map { (UInt32($0.0.count), UInt32($0.1.bytes.count)) }))
            try w.commit()
            return CheckpointWriteStats(rawBytes: header.count + layout.dataSize, compressedBytes: w.bytesWritten, frames: frames.count)
        }
    }

    package static func seekTable(_ entries: [(UInt32, UInt32)]) -> [UInt8] {
        var b = [UInt8]()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
        u32(Zstd.skippableMagic)
        u32(UInt32(entries.count * 8 + CheckpointFormat.footerSize))
        for (c, d) in entries { u32(c); u32(d) }
        u32(UInt32(entries.count))
        b.append(0)
        u32(CheckpointFormat.seekableMagic)
        return b
    }
}
