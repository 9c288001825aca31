import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryQuant

/// [teacher.cache] in a recipe: run the teacher once over the training data, keep what the
/// losses read (top-k soft targets, hidden states, q|k|v of matched layers) in a cache file,
/// and train from it. Masks are then drawn once per sequence (static masking).
public struct TeacherCacheSpec: Sendable, Equatable {
    /// Soft targets kept per row: the teacher's k largest logits with their ids.
    public var topK = 64
    /// Draws from each row's tail (the other V − k tokens) that carry its mass in the loss:
    /// an unbiased estimate of the full soft-target loss. 0 spreads the tail's mass evenly
    /// over the V − k tokens instead (biased when the teacher's tail is not flat). The draws
    /// are made once, when the cache is built, like the masks: every epoch sees the same ones.
    public var tailSamples = 256
    /// The cache file (default OUTPUT/data/teacher-cache.dtc).
    public var path: String?
    /// Hidden states and q|k|v stored as bf16 (half the bytes) or fp32.
    public var precision = WeightFormat.bf16
    public init() {}
}

public enum TeacherCacheError: Error, CustomStringConvertible, Equatable {
    case mismatch(path: String, differences: [String])
    case lengthMismatch(path: String, sequence: Int, cached: Int, data: Int)
    case topK(recipe: String, k: Int, vocabulary: Int)
    case notConfigured(recipe: String)
    case needsFittedHead(recipe: String, folder: String)
    case unsupportedLoss(recipe: String, loss: String)
    case scheduledTemperature(recipe: String)
    case taskRecipe(recipe: String)
    case noHeldout(recipe: String)
    case compareK(k: Int, vocabulary: Int)
    case studentVocabulary(student: String, vocabulary: Int, teacher: Int)

    public var description: String {
        switch self {
        case let .mismatch(p, d):
            return "\(p): this teacher cache was built for another run (\(d.joined(separator: "; "))); build it again with distill cache-teacher RECIPE --overwrite, or point [teacher.cache] path elsewhere"
        case let .lengthMismatch(p, i, c, d):
            return "\(p): sequence \(i) has \(c) tokens in the cache but \(d) in the prepared data; build the cache again with distill cache-teacher RECIPE --overwrite"
        case let .topK(r, k, v): return "\(r): [teacher.cache] top_k = \(k) is larger than the teacher's vocabulary (\(v))"
        case let .notConfigured(r):
            return "\(r): the recipe has no [teacher.cache] table; add one (e.g. top_k = 64) so that distill run reads the cache this command builds"
        case let .unsupportedLoss(r, l):
            return "\(r): [teacher.cache] cannot serve \(l): set it to 0 or remove [teacher.cache]"
        case let .scheduledTemperature(r):
            return "\(r): [teacher.cache] stores each row's tail for one temperature, and the recipe schedules temperature; keep it fixed or remove [teacher.cache]"
        case let .noHeldout(r): return "\(r): measuring the top-k approximation needs held-out text ([data] heldout)"
        case let .compareK(k, v): return "--compare-k \(k): each K must be 1…\(v), the teacher's vocabulary"
        case let .studentVocabulary(s, v, t):
            return "\(s): the student's vocabulary has \(v) tokens and the teacher's \(t): soft targets compare the two over one vocabulary"
        case let .taskRecipe(r): return "\(r): [teacher.cache] serves text recipes; a [task] recipe distils class logits from a teacher it fine-tunes first"
        case let .needsFittedHead(r, f):
            return "\(r): the teacher's MLM head is fitted first ([teacher.fit_head]) and \(f) does not hold it yet; run distill run RECIPE (it fits the head, then builds the cache), or distill fit-head --out \(f)"
        }
    }

    /// How a field of the header reads in a refusal.
    static func describe(_ field: String, found: String, expected: String) -> String {
        switch field {
        case "teacher": return "other teacher: built with \(found), the recipe's is \(expected)"
        case "data": return "other data: built from \(found), the recipe's is \(expected)"
        case "top_k": return "other k: built with top_k = \(found), the recipe asks for \(expected)"
        case "tail_samples": return "other tail draws: built with tail_samples = \(found), the recipe asks for \(expected)"
        case "tail_temperature": return "other temperature: the tail logits were stored for T = \(found), the recipe's temperature is \(expected)"
        case "masking": return "other masking: built with \(found), the recipe's is \(expected)"
        case "hidden_layers", "qkv_layers", "last_hidden":
            return "other matches: \(field) is \(found) in the cache, the recipe's losses read \(expected)"
        default: return "\(field) is \(found) in the cache, the recipe needs \(expected)"
        }
    }
}

