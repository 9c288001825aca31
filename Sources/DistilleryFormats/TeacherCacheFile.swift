import Foundation
import DistilleryTensor

// A teacher cache, NAME.dtc: what the distillation losses read from the teacher, computed once
// per training sequence, so that later epochs need not run the teacher.
//
//   0       "DSTLTCHE"                        magic
//   8       u32 version (3)                   u32 H, the bytes of the header region
//   16      u64 XXH64 of the header region
//   24      header region: UTF-8 JSON (below), padded with spaces to H bytes
//   24 + H  frames: one zstd frame per sequence (content size and XXH64 checksum in each)
//   I       the index: one zstd frame (checksummed) of 24 bytes per sequence, in sequence order:
//           u64 offset of its frame, u32 compressed bytes, u32 tokens L, u32 soft-target rows R,
//           u32 reserved (0); the file ends where the index does.
//
// The JSON header says what the cache was built from and what it holds: "version"; "teacher"
// (a fingerprint of the teacher's configuration, weights and precision); "data" (the prepared
// file's vocabulary hash, sequence and token counts and content hash); "vocab_size",
// "max_seq_len", "sequences", "tokens"; "masking" (the static-masking policy and seed);
// "top_k", "soft_target_rows" ("all" real tokens or only "masked" ones), "id_bytes" (2 or 4),
// "tail_temperature" (the T at which the tail logits give the tail's exact mass);
// "tail_samples" (m: draws from each row's tail, 0 for an even tail);
// "teacher_width"; "precision" of the stored hidden states ("bf16" or "fp32");
// "last_hidden", "hidden_layers", "qkv_layers" (what the hidden-state losses and layer
// matches read); "index_offset", "index_bytes"; and, not compared, "teacher_path" and
// "data_path".
//
// A sequence's frame decompresses to its record (little-endian, each section padded to 4 bytes):
//   ids        L × i32            the input ids as masked once for this sequence
//   labels     L × i32            MLM targets (−100: not a target)
//   top logits R × k × f32        the teacher's k largest logits of each soft-target row
//                                 (rows in position order, logits in descending order)
//   tail       R × f32            per row, the logit z̄ that the other V − k tokens stand in
//                                 for: (V − k)·exp(z̄/T) is their softmax mass (numerator) at
//                                 T = tail_temperature; −∞ when k = V or the tail holds
//                                 under 1e-6 of the mass
//   tail plogp R × f32            (m > 0) per row, Σ p log p over the tail at T
//   top ids    R × k × u16/u32    their token ids
//   draws      R × m × u16/u32    (m > 0) per row, m draws from the tail (p_i / Σ_tail p,
//                                 systematic, likely tokens first), which carry the tail's
//                                 mass in the loss instead of z̄'s even spread
//   last       L × Ht             the teacher's last hidden state (bf16 or f32)
//   hidden     per hidden layer:  L × Ht
//   qkv        per qkv layer:     L × 3Ht (q | k | v of the layer's self-attention)

public enum TeacherCacheFileError: Error, CustomStringConvertible, Equatable {
    case notACache(path: String, reason: String)
    case unsupportedVersion(path: String, version: Int)
    case header(path: String, reason: String)
    case index(path: String, reason: String)
    case sequence(path: String, index: Int, reason: String)

    public var description: String {
        switch self {
        case let .notACache(p, r): return "\(p): not a Distillery teacher cache: \(r)"
        case let .unsupportedVersion(p, v): return "\(p): teacher cache version \(v) is not supported (this build reads version \(TeacherCacheHeader.version)); build it again with distill cache-teacher --overwrite"
        case let .header(p, r): return "\(p): damaged teacher cache header: \(r); build it again with distill cache-teacher --overwrite"
        case let .index(p, r): return "\(p): damaged teacher cache index: \(r); build it again with distill cache-teacher --overwrite"
        case let .sequence(p, i, r): return "\(p): sequence \(i) of the teacher cache is damaged: \(r); build it again with distill cache-teacher --overwrite"
        }
    }
}

