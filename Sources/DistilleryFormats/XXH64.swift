/// XXH64 (Yann Collet's xxHash, 64-bit), the hash zstd puts in its frames' content checksums;
/// here it fingerprints what a teacher cache was built from (weights, prepared data) and guards
/// the cache's JSON header. Streaming, so a file can be hashed in pieces.
public struct XXH64: Sendable {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87, p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9, p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var v1, v2, v3, v4: UInt64
    private let seed: UInt64
    private var total = 0
    /// Bytes not yet consumed (fewer than 32).
    private var tail: [UInt8] = []

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ Self.p1 &+ Self.p2; v2 = seed &+ Self.p2; v3 = seed; v4 = seed &- Self.p1
    }

    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inline(__always) static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        total += bytes.count
        var p = 0
        if !tail.isEmpty {
            let take = min(32 - tail.count, bytes.count)
            tail.append(contentsOf: bytes[0..<take])
            p = take
            if tail.count < 32 { return }
            tail.withUnsafeBytes { stripe($0.baseAddress!) }
            tail.removeAll(keepingCapacity: true)
        }
        while p + 32 <= bytes.count {
            stripe(bytes.baseAddress! + p)
            p += 32
        }
        if p < bytes.count { tail.append(contentsOf: bytes[p...]) }
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    @inline(__always) private mutating func stripe(_ s: UnsafeRawPointer) {
        v1 = Self.round(v1, UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
        v2 = Self.round(v2, UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        v3 = Self.round(v3, UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
        v4 = Self.round(v4, UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
    }

    public func digest() -> UInt64 {
        var h: UInt64
        if total >= 32 {
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = Self.merge(h, v1); h = Self.merge(h, v2); h = Self.merge(h, v3); h = Self.merge(h, v4)
        } else {
            h = seed &+ Self.p5
        }
        h &+= UInt64(total)
        tail.withUnsafeBytes { t in
            var i = 0
            while i + 8 <= t.count {
                h ^= Self.round(0, UInt64(littleEndian: t.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                h = rotl(h, 27) &* Self.p1 &+ Self.p4
                i += 8
            }
            if i + 4 <= t.count {
                h ^= UInt64(UInt32(littleEndian: t.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* Self.p1
                h = rotl(h, 23) &* Self.p2 &+ Self.p3
                i += 4
            }
            while i < t.count {
                h ^= UInt64(t[i]) &* Self.p5
                h = rotl(h, 11) &* Self.p1
                i += 1
            }
        }
        h ^= h >> 33; h = h &* Self.p2
        h ^= h >> 29; h = h &* Self.p3
        h ^= h >> 32
        return h
    }

    /// The hash of one buffer.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h = XXH64(seed: seed)
        h.update(bytes)
        return h.digest()
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 { bytes.withUnsafeBytes { hash($0, seed: seed) } }
}

@inline(__always) private func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