extension Recipe {
    /// The teacher cache file this recipe reads (nil without [teacher.cache]).
    public var teacherCachePath: String? { teacherCache.map { $0.path ?? output + "/data/teacher-cache.dtc" } }
}

/// Fingerprints of what a cache was built from.
public enum CacheFingerprint {
    /// XXH64 of the teacher's configuration and every weight, with the precision it runs in.
    public static func teacher(_ m: EncoderModel, precision: WeightFormat) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var h = XXH64()
        h.update(Array(try enc.encode(m.config)))
        h.update(UnsafeRawBufferPointer(start: m.parameters.base, count: m.layout.count * MemoryLayout<Float>.size))
        return "xxh64:" + hex(h.digest()) + " " + precision.rawValue
    }

    /// The prepared file's vocabulary hash, counts and content hash.
    public static func data(_ d: TokenDataset) throws -> String {
        let f = try MappedFile(path: d.path)
        return "vocab \(hex(d.header.vocabularyHash)), \(d.count) sequences, \(d.header.tokens) tokens, xxh64:\(hex(XXH64.hash(f.bytes)))"
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// Static masking: each sequence's masks drawn once, keyed by the seed and the sequence index.
public struct StaticMasking: Sendable {
    public let masker: MLMMasker
    public let seed: UInt64
    public init(masker: MLMMasker, seed: UInt64) { self.masker = masker; self.seed = seed }

    /// Sequence i masked: input ids and labels [L].
    public func apply(_ ids: [Int32], sequence i: Int) -> MaskedBatch {
        masker.apply(TokenBatchView(inputIds: ids, attentionMask: [Float](repeating: 1, count: ids.count)),
                     key: streamKey(seed, 0x5354_4154, UInt64(i)))
    }

    /// What the cache header records of the policy.
    public var description: String {
        let p = masker.policy
        return "static, mlm_probability \(p.probability), mask_share \(p.maskShare), random_share \(p.randomShare), mlm_smoothing \(p.smoothing), whole_word_mask \(p.wholeWord), seed \(seed)"
    }

    /// Sequences `indices` of `data`, masked and collated [B×S] (padding: padId, label −100).
    public func batch(_ indices: [Int], data: TokenDataset, padId: Int32, tokenTypes: Bool) -> (TokenBatch, [Int32]) {
        let S = indices.map(data.length).max() ?? 0, B = indices.count
        var ids = [Int32](repeating: padId, count: B * S), labels = [Int32](repeating: -100, count: B * S)
        var mask = [Float](repeating: 0, count: B * S)
        for (b, i) in indices.enumerated() {
            let m = apply(data.sequence(i), sequence: i)
            for p in 0..<m.inputIds.count { ids[b * S + p] = m.inputIds[p]; labels[b * S + p] = m.labels[p]; mask[b * S + p] = 1 }
        }
        return (TokenBatch(B: B, S: S, inputIds: ids, attentionMask: mask, tokenTypes: tokenTypes ? [Int32](repeating: 0, count: B * S) : nil), labels)
    }
}

/// What a recipe's losses read from the teacher, and so what its cache holds.
public struct TeacherCacheContents: Sendable, Equatable {
    public var topK: Int
    public var softTargetRows: String
    /// The soft-target temperature the tail logits are stored for.
    public var tailTemperature: Double
    public var tailSamples: Int
    public var lastHidden: Bool
    public var hiddenLayers: [Int]
    public var qkvLayers: [Int]
    public var precision: WeightFormat

    public init(spec: TeacherCacheSpec, loss: LossSettings, matches: [LayerMatch]) {
        topK = loss.alphaCE > 0 ? spec.topK : 0
        softTargetRows = loss.restrictCEToMask ? "masked" : "all"
        tailTemperature = Double(loss.temperature)
        tailSamples = spec.tailSamples
        lastHidden = loss.alphaCos > 0 || loss.alphaHidden > 0
        hiddenLayers = Array(Set(matches.filter(\.kind.comparesHidden).map { $0.teacherLayer! })).sorted()
        qkvLayers = Array(Set(matches.filter { !$0.kind.comparesHidden }.map { $0.teacherLayer! })).sorted()
        precision = spec.precision
    }

    /// The header a cache for this teacher and data must have.
    public func header(teacher: EncoderModel, teacherFingerprint: String, data: TokenDataset, dataFingerprint: String,
                       masking: StaticMasking, maxSequenceLength: Int) -> TeacherCacheHeader {
        var h = TeacherCacheHeader(teacher: teacherFingerprint, data: dataFingerprint, vocabularySize: teacher.config.vocabSize,
                                   maxSequenceLength: maxSequenceLength, sequences: data.count, tokens: data.header.tokens,
                                   masking: masking.description, topK: topK, softTargetRows: softTargetRows, tailTemperature: tailTemperature,
                                   teacherWidth: teacher.config.hiddenSize, precision: precision.rawValue, lastHidden: lastHidden,
                                   hiddenLayers: hiddenLayers, qkvLayers: qkvLayers, tailSamples: tailSamples)
        h.dataPath = data.path
        return h
    }
}

/// How the top-k soft targets compare with the full ones: the soft-target loss (KL at T,
/// × T²) of the initial student against the teacher's full distribution and against its
/// top-k one (the k tokens, and the tail's mass on m draws from it or spread evenly by the
/// tail logit), on held-out batches.
public struct TopKApproximation: Codable, Sendable, Equatable {
    public var source: String
    public var batches = 0
    public var rows = 0
    public var topK = 0
    /// Draws carrying the tail's mass (0: spread evenly).
    public var tailSamples = 0
    public var temperature = 0.0
    public var fullLoss = 0.0
    public var topKLoss = 0.0
    /// Mean share of the teacher's probability (at T) that the k tokens hold.
    public var topKMass = 0.0
    /// |top-k − full| / full.
    public var relativeDifference: Double { fullLoss > 0 ? abs(topKLoss - fullLoss) / fullLoss : 0 }

    enum CodingKeys: String, CodingKey { case source, batches, rows, topK, tailSamples, temperature, fullLoss, topKLoss, topKMass, relativeDifference }
    public init(source: String) { self.source = source }
    public init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        source = try c.decode(String.self, forKey: .source); batches = try c.decode(Int.self, forKey: .batches)
        rows = try c.decode(Int.self, forKey: .rows); topK = try c.decode(Int.self, forKey: .topK)
        tailSamples = try c.decode(Int.self, forKey: .tailSamples)
        temperature = try c.decode(Double.self, forKey: .temperature); fullLoss = try c.decode(Double.self, forKey: .fullLoss)
        topKLoss = try c.decode(Double.self, forKey: .topKLoss); topKMass = try c.decode(Double.self, forKey: .topKMass)
    }
    public func encode(to e: Encoder) throws {
        var c = e.container(keyedBy: CodingKeys.self)
        try c.encode(source, forKey: .source); try c.encode(batches, forKey: .batches); try c.encode(rows, forKey: .rows)
        try c.encode(topK, forKey: .topK); try c.encode(tailSamples, forKey: .tailSamples); try c.encode(temperature, forKey: .temperature); try c.encode(fullLoss, forKey: .fullLoss)
        try c.encode(topKLoss, forKey: .topKLoss); try c.encode(topKMass, forKey: .topKMass)
        try c.encode(relativeDifference, forKey: .relativeDifference)
    }

    public var line: String {
        let tail = tailSamples > 0 ? "on \(tailSamples) draws" : "spread evenly"
        return String(format: "top-%d soft targets, tail %@: loss %.5f against %.5f with the full vocabulary (%.3f%% apart; the k tokens hold %.2f%% of the teacher's probability at T = %g), %d rows of %d %@ batches",
                      topK, tail, topKLoss, fullLoss, relativeDifference * 100, topKMass * 100, temperature, rows, batches, source)
    }
}