/// The JSON header of a teacher cache.
public struct TeacherCacheHeader: Sendable, Equatable {
    public static let version = 3
    public static let magic = Array("DSTLTCHE".utf8)
    public static let prefixSize = 24
    /// The header region the writer reserves (and the most a reader accepts, 1 MiB).
    public static let regionSize = 16384, maxRegionSize = 1 << 20
    public static let indexEntrySize = 24

    public var teacher: String
    public var data: String
    public var vocabularySize: Int
    public var maxSequenceLength: Int
    public var sequences: Int
    public var tokens: Int
    public var masking: String
    public var topK: Int
    /// "all": every real token is a soft-target row; "masked": only the MLM targets.
    public var softTargetRows: String
    public var idBytes: Int
    /// The temperature at which the stored tail logits give the tail's mass exactly.
    public var tailTemperature: Double
    /// Draws from each row's tail that carry its mass (0: spread evenly by the tail logit).
    public var tailSamples: Int
    public var teacherWidth: Int
    /// Of the hidden states and q|k|v: "bf16" or "fp32".
    public var precision: String
    public var lastHidden: Bool
    public var hiddenLayers: [Int]
    public var qkvLayers: [Int]
    public var indexOffset = 0
    public var indexBytes = 0
    /// Where it came from (shown, not compared).
    public var teacherPath = ""
    public var dataPath = ""

    public init(teacher: String, data: String, vocabularySize: Int, maxSequenceLength: Int, sequences: Int, tokens: Int, masking: String,
                topK: Int, softTargetRows: String, tailTemperature: Double, teacherWidth: Int, precision: String, lastHidden: Bool,
                hiddenLayers: [Int], qkvLayers: [Int], tailSamples: Int = 0) {
        self.tailTemperature = tailTemperature
        // Draws only where there is a tail: with soft targets, and k below the vocabulary.
        self.tailSamples = topK > 0 && topK < vocabularySize ? tailSamples : 0
        self.teacher = teacher; self.data = data; self.vocabularySize = vocabularySize; self.maxSequenceLength = maxSequenceLength
        self.sequences = sequences; self.tokens = tokens; self.masking = masking; self.topK = topK; self.softTargetRows = softTargetRows
        idBytes = vocabularySize <= 65536 ? 2 : 4
        self.teacherWidth = teacherWidth; self.precision = precision; self.lastHidden = lastHidden
        self.hiddenLayers = hiddenLayers; self.qkvLayers = qkvLayers
    }

    /// Bytes per stored hidden value.
    public var elementBytes: Int { precision == "bf16" ? 2 : 4 }

    /// What a cache must agree on to serve a run, with the values as text: compared field by
    /// field, so a refusal names what differs.
    public var identity: [(field: String, value: String)] {
        [("teacher", teacher), ("data", data), ("vocab_size", "\(vocabularySize)"), ("max_seq_len", "\(maxSequenceLength)"),
         ("sequences", "\(sequences)"), ("tokens", "\(tokens)"), ("masking", masking), ("top_k", "\(topK)"),
         ("soft_target_rows", softTargetRows), ("tail_temperature", topK > 0 ? "\(tailTemperature)" : "unused"), ("tail_samples", "\(tailSamples)"), ("teacher_width", "\(teacherWidth)"), ("precision", precision),
         ("last_hidden", "\(lastHidden)"), ("hidden_layers", "\(hiddenLayers)"), ("qkv_layers", "\(qkvLayers)")]
    }

    /// The fields where `self` (a file's header) differs from `expected`: (field, file, expected).
    public func differences(from expected: TeacherCacheHeader) -> [(field: String, found: String, expected: String)] {
        zip(identity, expected.identity).filter { $0.0.value != $0.1.value }.map { ($0.0.field, $0.0.value, $0.1.value) }
    }

    var json: HeaderJSON {
        func u(_ v: Int) -> HeaderJSON { .unsigned(UInt64(v)) }
        return .object([
            ("version", u(Self.version)), ("teacher", .string(teacher)), ("data", .string(data)), ("vocab_size", u(vocabularySize)),
            ("max_seq_len", u(maxSequenceLength)), ("sequences", u(sequences)), ("tokens", u(tokens)), ("masking", .string(masking)),
            ("top_k", u(topK)), ("soft_target_rows", .string(softTargetRows)), ("id_bytes", u(idBytes)),
            ("tail_temperature", .number("\(tailTemperature)")), ("tail_samples", u(tailSamples)), ("teacher_width", u(teacherWidth)),
            ("precision", .string(precision)), ("last_hidden", .bool(lastHidden)), ("hidden_layers", .array(hiddenLayers.map(u))),
            ("qkv_layers", .array(qkvLayers.map(u))), ("index_offset", u(indexOffset)), ("index_bytes", u(indexBytes)),
            ("teacher_path", .string(teacherPath)), ("data_path", .string(dataPath)),
        ])
    }

