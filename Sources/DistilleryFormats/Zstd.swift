import CZstd

public enum ZstdError: Error, CustomStringConvertible, Equatable {
    case compression(String)
    case decompression(frame: Int, reason: String)

    public var description: String {
        switch self {
        case let .compression(r): return "zstd compression failed: \(r)"
        case let .decompression(f, r): return "zstd frame \(f): \(r)"
        }
    }
}

/// Thin wrappers over libzstd's one-shot frame API.
package enum Zstd {
    static let frameMagic: UInt32 = 0xFD2F_B528
    static let skippableMagic: UInt32 = 0x184D_2A5E

    static func errorName(_ code: Int) -> String { String(cString: ZSTD_getErrorName(code)) }

    /// One frame holding `src`, with its content size and XXH64 content checksum in the frame.
    package static func compressFrame(_ src: UnsafeRawBufferPointer, level: Int) throws -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw ZstdError.compression("cannot allocate a context") }
        defer { ZSTD_freeCCtx(cctx) }
        for (p, v) in [(ZSTD_c_compressionLevel, Int32(level)), (ZSTD_c_checksumFlag, 1), (ZSTD_c_contentSizeFlag, 1)] {
            let r = ZSTD_CCtx_setParameter(cctx, p, v)
            if ZSTD_isError(r) != 0 { throw ZstdError.compression(errorName(r)) }
        }
        let bound = ZSTD_compressBound(src.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { dst in
            ZSTD_compress2(cctx, dst.baseAddress, bound, src.baseAddress, src.count)
        }
        if ZSTD_isError(n) != 0 { throw ZstdError.compression(errorName(n)) }
        out.removeLast(bound - n)
        return out
    }

    /// Checks that the bytes at the start of `src` (which runs on to the end of the frames) are
    /// one checksummed frame of `compressedSize` bytes declaring `decompressedSize` bytes, as
    /// the seek table says.
    static func checkFrame(_ src: UnsafeRawBufferPointer, compressedSize: Int, decompressedSize: Int, index: Int) throws {
        guard src.count >= 6, UInt32(littleEndian: src.loadUnaligned(as: UInt32.self)) == frameMagic else {
            throw ZstdError.decompression(frame: index, reason: "does not start with the zstd frame magic")
        }
        // Frame_Header_Descriptor bit 2: Content_Checksum_flag.
        if src[4] & 0x04 == 0 { throw ZstdError.decompression(frame: index, reason: "has no content checksum") }
        let frameSize = ZSTD_findFrameCompressedSize(src.baseAddress, src.count)
        if ZSTD_isError(frameSize) != 0 { throw ZstdError.decompression(frame: index, reason: errorName(frameSize)) }
        if frameSize != compressedSize {
            throw ZstdError.decompression(frame: index, reason: "the seek table gives \(compressedSize) compressed bytes but the frame is \(frameSize)")
        }
        let content = ZSTD_getFrameContentSize(src.baseAddress, src.count)
        if content != UInt64(decompressedSize) {
            let stated = content >= UInt64.max - 1 ? "no size" : "\(content) bytes"
            throw ZstdError.decompression(frame: index, reason: "the seek table gives \(decompressedSize) decompressed bytes but the frame declares \(stated)")
        }
    }

    /// Decompresses one frame (already checked by `checkFrame`) of exactly `dst.count` bytes,
    /// verifying its checksum.
    static func decompressFrame(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, index: Int) throws {
        guard let dctx = ZSTD_createDCtx() else { throw ZstdError.decompression(frame: index, reason: "cannot allocate a context") }
        defer { ZSTD_freeDCtx(dctx) }
        let n = ZSTD_decompressDCtx(dctx, dst.baseAddress, dst.count, src.baseAddress, src.count)
        if ZSTD_isError(n) != 0 { throw ZstdError.decompression(frame: index, reason: errorName(n)) }
        if n != dst.count { throw ZstdError.decompression(frame: index, reason: "decompressed to \(n) bytes, expected \(dst.count)") }
    }
}