/// What building (or finding) a cache did.
public struct TeacherCacheSummary: Codable, Sendable {
    public var path: String
    public var built: Bool
    public var sequences: Int
    public var tokens: Int
    public var bytes: Int
    /// Decompressed bytes of the records.
    public var rawBytes: Int
    public var seconds: Double
    public var topK: Int
    public var approximation: TopKApproximation?
}

/// Top-k selection: the k largest of z[0..<V], ids and values, in descending order (ties:
/// the lower id first).
@inline(__always)
func selectTopK(_ z: UnsafePointer<Float>, V: Int, k: Int, ids: UnsafeMutablePointer<Int32>, values: UnsafeMutablePointer<Float>) {
    if k * 8 >= V {
        // Large k: sort every id, as one integer key each: the float's bits mapped to an
        // order-preserving integer (complemented: descending), the id below it (ties: lower first).
        var keys = [UInt64](repeating: 0, count: V)
        for j in 0..<V {
            let b = z[j].bitPattern, ordered = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
            keys[j] = UInt64(~ordered) << 32 | UInt64(j)
        }
        keys.sort()
        for j in 0..<k { let id = Int(keys[j] & 0xFFFF_FFFF); ids[j] = Int32(id); values[j] = z[id] }
        return
    }
    // Small k: values[0..<n] ascending, the best so far; among equal values the lower id sits
    // higher (it was there first), so reversing gives the order wanted.
    var n = 0
    for j in 0..<V {
        let x = z[j]
        if n < k {
            var p = n
            n += 1
            while p > 0 && values[p - 1] >= x { values[p] = values[p - 1]; ids[p] = ids[p - 1]; p -= 1 }
            values[p] = x; ids[p] = Int32(j)
        } else if x > values[0] {
            // Drop the least, then move up past the smaller ones.
            var p = 0
            while p + 1 < k && values[p + 1] < x { values[p] = values[p + 1]; ids[p] = ids[p + 1]; p += 1 }
            values[p] = x; ids[p] = Int32(j)
        }
    }
    var lo = 0, hi = n - 1
    while lo < hi {
        (values[lo], values[hi]) = (values[hi], values[lo])
        (ids[lo], ids[hi]) = (ids[hi], ids[lo])
        lo += 1; hi -= 1
    }
}