    /// Reads and checks a header's JSON: every field present with its type, values in range.
    init(json j: HeaderJSON, path: String) throws {
        func fail(_ r: String) -> TeacherCacheFileError { .header(path: path, reason: r) }
        guard let members = j.objectValue else { throw fail("the JSON is not an object") }
        let known = Set(["version", "teacher", "data", "vocab_size", "max_seq_len", "sequences", "tokens", "masking", "top_k",
                         "soft_target_rows", "id_bytes", "tail_temperature", "tail_samples", "teacher_width", "precision", "last_hidden", "hidden_layers", "qkv_layers",
                         "index_offset", "index_bytes", "teacher_path", "data_path"])
        if let extra = members.first(where: { !known.contains($0.0) }) { throw fail("unknown field '\(extra.0)'") }
        func int(_ k: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = j[k]?.unsignedValue else { throw fail("'\(k)' is missing or not a non-negative integer") }
            guard v <= UInt64(range.upperBound), range.contains(Int(v)) else { throw fail("'\(k)' = \(v) is outside \(range.lowerBound)…\(range.upperBound)") }
            return Int(v)
        }
        func string(_ k: String) throws -> String {
            guard let v = j[k]?.stringValue else { throw fail("'\(k)' is missing or not a string") }
            return v
        }
        func layers(_ k: String) throws -> [Int] {
            guard let a = j[k]?.arrayValue, a.count <= 4096 else { throw fail("'\(k)' is missing or not a list of layers") }
            let v = try a.map { e -> Int in
                guard let u = e.unsignedValue, u <= 4096 else { throw fail("'\(k)' holds something other than a layer number") }
                return Int(u)
            }
            guard v == v.sorted(), Set(v).count == v.count else { throw fail("'\(k)' is not in increasing order") }
            return v
        }
        let version = try int("version", 0...Int(UInt32.max))
        guard version == Self.version else { throw TeacherCacheFileError.unsupportedVersion(path: path, version: version) }
        teacher = try string("teacher"); data = try string("data"); masking = try string("masking")
        vocabularySize = try int("vocab_size", 1...(1 << 24))
        maxSequenceLength = try int("max_seq_len", 1...65536)
        sequences = try int("sequences", 0...(1 << 40))
        tokens = try int("tokens", 0...(1 << 50))
        topK = try int("top_k", 0...vocabularySize)
        softTargetRows = try string("soft_target_rows")
        guard ["all", "masked"].contains(softTargetRows) else { throw fail("'soft_target_rows' is \"\(softTargetRows)\", not \"all\" or \"masked\"") }
        guard let tt = j["tail_temperature"]?.doubleValue, tt.isFinite, tt > 0, tt <= 1000 else {
            throw fail("'tail_temperature' is missing or not a number above 0 and at most 1000")
        }
        tailTemperature = tt
        tailSamples = try int("tail_samples", 0...4096)
        guard topK > 0 || tailSamples == 0 else { throw fail("'tail_samples' = \(tailSamples) without soft targets (top_k 0)") }
        idBytes = try int("id_bytes", 2...4)
        guard idBytes == (vocabularySize <= 65536 ? 2 : 4) else { throw fail("'id_bytes' = \(idBytes) does not suit a vocabulary of \(vocabularySize)") }
        teacherWidth = try int("teacher_width", 1...65536)
        precision = try string("precision")
        guard ["bf16", "fp32"].contains(precision) else { throw fail("'precision' is \"\(precision)\", not \"bf16\" or \"fp32\"") }
        guard case .bool(let last)? = j["last_hidden"] else { throw fail("'last_hidden' is missing or not true/false") }
        lastHidden = last
        hiddenLayers = try layers("hidden_layers")
        qkvLayers = try layers("qkv_layers")
        indexOffset = try int("index_offset", 0...Int(Int64.max / 2))
        indexBytes = try int("index_bytes", 0...Int(Int32.max))
        teacherPath = try string("teacher_path"); dataPath = try string("data_path")
    }
}

