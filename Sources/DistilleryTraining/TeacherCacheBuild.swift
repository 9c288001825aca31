import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText

/// Sequences to run the teacher over: a prepared file, or (benchmarks) ids in memory.
public struct CacheSequences: Sendable {
    public let count: Int
    let length: @Sendable (Int) -> Int
    let ids: @Sendable (Int) -> [Int32]
    public init(count: Int, length: @escaping @Sendable (Int) -> Int, ids: @escaping @Sendable (Int) -> [Int32]) {
        self.count = count; self.length = length; self.ids = ids
    }
    public init(_ d: TokenDataset) { self.init(count: d.count, length: { d.length($0) }, ids: { d.sequence($0) }) }
}

/// Runs the teacher once over every sequence (statically masked) and writes what the losses
/// read into a teacher cache: batches of similar lengths, the teacher forward with the matched
/// layers captured, the soft-target rows' logits chunk by chunk with their top k kept, one
/// compressed record per sequence (compressed on all cores).
public enum TeacherCacheBuilder {
    public static func build(teacher: EncoderModel, sequences: CacheSequences, header: TeacherCacheHeader, masking: StaticMasking,
                             padId: Int32, batchSize B: Int, to path: String, level: Int = 3,
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> (bytes: Int, rawBytes: Int) {
        let h = header, tc = teacher.config
        let S = h.maxSequenceLength, V = tc.vocabSize, Ht = tc.hiddenSize, Hh = tc.headWidth, k = h.topK, m = h.tailSamples
        let N = B * S, chunk = min(512, N), e = h.elementBytes
        let acts = try EncoderActivations(model: teacher, maxB: B, maxS: S, training: false)
        let hidden = Dictionary(uniqueKeysWithValues: h.hiddenLayers.map { ($0, FloatBuffer(count: N * Ht)) })   // [N×Ht]
        let qkv = Dictionary(uniqueKeysWithValues: h.qkvLayers.map { ($0, FloatBuffer(count: N * 3 * Ht)) })    // [N×3Ht]
        let gathered = FloatBuffer(count: k > 0 ? chunk * Hh : 0)           // [chunk×Hh] head outputs
        let logits = FloatBuffer(count: k > 0 ? chunk * V : 0)              // [chunk×V]
        let scratch = FloatBuffer(count: k > 0 ? teacher.decoderScratch(rows: chunk, training: false) : 0)
        let topIds = AlignedBuffer<Int32>(count: N * max(k, 1)), topValues = FloatBuffer(count: N * max(k, 1))  // [rows×k]
        let tails = FloatBuffer(count: N)                                   // [rows] tail logits
        let plogps = FloatBuffer(count: N)                                  // [rows] tail Σ p log p (m > 0)
        let draws = AlignedBuffer<Int32>(count: N * max(m, 1))              // [rows×m] tail draws
        let drawOffset = AlignedBuffer<Double>(count: N)                    // [rows] u0 of the systematic draws
        let sampler = m > 0 ? TailSamplerScratch(V: V) : nil
        let tailT = Float(h.tailTemperature)
        let rowPosition = AlignedBuffer<Int32>(count: N)                    // soft-target row → position

        let writer = try TeacherCacheWriter(path: path, header: h)
        // Similar lengths together: little padding, and frames land in a stable order.
        var rawBytes = 0, done = 0
        for indices in lengthOrderedBatches(count: sequences.count, batchSize: B, length: sequences.length) {
            let masked = indices.map { masking.apply(sequences.ids($0), sequence: $0) }
            let Sb = masked.map(\.inputIds.count).max()!, Bb = indices.count, Nb = Bb * Sb
            var ids = [Int32](repeating: padId, count: Nb), labels = [Int32](repeating: -100, count: Nb)
            var mask = [Float](repeating: 0, count: Nb)
            for (b, m) in masked.enumerated() {
                for p in 0..<m.inputIds.count { ids[b * Sb + p] = m.inputIds[p]; labels[b * Sb + p] = m.labels[p]; mask[b * Sb + p] = 1 }
            }
            let batch = TokenBatch(B: Bb, S: Sb, inputIds: ids, attentionMask: mask, tokenTypes: tc.hasTokenTypes ? [Int32](repeating: 0, count: Nb) : nil)
            try teacher.forward(batch, acts,
                                onHiddenState: hidden.isEmpty ? nil : { l, x in hidden[l]?.base.update(from: x, count: Nb * Ht) },
                                onQKV: qkv.isEmpty ? nil : { s, x in qkv[s + 1]?.base.update(from: x, count: Nb * 3 * Ht) })
            // Soft-target rows in position order, and where each sequence's start.
            var rows = 0
            var rowStart = [Int](repeating: 0, count: Bb + 1)
            for b in 0..<Bb {
                rowStart[b] = rows
                guard k > 0 else { continue }
                // The draws' offsets keyed by the sequence and the row within it (not the batch).
                let key = streamKey(masking.seed, 0x5441_494C, UInt64(indices[b]))
                for p in 0..<masked[b].inputIds.count where h.softTargetRows == "all" || labels[b * Sb + p] >= 0 {
                    rowPosition[rows] = Int32(b * Sb + p); drawOffset[rows] = Double(uniform(key, rows - rowStart[b])); rows += 1
                }
            }
            rowStart[Bb] = rows
            if k > 0 && rows > 0 {
                teacher.forwardHeadTransform(acts)
                var r0 = 0
                while r0 < rows {
                    let r = min(chunk, rows - r0)
                    for i in 0..<r { (gathered.base + i * Hh).update(from: acts.headOutput + Int(rowPosition[r0 + i]) * Hh, count: Hh) }
                    teacher.decoderLogits(logits.base, headOutput: gathered.base, rows: r, scratch: scratch.base)
                    let z = SendablePointer(logits.base), ti = SendablePointer(topIds.base + r0 * k), tv = SendablePointer(topValues.base + r0 * k)
                    let tl = SendablePointer(tails.base + r0), pl = SendablePointer(plogps.base + r0)
                    let dr = SendablePointer(draws.base + r0 * max(m, 1)), u0 = SendablePointer(drawOffset.base + r0)
                    Parallel.forEachChunk(r, maxChunks: sampler?.slots ?? .max) { c, range in
                        for i in range {
                            selectTopK(z.p + i * V, V: V, k: k, ids: ti.p + i * k, values: tv.p + i * k)
                            let lse = logSumExp(z.p + i * V, V, invT: 1 / tailT)
                            tl.p[i] = tailLogit(z.p + i * V, V: V, ids: ti.p + i * k, k: k, temperature: tailT, lse: lse)
                            if let sampler {
                                pl.p[i] = sampleTail(z.p + i * V, V: V, ids: ti.p + i * k, k: k, temperature: tailT, lse: lse, m: m, offset: u0.p[i],
                                                     draws: dr.p + i * m, scratch: sampler, slot: c)
                            }
                        }
                    }
                    r0 += r
                }
            }
            // One record per sequence, filled and compressed in parallel.
            var frames = [[UInt8]](repeating: [], count: Bb)
            var sizes = [Int](repeating: 0, count: Bb)
            var failure: Error?
            let lock = NSLock()
            let last = SendablePointer(acts.lastHidden)
            let masked_ = masked, hidden_ = hidden, qkv_ = qkv, rowStart_ = rowStart
            frames.withUnsafeMutableBufferPointer { fp in
                let fp = SendablePointer(fp.baseAddress!)
                sizes.withUnsafeMutableBufferPointer { sp in
                    let sp = SendablePointer(sp.baseAddress!)
                    Parallel.forEachChunk(Bb) { _, range in
                        for b in range {
                            let m = masked_[b], L = m.inputIds.count, R = rowStart_[b + 1] - rowStart_[b]
                            let layout = TeacherCacheRecordLayout(h, tokens: L, rows: R)!
                            let rec = AlignedBuffer<UInt8>(count: layout.size)
                            rec.zero()
                            let base = UnsafeMutableRawPointer(rec.base)
                            m.inputIds.withUnsafeBytes { (base + layout.ids).copyMemory(from: $0.baseAddress!, byteCount: 4 * L) }
                            m.labels.withUnsafeBytes { (base + layout.labels).copyMemory(from: $0.baseAddress!, byteCount: 4 * L) }
                            if R > 0 {
                                (base + layout.topLogits).copyMemory(from: topValues.base + rowStart_[b] * k, byteCount: 4 * R * k)
                                (base + layout.tail).copyMemory(from: tails.base + rowStart_[b], byteCount: 4 * R)
                                func storeIds(_ src: UnsafePointer<Int32>, _ n: Int, at o: Int) {
                                    if h.idBytes == 2 {
                                        let d = (base + o).assumingMemoryBound(to: UInt16.self)
                                        for j in 0..<n { d[j] = UInt16(src[j]) }
                                    } else {
                                        (base + o).copyMemory(from: src, byteCount: 4 * n)
                                    }
                                }
                                storeIds(topIds.base + rowStart_[b] * k, R * k, at: layout.topIds)
                                let draw = h.tailSamples
                                if draw > 0 {
                                    (base + layout.tailPlogp).copyMemory(from: plogps.base + rowStart_[b], byteCount: 4 * R)
                                    storeIds(draws.base + rowStart_[b] * draw, R * draw, at: layout.draws)
                                }
                            }
                            func store(_ from: UnsafePointer<Float>, _ count: Int, at o: Int) {
                                if e == 2 { bf16Bits(from, count: count, into: (base + o).assumingMemoryBound(to: UInt16.self)) }
                                else { (base + o).copyMemory(from: from, byteCount: 4 * count) }
                            }
                            // A sequence's rows are contiguous in the batch: positions b·Sb …
                            if let o = layout.last { store(last.p + b * Sb * Ht, L * Ht, at: o) }
                            for (l, o) in layout.hidden { store(hidden_[l]!.base + b * Sb * Ht, L * Ht, at: o) }
                            for (l, o) in layout.qkv { store(qkv_[l]!.base + b * Sb * 3 * Ht, L * 3 * Ht, at: o) }
                            do {
                                fp.p[b] = try TeacherCacheWriter.compress(UnsafeRawBufferPointer(start: rec.base, count: layout.size), level: level)
                                sp.p[b] = layout.size
                            } catch {
                                lock.lock(); failure = failure ?? error; lock.unlock()
                            }
                        }
                    }
                }
            }
            if let failure { throw failure }
            for b in 0..<Bb {
                try writer.append(sequence: indices[b], frame: frames[b], tokens: masked[b].inputIds.count, rows: rowStart[b + 1] - rowStart[b])
                rawBytes += sizes[b]
            }
            done += Bb
            progress(done, sequences.count)
        }
        try writer.commit()
        return (writer.bytesWritten, rawBytes)
    }
}

/// A micro-batch read from a teacher cache: the masked inputs and labels, and the teacher's
/// outputs where the distillation step reads them (the step copies the hidden states into its
/// own buffers; the soft-target losses read the top k directly).
public final class CachedTeacherBatch {
    public let reader: TeacherCacheReader
    public var header: TeacherCacheHeader { reader.header }
    let maxB: Int, maxS: Int
    let records: [AlignedBuffer<UInt8>]              // per slot, the largest record
    var layouts: [TeacherCacheRecordLayout?]
    public let lastHidden: FloatBuffer?              // [N×Ht]
    let hidden: [Int: FloatBuffer]                   // teacher hidden-state index → [N×Ht]
    let qkv: [Int: FloatBuffer]                      // teacher layer (1-based) → [N×3Ht]
    public let topIds: AlignedBuffer<Int32>, topValues: FloatBuffer  // [N×k] per soft-target row
    public let tails: FloatBuffer                    // [N] per soft-target row, its tail logit
    public let plogps: FloatBuffer                   // [N] per soft-target row, the tail's Σ p log p (m > 0)
    public let draws: AlignedBuffer<Int32>           // [N×m] per soft-target row, its tail draws
    public let rowOf: AlignedBuffer<Int32>           // [N] soft-target row of a position, −1: none
    let teacherRow: AlignedBuffer<Int32>             // [N] per loss row of a chunk, its soft-target row
    public private(set) var B = 0, S = 0