/// The tail logit of a row z [V] whose k largest are `ids`: the z̄ with
///   (V − k) · exp(z̄ / T) = Σ_{i ∉ ids} exp(z_i / T),
/// so that a teacher given by its top k and z̄ for every other token has the tail's exact mass
/// at T. From the row's log-sum-exp `lse` = log Σ exp(z/T) (the vectorised kernel's, shared
/// with `sampleTail`) less the top k's share; −∞ without a tail (k = V) or with one below 10⁻⁶
/// of the mass (about what that kernel resolves).
func tailLogit(_ z: UnsafePointer<Float>, V: Int, ids: UnsafePointer<Int32>, k: Int, temperature T: Float, lse: Double) -> Float {
    guard k < V else { return -.infinity }
    let t = 1 / Double(T)
    var top = 0.0
    for j in 0..<k { top += Foundation.exp(Double(z[Int(ids[j])]) * t - lse) }
    let tail = 1 - top
    guard tail > 1e-6 else { return -.infinity }
    return Float(Double(T) * (lse + Foundation.log(tail) - Foundation.log(Double(V - k))))
}


/// Per-worker scratch of `sampleTail`: for each of `slots` workers, V entries of order,
/// probability and flag, and the bins.
public final class TailSamplerScratch: @unchecked Sendable {
    static let bins = 64
    public let slots: Int, V: Int
    let order: AlignedBuffer<Int32>      // [slots×V] tail ids, likely first
    let probs: AlignedBuffer<Double>     // [slots×V] p_i at T
    let flags: AlignedBuffer<UInt8>      // [slots×V] 1 at the row's top k (zero between calls)
    let counts: AlignedBuffer<Int>       // [slots×bins]
    public init(V: Int, slots: Int = max(1, Parallel.threads)) {
        self.V = V; self.slots = slots
        order = AlignedBuffer(count: slots * V); probs = AlignedBuffer(count: slots * V)
        flags = AlignedBuffer(count: slots * V); flags.zero()
        counts = AlignedBuffer(count: slots * Self.bins)
    }
}