/// Where each section of a sequence's record lies, for L tokens and R soft-target rows.
public struct TeacherCacheRecordLayout: Sendable, Equatable {
    public let tokens: Int, rows: Int
    public let ids: Int, labels: Int, topLogits: Int, tail: Int, tailPlogp: Int, topIds: Int, draws: Int, last: Int?
    public let hidden: [Int: Int]   // layer → offset
    public let qkv: [Int: Int]      // layer → offset
    public let size: Int

    /// nil when the sizes overflow (a hostile index).
    public init?(_ h: TeacherCacheHeader, tokens L: Int, rows R: Int) {
        func pad(_ n: Int) -> Int { (n + 3) & ~3 }
        let hiddenBytes = L.multipliedReportingOverflow(by: h.teacherWidth * h.elementBytes)
        let rk = R.multipliedReportingOverflow(by: h.topK), rm = R.multipliedReportingOverflow(by: h.tailSamples)
        guard L >= 0, R >= 0, L <= 1 << 20, !hiddenBytes.overflow, !rk.overflow, rk.partialValue <= 1 << 36,
              !rm.overflow, rm.partialValue <= 1 << 36 else { return nil }
        tokens = L; rows = R
        var at = 0
        ids = at; at += 4 * L
        labels = at; at += 4 * L
        topLogits = at; at += 4 * rk.partialValue
        tail = at; at += h.topK > 0 ? 4 * R : 0
        tailPlogp = at; at += h.tailSamples > 0 ? 4 * R : 0
        topIds = at; at += pad(h.idBytes * rk.partialValue)
        draws = at; at += pad(h.idBytes * rm.partialValue)
        if h.lastHidden { last = at; at += pad(hiddenBytes.partialValue) } else { last = nil }
        var hidden: [Int: Int] = [:], qkv: [Int: Int] = [:]
        for l in h.hiddenLayers { hidden[l] = at; at += pad(hiddenBytes.partialValue) }
        for l in h.qkvLayers { qkv[l] = at; at += pad(3 * hiddenBytes.partialValue) }
        self.hidden = hidden; self.qkv = qkv
        size = at
    }
}

/// One index entry: where sequence i's frame is and what it holds.
public struct TeacherCacheEntry: Sendable, Equatable {
    public var offset: Int
    public var compressedBytes: Int
    public var tokens: Int
    public var rows: Int
    public init(offset: Int, compressedBytes: Int, tokens: Int, rows: Int) {
        self.offset = offset; self.compressedBytes = compressedBytes; self.tokens = tokens; self.rows = rows
    }
}

/// Writes a teacher cache: records arrive compressed (any order), the index and the header are
/// written at the end, and the file appears under its name only when complete (temporary file,
/// fsync, rename).
public final class TeacherCacheWriter {
    public let path: String
    private var header: TeacherCacheHeader
    private let out: AtomicFileWriter
    private var entries: [TeacherCacheEntry?]
    private var written = 0
    public var bytesWritten: Int { out.bytesWritten }

    public init(path: String, header: TeacherCacheHeader) throws {
        self.path = path
        self.header = header
        entries = [TeacherCacheEntry?](repeating: nil, count: header.sequences)
        out = try AtomicFileWriter(path: path)
        // The prefix and header region are written last, over these zeros.
        try out.write([UInt8](repeating: 0, count: TeacherCacheHeader.prefixSize + TeacherCacheHeader.regionSize))
    }

    /// Compresses a record (checksummed frame); may run on any thread.
    public static func compress(_ record: UnsafeRawBufferPointer, level: Int = 3) throws -> [UInt8] {
        try Zstd.compressFrame(record, level: level)
    }

    /// Appends sequence i's compressed record.
    public func append(sequence i: Int, frame: [UInt8], tokens: Int, rows: Int) throws {
        precondition(entries[i] == nil, "sequence \(i) written twice")
        entries[i] = TeacherCacheEntry(offset: out.bytesWritten, compressedBytes: frame.count, tokens: tokens, rows: rows)
        try out.write(frame)
        written += 1
    }

