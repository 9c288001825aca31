import Foundation
import DistilleryTensor

/// Prepared training data: sequences of token ids ([CLS] … [SEP]) in one file that training
/// memory-maps.
///
/// Layout (little-endian):
///   0    "DSTLTOKS"            magic
///   8    u32 version (1)       u32 header bytes (128)
///   16   u32 vocabulary size   u32 bytes per token (2 or 4)
///   24   u32 max sequence len  u32 reserved (0)
///   32   u64 vocabulary hash (FNV-1a 64 of the tokens joined by "\n")
///   40   u64 sequences         u64 tokens
///   56   u64 lines             u64 documents
///   72   u64 [UNK] tokens      u64 invalid UTF-8 sequences replaced
///   88   … zero up to 128
///   128  tokens × bytes per token
///   …    (sequences + 1) × u64 offsets: sequence i is tokens[offsets[i] ..< offsets[i+1]]
public struct TokenFileHeader: Sendable, Equatable, Codable {
    public static let magic = Array("DSTLTOKS".utf8)
    public static let size = 128
    public var vocabularySize: Int
    public var tokenBytes: Int
    public var maxSequenceLength: Int
    public var vocabularyHash: UInt64
    public var sequences: Int
    public var tokens: Int
    public var lines: Int
    public var documents: Int
    public var unknownTokens: Int
    public var invalidUTF8: Int

    func encoded() -> [UInt8] {
        var b = Self.magic
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { b.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
        u32(1); u32(Self.size); u32(vocabularySize); u32(tokenBytes); u32(maxSequenceLength); u32(0)
        u64(vocabularyHash); u64(UInt64(sequences)); u64(UInt64(tokens)); u64(UInt64(lines)); u64(UInt64(documents))
        u64(UInt64(unknownTokens)); u64(UInt64(invalidUTF8))
        b.append(contentsOf: [UInt8](repeating: 0, count: Self.size - b.count))
        return b
    }
}

public enum TokenFileError: Error, CustomStringConvertible, Equatable {
    case notATokenFile(path: String)
    case unsupportedVersion(path: String, version: Int)
    case corrupt(path: String, reason: String)
    case vocabularyMismatch(path: String, fileSize: Int, fileHash: UInt64, expectedSize: Int, expectedHash: UInt64)

    public var description: String {
        switch self {
        case let .notATokenFile(p): return "\(p): not a Distillery token file (run `distill prepare` to make one)"
        case let .unsupportedVersion(p, v): return "\(p): token file version \(v) is not supported"
        case let .corrupt(p, r): return "\(p): corrupt token file: \(r)"
        case let .vocabularyMismatch(p, fs, fh, es, eh):
            return "\(p): prepared with another vocabulary (\(fs) tokens, hash \(String(fh, radix: 16))); the model's has \(es) tokens, hash \(String(eh, radix: 16)). Prepare the data again with the model's tokenizer."
        }
    }
}

/// A memory-mapped token file, validated on open.
public final class TokenDataset: @unchecked Sendable {
    public let path: String
    public let header: TokenFileHeader
    private let file: MappedFile
    private let tokenBase: UnsafeRawPointer
    private let offsets: UnsafeRawPointer