/// m draws from the teacher's tail at T: the tokens of row z [V] outside its top k (`ids`),
/// token i with probability p_i / τ (p = softmax(z/T), τ = Σ_tail p). Systematic sampling:
/// draw s is the token where the tail's cumulative mass passes (u0 + s)·τ/m, the tail walked
/// from likely to unlikely (a counting sort into quarter-nat bins of log p), so the draws are
/// spread over the tail like a stratified sample. Over the offset u0 ~ U[0, 1), token i gets
/// m·p_i/τ draws on average (the m points cover [0, τ) once), so (τ/m)·Σ_s f(draw_s) is
/// unbiased for Σ_tail p_i f_i, the tail's part of the soft-target loss and its gradient.
/// `lse` = log Σ exp(z/T) of the row. Writes `draws` [m]; returns Σ_tail p log p (0 without a tail).
public func sampleTail(_ z: UnsafePointer<Float>, V: Int, ids: UnsafePointer<Int32>, k: Int, temperature T: Float, lse: Double, m: Int,
                       offset u0: Double, draws: UnsafeMutablePointer<Int32>, scratch: TailSamplerScratch, slot: Int) -> Float {
    precondition(k >= 1 && m >= 1 && V == scratch.V && slot < scratch.slots)
    guard k < V else { draws.update(repeating: ids[0], count: m); return 0 }
    let order = scratch.order.base + slot * V, probs = scratch.probs.base + slot * V, flags = scratch.flags.base + slot * V
    let nb = TailSamplerScratch.bins, counts = scratch.counts.base + slot * nb
    for j in 0..<k { flags[Int(ids[j])] = 1 }
    let invT = 1 / Double(T)
    // The k-th largest logit bounds the tail's: bins count quarter-nats of log p below it.
    let ref = Double(z[Int(ids[k - 1])]), scale = 4 * invT
    // Clamped in double before the conversion (an infinite or NaN logit must not trap).
    @inline(__always) func bin(_ x: Float) -> Int {
        let d = (ref - Double(x)) * scale
        return d >= 0 && d < Double(nb - 1) ? Int(d) : (d >= 0 || d.isNaN ? nb - 1 : 0)
    }
    counts.update(repeating: 0, count: nb)
    var tau = 0.0, plogp = 0.0
    for j in 0..<V where flags[j] == 0 {
        let lp = Double(z[j]) * invT - lse, p = Foundation.exp(lp)
        probs[j] = p; tau += p; plogp += p * lp
        counts[bin(z[j])] += 1
    }
    var at = 0
    for b in 0..<nb { let c = counts[b]; counts[b] = at; at += c }
    for j in 0..<V where flags[j] == 0 {
        let b = bin(z[j])
        order[counts[b]] = Int32(j); counts[b] += 1
    }
    let n = V - k, step = tau / Double(m)
    var cum = 0.0, s = 0, next = u0 * step
    for i in 0..<n where s < m {
        let j = order[i]
        cum += probs[Int(j)]
        while s < m && cum > next { draws[s] = j; s += 1; next = (u0 + Double(s)) * step }
    }
    // Rounding can leave the last threshold a hair above the total.
    while s < m { draws[s] = s > 0 ? draws[s - 1] : order[0]; s += 1 }
    for j in 0..<k { flags[Int(ids[j])] = 0 }
    return Float(plogp)
}

extension TeacherCacheError {
    /// Losses a teacher cache cannot serve: the classification soft targets (a [task] recipe
    /// distils class logits from a teacher it fine-tunes first) and the logit MSE (it needs
    /// every logit, the cache keeps k).
    public static func unsupported(_ settings: LossSettings, recipe: String) -> TeacherCacheError? {
        if settings.alphaSoft > 0 || settings.alphaHard > 0 { return .unsupportedLoss(recipe: recipe, loss: "alpha_soft / alpha_hard (class logits)") }
        if settings.alphaMSE > 0 { return .unsupportedLoss(recipe: recipe, loss: "alpha_mse (the MSE of all logits; the cache keeps the top k)") }
        if settings.alphaCE > 0 && settings.schedules["temperature"] != nil { return .scheduledTemperature(recipe: recipe) }
        return nil
    }
}

extension DistillationStep {
    /// Puts a cached batch's teacher outputs where the losses read them: the last hidden state
    /// into the teacher's activations, the matched layers' hidden states and q|k|v into the
    /// match buffers. The soft-target logits are filled chunk by chunk in `logitLosses`.
    func useCachedTeacher(_ c: CachedTeacherBatch, N: Int) {
        precondition(c.B * c.S == N, "the cached batch is not the batch being run")
        let Ht = c.header.teacherWidth
        if let last = c.lastHidden, let teacherActs { teacherActs.lastHidden.update(from: last.base, count: N * Ht) }
        if let ml = matchLosses {
            for (l, b) in c.hidden { ml.captureTeacherHidden(l, b.base, N: N) }
            for (l, b) in c.qkv { ml.captureTeacherQKV(l - 1, b.base, N: N) }
        }
    }
}

/// Opening (or building) the cache a recipe reads.
public enum TeacherCacheStore {
    /// The header a cache must have to serve this recipe with this teacher and data.
    public static func expectedHeader(recipe r: Recipe, spec: TeacherCacheSpec, teacher: EncoderModel, matches: [LayerMatch],
                                      train: TokenDataset, masking: StaticMasking) throws -> TeacherCacheHeader {
        if r.task != nil { throw TeacherCacheError.taskRecipe(recipe: r.path) }
        if let e = TeacherCacheError.unsupported(r.loss, recipe: r.path) { throw e }
        if spec.topK > teacher.config.vocabSize { throw TeacherCacheError.topK(recipe: r.path, k: spec.topK, vocabulary: teacher.config.vocabSize) }
        let contents = TeacherCacheContents(spec: spec, loss: r.loss, matches: matches)
        var h = contents.header(teacher: teacher, teacherFingerprint: try CacheFingerprint.teacher(teacher, precision: r.training.precision),
                                data: train, dataFingerprint: try CacheFingerprint.data(train), masking: masking,
                                maxSequenceLength: r.data.maxSequenceLength)
        h.teacherPath = r.teacher
        return h
    }