    /// Writes the index and the header, and renames the file into place.
    public func commit() throws {
        precondition(written == entries.count, "\(entries.count - written) sequences were not written")
        var index = [UInt8]()
        index.reserveCapacity(entries.count * TeacherCacheHeader.indexEntrySize)
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { index.append(contentsOf: $0) } }
        for e in entries {
            withUnsafeBytes(of: UInt64(e!.offset).littleEndian) { index.append(contentsOf: $0) }
            u32(e!.compressedBytes); u32(e!.tokens); u32(e!.rows); u32(0)
        }
        let frame = try index.withUnsafeBytes { try Zstd.compressFrame($0, level: 3) }
        header.indexOffset = out.bytesWritten
        header.indexBytes = frame.count
        try out.write(frame)
        var json = Array(header.json.serialized.utf8)
        precondition(json.count <= TeacherCacheHeader.regionSize, "teacher cache header of \(json.count) bytes")
        json += [UInt8](repeating: 0x20, count: TeacherCacheHeader.regionSize - json.count)
        var prefix = TeacherCacheHeader.magic
        withUnsafeBytes(of: UInt32(TeacherCacheHeader.version).littleEndian) { prefix.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(TeacherCacheHeader.regionSize).littleEndian) { prefix.append(contentsOf: $0) }
        withUnsafeBytes(of: XXH64.hash(json).littleEndian) { prefix.append(contentsOf: $0) }
        try (prefix + json).withUnsafeBytes { try out.write($0, at: 0) }
        try out.commit()
    }
}