    public init(reader: TeacherCacheReader, maxB: Int) {
        let h = reader.header
        self.reader = reader
        self.maxB = maxB; maxS = h.maxSequenceLength
        let N = maxB * maxS, Ht = h.teacherWidth, k = h.topK
        records = (0..<maxB).map { _ in AlignedBuffer<UInt8>(count: max(1, reader.maxRecordSize)) }
        layouts = [TeacherCacheRecordLayout?](repeating: nil, count: maxB)
        lastHidden = h.lastHidden ? FloatBuffer(count: N * Ht) : nil
        hidden = Dictionary(uniqueKeysWithValues: h.hiddenLayers.map { ($0, FloatBuffer(count: N * Ht)) })
        qkv = Dictionary(uniqueKeysWithValues: h.qkvLayers.map { ($0, FloatBuffer(count: N * 3 * Ht)) })
        topIds = AlignedBuffer(count: max(1, N * k)); topValues = FloatBuffer(count: max(1, N * k))
        tails = FloatBuffer(count: max(1, N))
        plogps = FloatBuffer(count: max(1, N)); draws = AlignedBuffer(count: max(1, N * h.tailSamples))
        rowOf = AlignedBuffer(count: N)
        teacherRow = AlignedBuffer(count: N)
    }

    /// Reads sequences `indices` (records decompressed and checked on all cores), collates them
    /// [B×S] and returns the batch and its MLM labels. `lengths` gives the prepared data's
    /// length of a sequence, which the cache must agree with. `padTo` pads to at least that
    /// length (a data-parallel share padded as its whole batch, so dropout keys agree).
    public func load(_ indices: [Int], lengths: (Int) -> Int, padId: Int32, tokenTypes: Bool, padTo: Int = 0) throws -> (TokenBatch, [Int32]) {
        precondition(indices.count <= maxB, "batch larger than the cache reader's capacity")
        let Bb = indices.count, h = header, k = h.topK, m = h.tailSamples, Ht = h.teacherWidth
        var failure: Error?
        let lock = NSLock()
        let records = self.records
        var layouts = [TeacherCacheRecordLayout?](repeating: nil, count: Bb)
        let reader = self.reader
        layouts.withUnsafeMutableBufferPointer { lp in
            let lp = SendablePointer(lp.baseAddress!)
            Parallel.forEachChunk(Bb) { _, range in
                for b in range {
                    do { lp.p[b] = try reader.record(indices[b], into: records[b].base) } catch {
                        lock.lock(); failure = failure ?? error; lock.unlock()
                    }
                }
            }
        }
        if let failure { throw failure }
        for (b, i) in indices.enumerated() where layouts[b]!.tokens != lengths(i) {
            throw TeacherCacheError.lengthMismatch(path: reader.path, sequence: i, cached: layouts[b]!.tokens, data: lengths(i))
        }
        let S = max(padTo, layouts.map { $0!.tokens }.max() ?? 0), N = Bb * S
        precondition(S <= maxS, "padded beyond the cache reader's capacity")
        self.B = Bb; self.S = S; self.layouts = layouts
        var ids = [Int32](repeating: padId, count: N), labels = [Int32](repeating: -100, count: N)
        var mask = [Float](repeating: 0, count: N)
        var rowStart = [Int](repeating: 0, count: Bb)
        var rows = 0
        for b in 0..<Bb {
            let lay = layouts[b]!, base = UnsafeRawPointer(records[b].base)
            let sid = (base + lay.ids).assumingMemoryBound(to: Int32.self), sl = (base + lay.labels).assumingMemoryBound(to: Int32.self)
            rowStart[b] = rows
            for p in 0..<S {
                let n = b * S + p
                rowOf[n] = -1
                guard p < lay.tokens else { continue }
                ids[n] = sid[p]; labels[n] = sl[p]; mask[n] = 1
                if k > 0 && (h.softTargetRows == "all" || sl[p] >= 0) { rowOf[n] = Int32(rows); rows += 1 }
            }
        }
        // The teacher's outputs, scattered to batch positions (padding rows zero).
        let e = h.elementBytes
        let tiP = SendablePointer(topIds.base), tvP = SendablePointer(topValues.base), tlP = SendablePointer(tails.base)
        let plP = SendablePointer(plogps.base), drP = SendablePointer(draws.base)
        let lastP = lastHidden.map { SendablePointer($0.base) }
        let hidden = self.hidden, qkv = self.qkv, lays = layouts
        Parallel.forEachChunk(Bb) { _, range in
            for b in range {
                let lay = lays[b]!, base = UnsafeRawPointer(records[b].base), L = lay.tokens
                func load(_ o: Int, into dst: UnsafeMutablePointer<Float>, width: Int) {
                    if e == 2 {
                        let src = (base + o).assumingMemoryBound(to: UInt16.self)
                        for j in 0..<(L * width) { dst[j] = float(bf16: src[j]) }
                    } else {
                        dst.update(from: (base + o).assumingMemoryBound(to: Float.self), count: L * width)
                    }
                    (dst + L * width).update(repeating: 0, count: (S - L) * width)
                }
                if let o = lay.last, let lastP { load(o, into: lastP.p + b * S * Ht, width: Ht) }
                for (l, o) in lay.hidden { load(o, into: hidden[l]!.base + b * S * Ht, width: Ht) }
                for (l, o) in lay.qkv { load(o, into: qkv[l]!.base + b * S * 3 * Ht, width: 3 * Ht) }
                if k > 0 && lay.rows > 0 {
                    let n = lay.rows * k
                    (tvP.p + rowStart[b] * k).update(from: (base + lay.topLogits).assumingMemoryBound(to: Float.self), count: n)
                    (tlP.p + rowStart[b]).update(from: (base + lay.tail).assumingMemoryBound(to: Float.self), count: lay.rows)
                    func loadIds(_ o: Int, _ n: Int, into dst: UnsafeMutablePointer<Int32>) {
                        if h.idBytes == 2 {
                            let src = (base + o).assumingMemoryBound(to: UInt16.self)
                            for j in 0..<n { dst[j] = Int32(src[j]) }
                        } else {
                            dst.update(from: (base + o).assumingMemoryBound(to: Int32.self), count: n)
                        }
                    }
                    loadIds(lay.topIds, n, into: tiP.p + rowStart[b] * k)
                    if m > 0 {
                        (plP.p + rowStart[b]).update(from: (base + lay.tailPlogp).assumingMemoryBound(to: Float.self), count: lay.rows)
                        loadIds(lay.draws, lay.rows * m, into: drP.p + rowStart[b] * m)
                    }
                }
            }
        }
        let batch = TokenBatch(B: Bb, S: S, inputIds: ids, attentionMask: mask, tokenTypes: tokenTypes ? [Int32](repeating: 0, count: N) : nil)
        return (batch, labels)
    }

    /// The soft-target (against the cached top k and tail: its draws, or the tail logit) and
    /// MLM losses of `rows` rows of student logits `zs` at batch `positions`, and their
    /// gradient in place (see `distillationRowsTopK`).
    func lossRows(zs: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, rows: Int, V: Int, labels: UnsafePointer<Int32>,
                  ce: UnsafePointer<Bool>, temperature: Float, ceScale: Float, mlmScale: Float,
                  klOut: UnsafeMutablePointer<Double>, mlmOut: UnsafeMutablePointer<Double>, mseOut: UnsafeMutablePointer<Double>) {
        for i in 0..<rows { teacherRow[i] = rowOf[Int(positions[i])] }
        distillationRowsTopK(zs: zs, rows: rows, V: V, labels: labels, ce: ce, teacherRow: teacherRow.base, topIds: topIds.base,
                             topValues: topValues.base, tailLogits: tails.base, k: header.topK,
                             tailSamples: header.tailSamples > 0 ? draws.base : nil, m: header.tailSamples, tailPlogp: plogps.base, temperature: temperature, ceScale: ceScale, mlmScale: mlmScale,
                             klOut: klOut, mlmOut: mlmOut, mseOut: mseOut)
    }
}