    /// Opens the cache at `path` and checks that it was built for `expected`: refused, naming
    /// the file and the fields that differ, when it was not.
    public static func open(_ path: String, expected: TeacherCacheHeader) throws -> TeacherCacheReader {
        let reader = try TeacherCacheReader(path: path)
        let d = reader.header.differences(from: expected)
        if !d.isEmpty {
            throw TeacherCacheError.mismatch(path: path, differences: d.map { TeacherCacheError.describe($0.field, found: $0.found, expected: $0.expected) })
        }
        return reader
    }

    /// Builds the cache for `expected` at `path` (replacing what is there).
    @discardableResult
    public static func build(_ path: String, expected: TeacherCacheHeader, teacher: EncoderModel, train: TokenDataset, masking: StaticMasking,
                             padId: Int32, batchSize: Int, progress: (Int, Int) -> Void = { _, _ in }) throws -> TeacherCacheSummary {
        let start = Timing.now()
        let (bytes, raw) = try TeacherCacheBuilder.build(teacher: teacher, sequences: CacheSequences(train), header: expected, masking: masking,
                                                         padId: padId, batchSize: batchSize, to: path, progress: progress)
        return TeacherCacheSummary(path: path, built: true, sequences: expected.sequences, tokens: expected.tokens, bytes: bytes,
                                   rawBytes: raw, seconds: Timing.now() - start, topK: expected.topK, approximation: nil)
    }
}