    public var count: Int { header.sequences }

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let b = file.bytes
        guard b.count >= TokenFileHeader.size, Array(b[0..<8]) == TokenFileHeader.magic else {
            throw TokenFileError.notATokenFile(path: path)
        }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        let version = u32(8)
        guard version == 1 else { throw TokenFileError.unsupportedVersion(path: path, version: version) }
        guard u32(12) == TokenFileHeader.size else { throw TokenFileError.corrupt(path: path, reason: "header size \(u32(12))") }
        let tokenBytes = u32(20)
        guard tokenBytes == 2 || tokenBytes == 4 else { throw TokenFileError.corrupt(path: path, reason: "\(tokenBytes) bytes per token") }
        let cap = UInt64(Int.max / 16)
        guard u64(40) < cap, u64(48) < cap else { throw TokenFileError.corrupt(path: path, reason: "absurd counts") }
        let h = TokenFileHeader(vocabularySize: u32(16), tokenBytes: tokenBytes, maxSequenceLength: u32(24),
                                vocabularyHash: u64(32), sequences: Int(u64(40)), tokens: Int(u64(48)),
                                lines: Int(min(u64(56), cap)), documents: Int(min(u64(64), cap)),
                                unknownTokens: Int(min(u64(72), cap)), invalidUTF8: Int(min(u64(80), cap)))
        let expected = TokenFileHeader.size + h.tokens * tokenBytes + (h.sequences + 1) * 8
        guard expected == b.count else {
            throw TokenFileError.corrupt(path: path, reason: "\(b.count) bytes, the header describes \(expected)")
        }
        if tokenBytes == 2 && h.vocabularySize > 65536 {
            throw TokenFileError.corrupt(path: path, reason: "vocabulary of \(h.vocabularySize) does not fit 2-byte tokens")
        }
        header = h
        tokenBase = b.baseAddress! + TokenFileHeader.size
        // With 2-byte tokens the offsets may be unaligned: they are read with loadUnaligned.
        offsets = UnsafeRawPointer(b.baseAddress! + TokenFileHeader.size + h.tokens * tokenBytes)
        // Validate every offset and token once: training then indexes without checks.
        var previous = 0
        for i in 0...h.sequences {
            let o = Int(clamping: offset(i))
            if i == 0 && o != 0 { throw TokenFileError.corrupt(path: path, reason: "first offset is \(o)") }
            if o < previous || o > h.tokens { throw TokenFileError.corrupt(path: path, reason: "offset \(i) = \(o) out of order or past \(h.tokens) tokens") }
            if o - previous > h.maxSequenceLength { throw TokenFileError.corrupt(path: path, reason: "sequence \(i - 1) longer than \(h.maxSequenceLength)") }
            previous = o
        }
        if previous != h.tokens { throw TokenFileError.corrupt(path: path, reason: "offsets end at \(previous), not \(h.tokens)") }
        for i in 0..<h.tokens where token(i) >= h.vocabularySize {
            throw TokenFileError.corrupt(path: path, reason: "token \(i) = \(token(i)) outside the \(h.vocabularySize)-token vocabulary")
        }
    }

    @inline(__always) private func offset(_ i: Int) -> UInt64 {
        UInt64(littleEndian: offsets.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
    }

    @inline(__always) func token(_ i: Int) -> Int {
        header.tokenBytes == 2
            ? Int(UInt16(littleEndian: tokenBase.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            : Int(UInt32(littleEndian: tokenBase.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
    }

    public func length(_ i: Int) -> Int { Int(offset(i + 1) - offset(i)) }

    /// Copies sequence i's ids into `out` (which must hold `length(i)` ids).
    public func copy(_ i: Int, into out: UnsafeMutablePointer<Int32>) {
        let start = Int(offset(i)), n = length(i)
        for k in 0..<n { out[k] = Int32(token(start + k)) }
    }

    public func sequence(_ i: Int) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: length(i)) { buf, n in copy(i, into: buf.baseAddress!); n = length(i) }
    }

    /// How often each vocabulary id occurs (for frequency-smoothed masking).
    public func tokenCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: header.vocabularySize)
        for i in 0..<header.tokens { counts[token(i)] += 1 }
        return counts
    }

    /// Fails unless the data was prepared with this vocabulary.
    public func checkVocabulary(_ v: Vocabulary) throws {
        if v.count != header.vocabularySize || v.hash != header.vocabularyHash {
            throw TokenFileError.vocabularyMismatch(path: path, fileSize: header.vocabularySize, fileHash: header.vocabularyHash,
                                                    expectedSize: v.count, expectedHash: v.hash)
        }
    }
}
