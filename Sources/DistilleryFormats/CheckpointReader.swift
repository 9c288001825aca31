import Foundation
import DistilleryTensor

/// A checkpoint opened for reading: the seek table and the safetensors header are read and
/// validated on open; tensor data is decompressed on demand, one tensor's frames at a time.
public final class Checkpoint: TensorSource, @unchecked Sendable {
    public struct Frame: Sendable, Equatable {
        public let compressedOffset: Int
        public let compressedSize: Int
        public let offset: Int       // in the decompressed safetensors file
        public let size: Int
    }

    public let path: String
    public let frames: [Frame]
    public let header: SafetensorsHeader
    public let byteShuffled: Bool
    /// Size of the decompressed safetensors file.
    public let decompressedSize: Int
    public var fileSize: Int { file.size }
    private let file: MappedFile

    public var tensors: [TensorInfo] { header.tensors }
    public var metadata: [String: String] { header.metadata }
    public func info(_ name: String) -> TensorInfo? { header.info(name) }

    public init(path: String, maxDecompressedBytes: Int = CheckpointFormat.maxDecompressedBytes) throws {
        self.path = path
        file = try MappedFile(path: path)
        let b = file.bytes
        let n = b.count
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        guard n >= 4 else { throw CheckpointError.notACheckpoint(path: path, reason: "\(n) bytes") }
        guard UInt32(u32(0)) == Zstd.frameMagic else {
            throw CheckpointError.notACheckpoint(path: path, reason: "does not start with a zstd frame")
        }
        guard n >= 8 + CheckpointFormat.footerSize, UInt32(u32(n - 4)) == CheckpointFormat.seekableMagic else {
            throw CheckpointError.truncated(path: path, reason: "no seek table at the end (cut short, or compressed by another tool)")
        }
        let count = u32(n - 9)
        guard b[n - 5] == 0 else { throw CheckpointError.seekTable(path: path, reason: "unsupported descriptor \(b[n - 5])") }
        let tableSize = 8 + count * 8 + CheckpointFormat.footerSize
        guard count >= 1, count <= (n - CheckpointFormat.footerSize) / 8, tableSize <= n else {
            throw CheckpointError.seekTable(path: path, reason: "\(count) frames cannot fit in \(n) bytes")
        }
        let tableStart = n - tableSize
        guard UInt32(u32(tableStart)) == Zstd.skippableMagic, u32(tableStart + 4) == tableSize - 8 else {
            throw CheckpointError.seekTable(path: path, reason: "the skippable frame around it is malformed")
        }
        var frames: [Frame] = []
        frames.reserveCapacity(count)
        var c = 0, d = 0
        for i in 0..<count {
            let cs = u32(tableStart + 8 + 8 * i), ds = u32(tableStart + 12 + 8 * i)
            guard cs > 0, ds <= CheckpointFormat.maxFrameSize || (i == 0 && ds <= SafetensorsHeader.maxHeaderSize + 8) else {
                throw CheckpointError.seekTable(path: path, reason: "frame \(i): \(cs) compressed / \(ds) decompressed bytes is out of range")
            }
            frames.append(Frame(compressedOffset: c, compressedSize: cs, offset: d, size: ds))
            c += cs; d += ds
            if d > maxDecompressedBytes { throw CheckpointError.tooLarge(path: path, declared: d, limit: maxDecompressedBytes) }
        }
        guard c == tableStart else {
            throw CheckpointError.seekTable(path: path, reason: "frames add up to \(c) bytes but the data before the table is \(tableStart)")
        }
        self.frames = frames
        decompressedSize = d
        // Every frame header must agree with the seek table (no decompression needed).
        for (i, f) in frames.enumerated() {
            do {
                try Zstd.checkFrame(UnsafeRawBufferPointer(rebasing: b[f.compressedOffset..<tableStart]),
                                    compressedSize: f.compressedSize, decompressedSize: f.size, index: i)
            } catch let e as ZstdError {
                throw CheckpointError.frame(path: path, index: i, reason: "\(e)")
            }
        }

        // Frame 0 is the safetensors header.
        let f0 = frames[0]
        var head = [UInt8](repeating: 0, count: f0.size)
        try head.withUnsafeMutableBytes { dst in
            do { try Zstd.decompressFrame(UnsafeRawBufferPointer(rebasing: b[0..<f0.compressedSize]), into: dst, index: 0) } catch let e as ZstdError {
                throw CheckpointError.frame(path: path, index: 0, reason: "\(e)")
            }
        }
        let hl = try head.withUnsafeBytes { try SafetensorsHeader.headerLength($0, fileSize: d, path: path) }
        guard hl + 8 == f0.size else {
            throw CheckpointError.seekTable(path: path, reason: "frame 0 holds \(f0.size) bytes, the safetensors header is \(hl + 8)")
        }
        header = try head.withUnsafeBytes { try SafetensorsHeader(json: UnsafeRawBufferPointer(rebasing: $0[8...]), fileSize: d, path: path) }
        byteShuffled = header.metadata["distillery.filter"] == "byteshuffle"
        if let f = header.metadata["distillery.filter"], f != "byteshuffle" {
            throw CheckpointError.filter(path: path, reason: "unknown filter '\(f)'")
        }
        if byteShuffled {
            // Shuffled frames must each lie inside one tensor, on element boundaries.
            for (i, fr) in frames.enumerated().dropFirst() {
                let at = fr.offset - header.dataStart
                guard let t = header.tensors.first(where: { $0.offset <= at && at + fr.size <= $0.offset + $0.byteCount }),
                      (at - t.offset) % t.dtype.size == 0, fr.size % t.dtype.size == 0 else {
                    throw CheckpointError.filter(path: path, reason: "frame \(i) is not aligned to one tensor's elements")
                }
            }
        }
    }