extension Trainer {
    /// `distill cache-teacher`: runs the recipe's teacher once over its training data into the
    /// cache file (`topK` and `path` override [teacher.cache]). A cache already built for the
    /// same teacher, data and settings is kept unless `overwrite`.
    public func buildTeacherCache(topK: Int?, tailSamples: Int? = nil, path: String?, overwrite: Bool,
                                  events: (TrainerEvent) -> Void = { _ in }) throws -> TeacherCacheSummary {
        let r = recipe
        guard var spec = r.teacherCache ?? (topK != nil || tailSamples != nil || path != nil ? TeacherCacheSpec() : nil) else {
            throw TeacherCacheError.notConfigured(recipe: r.path)
        }
        if let topK { spec.topK = topK }
        if let tailSamples { spec.tailSamples = tailSamples }
        if let path { spec.path = path }
        let file = spec.path ?? r.output + "/data/teacher-cache.dtc"
        if r.fitHead != nil && !FileManager.default.fileExists(atPath: teacherPath + "/model.safetensors") {
            throw TeacherCacheError.needsFittedHead(recipe: r.path, folder: teacherPath)
        }
        _ = try RecipeCheck(r)
        try FileManager.default.createFolder(r.output + "/data")
        let loaded = try ModelStore.load(teacherPath, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let tokenizer = try BertTokenizer.of(model: teacherPath, files: loaded.tokenizer)
        let train = try dataset(r.data.train, name: "train", tokenizer: tokenizer, events: events)
        if train.count == 0 { throw TrainerError.noData(path: train.path) }
        let teacher = loaded.model
        if r.training.precision == .bf16 { teacher.convertMatricesToBF16() }
        let student = try r.studentConfig(teacher: teacher.config)
        let matches = try r.loss.resolvedMatches(teacher: teacher.config, student: student)
        let masker = MLMMasker(policy: r.data.masking, tokenizer: tokenizer, tokenCounts: r.data.masking.smoothing > 0 ? train.tokenCounts() : nil)
        let masking = StaticMasking(masker: masker, seed: r.seed)
        let expected = try TeacherCacheStore.expectedHeader(recipe: r, spec: spec, teacher: teacher, matches: matches, train: train, masking: masking)
        if !overwrite, FileManager.default.fileExists(atPath: file) {
            let reader = try TeacherCacheStore.open(file, expected: expected)
            events(.message("\(file): already built for this teacher, data and settings (--overwrite builds it again)"))
            return TeacherCacheSummary(path: file, built: false, sequences: reader.sequences, tokens: reader.header.tokens, bytes: reader.fileSize,
                                       rawBytes: 0, seconds: 0, topK: reader.header.topK, approximation: nil)
        }
        events(.message("teacher cache: \(grouped(train.count)) sequences, top \(expected.topK) soft targets, static masking → \(file)"))
        return try withoutActuallyEscaping(events) { events in
            try TeacherCacheStore.build(file, expected: expected, teacher: teacher, train: train, masking: masking, padId: tokenizer.padId,
                                        batchSize: r.training.batchSize) { events(.preparing(file: "teacher cache", done: $0, total: $1)) }
        }
    }
}

extension TopKApproximation {
    /// The soft-target loss (T² × mean KL(teacher ‖ student) at T over the soft-target rows)
    /// with the teacher's full distribution and with its top k and tail (m draws, or the tail
    /// logit when m = 0: what training from the cache computes, by the same kernel), for each
    /// k in `ks`, on `batches` (masked, with MLM labels). The draws are keyed by `seed` and the
    /// row. Sums in double.
    public static func measure(teacher: EncoderModel, student: EncoderModel, batches: [(TokenBatch, [Int32])], ks: [Int], tailSamples m: Int = 0,
                               seed: UInt64 = 0, temperature T: Float, restrictToMask: Bool, source: String) throws -> [TopKApproximation] {
        let V = teacher.config.vocabSize, kMax = ks.max() ?? 0
        precondition(student.config.vocabSize == V && kMax <= V && kMax > 0)
        let maxB = batches.map(\.0.B).max() ?? 0, maxS = batches.map(\.0.S).max() ?? 0, chunk = min(512, maxB * maxS)
        let ta = try EncoderActivations(model: teacher, maxB: maxB, maxS: maxS, training: false)
        let sa = try EncoderActivations(model: student, maxB: maxB, maxS: maxS, training: false)
        let ht = FloatBuffer(count: chunk * teacher.config.headWidth), hs = FloatBuffer(count: chunk * student.config.headWidth)
        let zt = FloatBuffer(count: chunk * V), zs = FloatBuffer(count: chunk * V)
        let scratch = FloatBuffer(count: max(teacher.decoderScratch(rows: chunk, training: false), student.decoderScratch(rows: chunk, training: false)))
        let ids = AlignedBuffer<Int32>(count: chunk * kMax), vals = FloatBuffer(count: chunk * kMax)
        let logPs = AlignedBuffer<Double>(count: chunk * V)
        let row = FloatBuffer(count: V)
        let sampler = TailSamplerScratch(V: V, slots: 1), draws = AlignedBuffer<Int32>(count: max(1, m))   // [m]
        let drawKey = streamKey(seed, 0x5441_494C)
        var full = 0.0, rowsSeen = 0
        var topLoss = [Double](repeating: 0, count: ks.count), mass = [Double](repeating: 0, count: ks.count)
        let invT = 1 / Double(T)
        for (batch, labels) in batches {
            try teacher.forward(batch, ta); teacher.forwardHeadTransform(ta)
            try student.forward(batch, sa); student.forwardHeadTransform(sa)
            let positions = (0..<(batch.B * batch.S)).filter { restrictToMask ? labels[$0] >= 0 : batch.attentionMask[$0] != 0 }
            var start = 0
            while start < positions.count {
                let r = min(chunk, positions.count - start)
                for i in 0..<r {
                    let n = positions[start + i]
                    (ht.base + i * teacher.config.headWidth).update(from: ta.headOutput + n * teacher.config.headWidth, count: teacher.config.headWidth)
                    (hs.base + i * student.config.headWidth).update(from: sa.headOutput + n * student.config.headWidth, count: student.config.headWidth)
                }
                teacher.decoderLogits(zt.base, headOutput: ht.base, rows: r, scratch: scratch.base)
                student.decoderLogits(zs.base, headOutput: hs.base, rows: r, scratch: scratch.base)
                for i in 0..<r {
                    let t = zt.base + i * V, s = zs.base + i * V, lp = logPs.base + i * V
                    // Student log-probabilities and the teacher's full distribution at T.
                    var ms = -Double.infinity, mt = -Double.infinity
                    for j in 0..<V { ms = max(ms, Double(s[j]) * invT); mt = max(mt, Double(t[j]) * invT) }
                    var zsum = 0.0, tsum = 0.0
                    for j in 0..<V { zsum += Foundation.exp(Double(s[j]) * invT - ms); tsum += Foundation.exp(Double(t[j]) * invT - mt) }
                    let lzs = ms + Foundation.log(zsum), lzt = mt + Foundation.log(tsum)
                    var kl = 0.0
                    for j in 0..<V {
                        lp[j] = Double(s[j]) * invT - lzs
                        let lq = Double(t[j]) * invT - lzt
                        kl += Foundation.exp(lq) * (lq - lp[j])
                    }
                    full += kl
                    selectTopK(t, V: V, k: kMax, ids: ids.base + i * kMax, values: vals.base + i * kMax)
                    let lse = logSumExp(t, V, invT: Float(invT))
                    for (ki, k) in ks.enumerated() {
                        // What training from a cache of this k computes: the top k and the
                        // tail (its m draws, or the tail logit when m = 0), through the training kernel (on a copy of the row, which
                        // the kernel overwrites with its gradient).
                        let id = ids.base + i * kMax, v = vals.base + i * kMax
                        var tail = tailLogit(t, V: V, ids: id, k: k, temperature: T, lse: lse)
                        var plogp: Float = 0
                        if m > 0 {
                            plogp = sampleTail(t, V: V, ids: id, k: k, temperature: T, lse: lse, m: m, offset: Double(uniform(drawKey, rowsSeen + i)),
                                               draws: draws.base, scratch: sampler, slot: 0)
                        }
                        row.base.update(from: s, count: V)
                        var klk = 0.0, mlm = 0.0, mse = 0.0
                        var label: Int32 = -100, ce = true, teacherRow: Int32 = 0
                        distillationRowsTopK(zs: row.base, rows: 1, V: V, labels: &label, ce: &ce, teacherRow: &teacherRow, topIds: id,
                                             topValues: v, tailLogits: &tail, k: k, tailSamples: m > 0 ? draws.base : nil, m: k < V ? m : 0,
                                             tailPlogp: &plogp, temperature: T, ceScale: 1, mlmScale: 0,
                                             klOut: &klk, mlmOut: &mlm, mseOut: &mse)
                        var share = 0.0
                        for j in 0..<k { share += Foundation.exp(Double(v[j]) * invT - lzt) }
                        topLoss[ki] += klk; mass[ki] += share
                    }
                }
                rowsSeen += r
                start += r
            }
        }
        let t2 = Double(T * T), n = Double(max(rowsSeen, 1))
        return ks.enumerated().map { ki, k in
            var a = TopKApproximation(source: source)
            a.batches = batches.count; a.rows = rowsSeen; a.topK = k; a.tailSamples = k < V ? m : 0; a.temperature = Double(T)
            a.fullLoss = t2 * full / n; a.topKLoss = t2 * topLoss[ki] / n; a.topKMass = mass[ki] / n
            return a
        }
    }
}

extension Trainer {
    /// The top-k approximation of the recipe's soft-target loss on its held-out text, for the
    /// initial student (the teacher's layers, as `distill run` starts from) or `student`.
    /// `tailSamples` overrides [teacher.cache] tail_samples (default 256 without the table).
    public func topKApproximation(ks: [Int], tailSamples: Int? = nil, student studentPath: String?, events: (TrainerEvent) -> Void = { _ in }) throws -> [TopKApproximation] {
        let r = recipe
        guard !r.data.heldout.isEmpty else { throw TeacherCacheError.noHeldout(recipe: r.path) }
        try FileManager.default.createFolder(r.output + "/data")
        let loaded = try ModelStore.load(teacherPath, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let tokenizer = try BertTokenizer.of(model: teacherPath, files: loaded.tokenizer)
        let heldout = try dataset(r.data.heldout, name: "heldout", tokenizer: tokenizer, events: events)
        let teacher = loaded.model, V = teacher.config.vocabSize
        if let k = ks.first(where: { $0 < 1 || $0 > V }) ?? (ks.isEmpty ? 0 : nil) { throw TeacherCacheError.compareK(k: k, vocabulary: V) }
        let student = try studentPath.map { try ModelStore.load($0, options: LoadOptions(dropPooler: true, dropPretrainingHeads: false)).model }
            ?? StudentBuilder.build(r.student, teacher: teacher, seed: streamKey(r.seed, 0x5354))
        if student.config.vocabSize != teacher.config.vocabSize {
            throw TeacherCacheError.studentVocabulary(student: studentPath ?? r.path, vocabulary: student.config.vocabSize, teacher: teacher.config.vocabSize)
        }
        if r.training.precision == .bf16 { teacher.convertMatricesToBF16(); student.convertMatricesToBF16() }
        let masker = MLMMasker(policy: r.data.masking, tokenizer: tokenizer)
        let masking = StaticMasking(masker: masker, seed: streamKey(r.seed, 0x4845_4C44))
        let B = r.training.batchSize
        let batches = stride(from: 0, to: min(heldout.count, B * r.evaluation.batches), by: B).map { s in
            masking.batch(Array(s..<min(heldout.count, s + B)), data: heldout, padId: tokenizer.padId, tokenTypes: teacher.config.hasTokenTypes)
        }
        let m = tailSamples ?? (r.teacherCache ?? TeacherCacheSpec()).tailSamples
        return try TopKApproximation.measure(teacher: teacher, student: student, batches: batches, ks: ks,
                                             tailSamples: m, seed: r.seed, temperature: r.loss.temperature, restrictToMask: r.loss.restrictCEToMask, source: "held-out")
    }
}