/// A teacher cache opened for reading: the prefix, header and index are validated on open
/// (checked arithmetic, every frame inside the frame area, frames tiling it without overlap);
/// each record is checked when read (frame header, checksum, sizes, ids, finite values).
public final class TeacherCacheReader: @unchecked Sendable {
    public let path: String
    public let header: TeacherCacheHeader
    public let entries: [TeacherCacheEntry]
    /// The largest record (what a caller's buffer for one sequence must hold), sized on open.
    public let maxRecordSize: Int
    public var fileSize: Int { file.size }
    private let file: MappedFile

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let b = file.bytes, n = b.count
        guard n >= TeacherCacheHeader.prefixSize, Array(b[0..<8]) == TeacherCacheHeader.magic else {
            throw TeacherCacheFileError.notACache(path: path, reason: n < 8 ? "\(n) bytes" : "no DSTLTCHE magic")
        }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        let version = u32(8)
        guard version == TeacherCacheHeader.version else { throw TeacherCacheFileError.unsupportedVersion(path: path, version: version) }
        let H = u32(12)
        guard H >= 2, H <= TeacherCacheHeader.maxRegionSize, TeacherCacheHeader.prefixSize + H <= n else {
            throw TeacherCacheFileError.header(path: path, reason: "a header region of \(H) bytes does not fit the \(n)-byte file (truncated?)")
        }
        let region = UnsafeRawBufferPointer(rebasing: b[TeacherCacheHeader.prefixSize..<(TeacherCacheHeader.prefixSize + H)])
        guard XXH64.hash(region) == UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) else {
            throw TeacherCacheFileError.header(path: path, reason: "its checksum does not match")
        }
        let json: HeaderJSON
        do { json = try HeaderJSON.parse(region) } catch { throw TeacherCacheFileError.header(path: path, reason: "bad JSON: \(error)") }
        let h = try TeacherCacheHeader(json: json, path: path)
        header = h
        // Every record must fit the buffer a reader allocates for the largest one.
        guard let largest = TeacherCacheRecordLayout(h, tokens: h.maxSequenceLength, rows: h.maxSequenceLength), largest.size <= 1 << 36 else {
            throw TeacherCacheFileError.header(path: path, reason: "a record of max_seq_len \(h.maxSequenceLength) tokens with top_k \(h.topK) and tail_samples \(h.tailSamples) would be too large")
        }
        maxRecordSize = largest.size
        let framesStart = TeacherCacheHeader.prefixSize + H
        guard h.indexOffset >= framesStart, h.indexBytes > 0, h.indexOffset <= n, h.indexBytes == n - h.indexOffset else {
            throw TeacherCacheFileError.index(path: path, reason: "the header places it at \(h.indexOffset) (\(h.indexBytes) bytes) in a file of \(n) bytes (truncated?)")
        }
        guard h.sequences <= (h.indexOffset - framesStart) / 9 + 1 else {
            throw TeacherCacheFileError.index(path: path, reason: "\(h.sequences) sequences cannot fit in \(h.indexOffset - framesStart) bytes of frames")
        }
        let indexSize = h.sequences * TeacherCacheHeader.indexEntrySize
        let raw = AlignedBuffer<UInt8>(count: max(1, indexSize))
        do {
            let src = UnsafeRawBufferPointer(rebasing: b[h.indexOffset..<n])
            try Zstd.checkFrame(src, compressedSize: h.indexBytes, decompressedSize: indexSize, index: 0)
            try Zstd.decompressFrame(src, into: UnsafeMutableRawBufferPointer(start: raw.base, count: indexSize), index: 0)
        } catch let e as ZstdError {
            throw TeacherCacheFileError.index(path: path, reason: "\(e)")
        }
        let ix = UnsafeRawBufferPointer(start: raw.base, count: indexSize)
        var entries: [TeacherCacheEntry] = []
        entries.reserveCapacity(h.sequences)
        var tokens = 0
        for i in 0..<h.sequences {
            let o = i * TeacherCacheHeader.indexEntrySize
            let offset = UInt64(littleEndian: ix.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            func f(_ k: Int) -> Int { Int(UInt32(littleEndian: ix.loadUnaligned(fromByteOffset: o + 8 + 4 * k, as: UInt32.self))) }
            let e = TeacherCacheEntry(offset: Int(clamping: offset), compressedBytes: f(0), tokens: f(1), rows: f(2))
            guard e.offset >= framesStart, e.compressedBytes > 0, e.compressedBytes <= h.indexOffset - e.offset else {
                throw TeacherCacheFileError.index(path: path, reason: "sequence \(i)'s frame (\(e.compressedBytes) bytes at \(offset)) lies outside the frames")
            }
            guard e.tokens >= 1, e.tokens <= h.maxSequenceLength, e.rows <= e.tokens, f(3) == 0 else {
                throw TeacherCacheFileError.index(path: path, reason: "sequence \(i): \(e.tokens) tokens, \(e.rows) soft-target rows (max_seq_len \(h.maxSequenceLength))")
            }
            if h.topK == 0 && e.rows != 0 { throw TeacherCacheFileError.index(path: path, reason: "sequence \(i) has soft-target rows but top_k is 0") }
            tokens += e.tokens
            entries.append(e)
        }
        guard tokens == h.tokens else { throw TeacherCacheFileError.index(path: path, reason: "the sequences hold \(tokens) tokens, the header says \(h.tokens)") }
        // The frames tile [framesStart, indexOffset) exactly: no gap, no overlap.
        var at = framesStart
        for e in entries.sorted(by: { $0.offset < $1.offset }) {
            guard e.offset == at else {
                throw TeacherCacheFileError.index(path: path, reason: e.offset < at ? "frames overlap at byte \(e.offset)" : "a gap of \(e.offset - at) bytes at byte \(at)")
            }
            at += e.compressedBytes
        }
        guard at == h.indexOffset else { throw TeacherCacheFileError.index(path: path, reason: "the frames end at \(at), the index starts at \(h.indexOffset)") }
        self.entries = entries
    }

    public var sequences: Int { header.sequences }


    /// Decompresses and checks sequence i's record into `into` (at least `maxRecordSize` bytes).
    public func record(_ i: Int, into buffer: UnsafeMutableRawPointer) throws -> TeacherCacheRecordLayout {
        guard i >= 0, i < entries.count else { throw TeacherCacheFileError.sequence(path: path, index: i, reason: "the cache holds \(entries.count) sequences") }
        let e = entries[i], h = header
        func fail(_ r: String) -> TeacherCacheFileError { .sequence(path: path, index: i, reason: r) }
        guard let layout = TeacherCacheRecordLayout(h, tokens: e.tokens, rows: e.rows), layout.size <= maxRecordSize else { throw fail("record sizes overflow") }
        let src = UnsafeRawBufferPointer(rebasing: file.bytes[e.offset..<(e.offset + e.compressedBytes)])
        do {
            try Zstd.checkFrame(src, compressedSize: e.compressedBytes, decompressedSize: layout.size, index: i)
            try Zstd.decompressFrame(src, into: UnsafeMutableRawBufferPointer(start: buffer, count: layout.size), index: i)
        } catch let z as ZstdError {
            throw fail("\(z)")
        }
        // Contents: ids and labels of the vocabulary, the rows the policy implies, finite values.
        let L = e.tokens, V = h.vocabularySize
        let ids = (buffer + layout.ids).assumingMemoryBound(to: Int32.self), labels = (buffer + layout.labels).assumingMemoryBound(to: Int32.self)
        var targets = 0
        for p in 0..<L {
            guard ids[p] >= 0, Int(ids[p]) < V else { throw fail("input id \(ids[p]) at position \(p) is outside the \(V)-token vocabulary") }
            let l = labels[p]
            guard l == -100 || (l >= 0 && Int(l) < V) else { throw fail("MLM label \(l) at position \(p) is neither −100 nor a token id") }
            if l >= 0 { targets += 1 }
        }
        if h.topK > 0 {
            let want = h.softTargetRows == "all" ? L : targets
            guard e.rows == want else { throw fail("\(e.rows) soft-target rows, the \(h.softTargetRows) policy gives \(want)") }
        }
        let rk = e.rows * h.topK
        let logits = (buffer + layout.topLogits).assumingMemoryBound(to: Float.self)
        for j in 0..<rk where !logits[j].isFinite { throw fail("top-k logit \(j) is not finite") }
        if h.topK > 0 {
            let tail = (buffer + layout.tail).assumingMemoryBound(to: Float.self)
            for r in 0..<e.rows where tail[r].isNaN || tail[r] == .infinity {
                throw fail("tail logit of row \(r) is \(tail[r]), not a finite number or −∞")
            }
        }
        func checkIds(_ o: Int, _ n: Int, _ what: String) throws {
            for j in 0..<n {
                let id = h.idBytes == 2 ? Int((buffer + o).assumingMemoryBound(to: UInt16.self)[j])
                                        : Int((buffer + o).assumingMemoryBound(to: UInt32.self)[j])
                guard id < V else { throw fail("\(what) \(id) is outside the \(V)-token vocabulary") }
            }
        }
        try checkIds(layout.topIds, rk, "top-k id")
        if h.tailSamples > 0 {
            try checkIds(layout.draws, e.rows * h.tailSamples, "tail draw")
            let plogp = (buffer + layout.tailPlogp).assumingMemoryBound(to: Float.self)
            // Σ p log p ≤ 0 (rounding aside), and no lower than −log V bounds an entropy.
            let low = -Float(Foundation.log(Double(V))) - 1e-3
            for r in 0..<e.rows where !(plogp[r] <= 1e-5 && plogp[r] >= low) {
                throw fail("the tail's Σ p log p of row \(r) is \(plogp[r]), not between \(low) and 0")
            }
        }
        let hiddenOffsets = [layout.last].compactMap { $0 } + layout.hidden.values.sorted()
        for o in hiddenOffsets + layout.qkv.values.sorted() {
            let count = L * h.teacherWidth * (layout.qkv.values.contains(o) ? 3 : 1)
            if h.precision == "bf16" {
                let p = (buffer + o).assumingMemoryBound(to: UInt16.self)
                for j in 0..<count where p[j] & 0x7F80 == 0x7F80 { throw fail("a stored hidden value is not finite") }
            } else {
                let p = (buffer + o).assumingMemoryBound(to: Float.self)
                for j in 0..<count where !p[j].isFinite { throw fail("a stored hidden value is not finite") }
            }
        }
        return layout
    }

    /// Reads every record, checking each (what `distill cache-teacher --verify` does).
    public func verify() throws {
        let buf = AlignedBuffer<UInt8>(count: max(1, maxRecordSize))
        for i in 0..<entries.count { _ = try record(i, into: buf.base) }
    }
}