    /// Decompresses the frames covering decompressed bytes [start, end) into `out`.
    private func decompress(range start: Int, _ end: Int, into out: UnsafeMutableRawPointer) throws {
        let b = file.bytes
        let first = frames.firstIndex { $0.offset + $0.size > start } ?? frames.count
        var covering: [Int] = []
        var i = first
        while i < frames.count && frames[i].offset < end { covering.append(i); i += 1 }
        var failure: Error?
        let lock = NSLock()
        let outP = SendablePointer(out.assumingMemoryBound(to: UInt8.self))
        nonisolated(unsafe) let frames = self.frames
        let shuffled = byteShuffled, header = self.header, path = self.path
        Parallel.forEachChunk(covering.count) { _, range in
            for k in range {
                let idx = covering[k], f = frames[idx]
                do {
                    let src = UnsafeRawBufferPointer(rebasing: b[f.compressedOffset..<(f.compressedOffset + f.compressedSize)])
                    func unshuffle(_ dst: UnsafeMutableRawBufferPointer) {
                        let at = f.offset - header.dataStart
                        if shuffled && idx > 0, let t = header.tensors.first(where: { $0.offset <= at && at < $0.offset + $0.byteCount }),
                           CheckpointFormat.shuffles(t.dtype) {
                            ByteShuffle.unshuffle(dst, width: t.dtype.size)
                        }
                    }
                    if f.offset >= start && f.offset + f.size <= end {
                        // The whole frame is wanted: decompress in place.
                        let dst = UnsafeMutableRawBufferPointer(start: outP.p + (f.offset - start), count: f.size)
                        try Zstd.decompressFrame(src, into: dst, index: idx)
                        unshuffle(dst)
                    } else {
                        var tmp = [UInt8](repeating: 0, count: f.size)
                        try tmp.withUnsafeMutableBytes { dst in
                            try Zstd.decompressFrame(src, into: dst, index: idx)
                            unshuffle(dst)
                        }
                        let lo = max(start, f.offset), hi = min(end, f.offset + f.size)
                        tmp.withUnsafeBytes { t in
                            (outP.p + (lo - start)).update(from: t.baseAddress!.assumingMemoryBound(to: UInt8.self) + (lo - f.offset), count: hi - lo)
                        }
                    }
                } catch let e as ZstdError {
                    lock.lock(); failure = failure ?? CheckpointError.frame(path: path, index: idx, reason: "\(e)"); lock.unlock()
                } catch {
                    lock.lock(); failure = failure ?? error; lock.unlock()
                }
            }
        }
        if let failure { throw failure }
    }

    public func withBytes<R>(_ info: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let buf = AlignedBuffer<UInt8>(count: info.byteCount)
        let start = header.dataStart + info.offset
        try decompress(range: start, start + info.byteCount, into: buf.base)
        return try body(UnsafeRawBufferPointer(start: buf.base, count: info.byteCount))
    }

    /// The whole decompressed safetensors file (what `zstd -d` gives, unshuffled).
    public func decompressAll() throws -> AlignedBuffer<UInt8> {
        try MemoryBudget.check(decompressedSize, for: "\(path): holding the decompressed checkpoint")
        let buf = AlignedBuffer<UInt8>(count: decompressedSize)
        try decompress(range: 0, decompressedSize, into: buf.base)
        return buf
    }

    /// Decompresses every frame, verifying every checksum, a few frames at a time: memory stays
    /// at a few frames whatever the file declares.
    public func verify() throws {
        // Room for two of the largest frames (checked on open: at most 64 MiB, the header's 100 MB).
        let window = 2 * max(1, frames.map(\.size).max() ?? 1)
        let buf = AlignedBuffer<UInt8>(count: min(window, max(1, decompressedSize)))
        var start = 0
        while start < decompressedSize {
            // Whole frames up to the window (one always fits).
            var end = start
            for f in frames where f.offset >= start && f.offset + f.size <= start + buf.count { end = f.offset + f.size }
            if end == start { end = min(decompressedSize, start + buf.count) }
            try decompress(range: start, end, into: buf.base)
            start = end
        }
    }

    /// Compressed bytes spent on a tensor (its frames; frames never mix tensors).
    public func compressedSize(of info: TensorInfo) -> Int {
        let lo = header.dataStart + info.offset, hi = lo + info.byteCount
        return frames.reduce(0) { acc, f in
            let a = max(lo, f.offset), b = min(hi, f.offset + f.size)
            return b > a ? acc + f.compressedSize * (b - a) / max(1, f.size) : acc
        }
    }
}

/// An in-memory safetensors image (e.g. a decompressed checkpoint) as a tensor source.
public final class SafetensorsImage: TensorSource, @unchecked Sendable {
    public let path: String
    public let header: SafetensorsHeader
    private let storage: AlignedBuffer<UInt8>

    public init(_ storage: AlignedBuffer<UInt8>, path: String) throws {
        self.path = path
        self.storage = storage
        let raw = UnsafeRawBufferPointer(start: storage.base, count: storage.count)
        let n = try SafetensorsHeader.headerLength(raw, fileSize: raw.count, path: path)
        header = try SafetensorsHeader(json: UnsafeRawBufferPointer(rebasing: raw[8..<(8 + n)]), fileSize: raw.count, path: path)
    }

    public var tensors: [TensorInfo] { header.tensors }
    public var metadata: [String: String] { header.metadata }
    public func info(_ name: String) -> TensorInfo? { header.info(name) }
    public func withBytes<R>(_ info: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try body(UnsafeRawBufferPointer(start: storage.base + header.dataStart + info.offset, count: info.byteCount))
    }
}
