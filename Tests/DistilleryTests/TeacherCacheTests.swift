import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryQuant
import DistilleryTraining
import DistilleryRecipes

/// The teacher-output cache ([teacher.cache], distill cache-teacher) on the tiny BERT teacher
/// (V = 512) over real English text: what it stores against the teacher run directly, the loss
/// it gives against the uncached one, and the caches it refuses.
final class TeacherCacheTests: XCTestCase {
    static func recipe(_ name: String, topK: Int, precision: String = "fp32", steps: Int = 4, extra: (String) -> String = { $0 }) throws -> String {
        let cache = """
        [teacher.cache]
        top_k = \(topK)
        precision = "\(precision)"
        path = "cache.dtc"

        [student]
        """
        let body = TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "\(steps)")
            .replacingOccurrences(of: "[student]", with: cache)
            .replacingOccurrences(of: "DATA/demo-train.txt", with: try smallTrainingText())
        return try TrainerTests.setUp("cache-\(name)", recipeBody: extra(body))
    }

    /// The first 600 lines of the demo's training text (about 750 sequences): every test
    /// here builds a cache over its training data, and the whole file would take most of the suite's time.
    static func smallTrainingText() throws -> String {
        let path = Fixtures.temporaryDirectory + "/cache-train.txt"
        if !FileManager.default.fileExists(atPath: path) {
            let text = try String(contentsOfFile: Fixtures.repositoryRoot + "/recipes/data/demo-train.txt", encoding: .utf8)
            try (text.split(separator: "\n", omittingEmptySubsequences: false).prefix(600).joined(separator: "\n") + "\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
        return path
    }

    /// The recipe's teacher, data, static masking and expected cache header, loaded as a run would.
    struct Setup {
        let recipe: Recipe
        let teacher: EncoderModel
        let tokenizer: BertTokenizer
        let train: TokenDataset
        let masking: StaticMasking
        let expected: TeacherCacheHeader
    }

    static func load(_ r: Recipe) throws -> Setup {
        let trainer = Trainer(recipe: r)
        let loaded = try ModelStore.load(trainer.teacherPath, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let tokenizer = try BertTokenizer.of(model: trainer.teacherPath, files: loaded.tokenizer)
        let train = try TokenDataset(path: r.output + "/data/train.tok")
        let masking = StaticMasking(masker: MLMMasker(policy: r.data.masking, tokenizer: tokenizer), seed: r.seed)
        let student = try r.studentConfig(teacher: loaded.model.config)
        let expected = try TeacherCacheStore.expectedHeader(recipe: r, spec: r.teacherCache!, teacher: loaded.model,
                                                            matches: try r.loss.resolvedMatches(teacher: loaded.model.config, student: student),
                                                            train: train, masking: masking)
        return Setup(recipe: r, teacher: loaded.model, tokenizer: tokenizer, train: train, masking: masking, expected: expected)
    }

    /// What the cache holds for a batch equals the teacher run on that batch directly: the
    /// statically masked ids and labels exactly, the k largest logits of each row (ids and
    /// values), the tail logit (the other tokens' mass at the recipe's T) and the last hidden
    /// state.
    func testRoundTripAgainstTheTeacher() throws {
        let r = try RecipeParser.load(try Self.recipe("roundtrip", topK: 16))
        let summary = try Trainer(recipe: r).buildTeacherCache(topK: nil, path: nil, overwrite: false)
        XCTAssertTrue(summary.built)
        let s = try Self.load(r)
        let reader = try TeacherCacheStore.open(r.teacherCachePath!, expected: s.expected)
        XCTAssertEqual(reader.sequences, s.train.count)
        try reader.verify()
        // Built again without --overwrite: kept.
        XCTAssertFalse(try Trainer(recipe: r).buildTeacherCache(topK: nil, path: nil, overwrite: false).built)

        let cached = CachedTeacherBatch(reader: reader, maxB: 8)
        let V = s.teacher.config.vocabSize, Ht = s.teacher.config.hiddenSize, Hh = s.teacher.config.headWidth, k = 16
        for indices in [[0, 1, 2, 3, 4, 5, 6, 7], [s.train.count - 1, 17, 5]] {
            let (batch, labels) = try cached.load(indices, lengths: s.train.length, padId: s.tokenizer.padId, tokenTypes: s.teacher.config.hasTokenTypes)
            let (direct, directLabels) = s.masking.batch(indices, data: s.train, padId: s.tokenizer.padId, tokenTypes: s.teacher.config.hasTokenTypes)
            XCTAssertEqual(batch, direct)
            XCTAssertEqual(labels, directLabels)
            XCTAssertGreaterThan(labels.filter { $0 >= 0 }.count, 0)
            let acts = try EncoderActivations(model: s.teacher, maxB: batch.B, maxS: batch.S, training: false)
            try s.teacher.forward(batch, acts)
            s.teacher.forwardHeadTransform(acts)
            let N = batch.B * batch.S
            var worstHidden: Float = 0
            for n in 0..<N where batch.attentionMask[n] != 0 {
                for j in 0..<Ht { worstHidden = max(worstHidden, abs(acts.lastHidden[n * Ht + j] - cached.lastHidden!.base[n * Ht + j])) }
            }
            XCTAssertLessThan(worstHidden, 1e-4)
            // Every real token is a soft-target row ("all"): its top k against a full sort.
            let logits = FloatBuffer(count: V), scratch = FloatBuffer(count: s.teacher.decoderScratch(rows: 1, training: false))
            for n in 0..<N where batch.attentionMask[n] != 0 {
                s.teacher.decoderLogits(logits.base, headOutput: acts.headOutput + n * Hh, rows: 1, scratch: scratch.base)
                let z = Array(UnsafeBufferPointer(start: logits.base, count: V))
                let order = z.indices.sorted { z[$0] > z[$1] }
                let row = Int(cached.rowOf[n])
                XCTAssertGreaterThanOrEqual(row, 0)
                for j in 0..<k {
                    let id = Int(cached.topIds[row * k + j]), v = cached.topValues.base[row * k + j]
                    XCTAssertEqual(v, z[order[j]], accuracy: 1e-4, "row \(n), rank \(j)")
                    XCTAssertEqual(z[id], v, accuracy: 1e-4, "row \(n), rank \(j): id \(id)")
                }
                // (V − k)·exp(z̄/T) is the mass of the tokens outside the top k, relative to the top one.
                let T = Double(r.loss.temperature), top = Double(z[order[0]])
                let tailMass = order[k...].reduce(0.0) { $0 + Foundation.exp((Double(z[$1]) - top) / T) }
                let stored = Double(V - k) * Foundation.exp((Double(cached.tails.base[row]) - top) / T)
                XCTAssertEqual(stored, tailMass, accuracy: 1e-4 * tailMass, "row \(n): tail")
                // The tail's Σ p log p, and its draws: tokens of the tail, none of the top k.
                let lse = top / T + Foundation.log(order.reduce(0.0) { $0 + Foundation.exp((Double(z[$1]) - top) / T) })
                let plogp = order[k...].reduce(0.0) { let lp = Double(z[$1]) / T - lse; return $0 + Foundation.exp(lp) * lp }
                XCTAssertEqual(Double(cached.plogps.base[row]), plogp, accuracy: 1e-4 * abs(plogp), "row \(n): tail Σ p log p")
                let m = reader.header.tailSamples, top_ = Set((0..<k).map { Int(cached.topIds[row * k + $0]) })
                XCTAssertEqual(m, 256)
                for d in 0..<m {
                    let id = Int(cached.draws[row * m + d])
                    XCTAssertTrue(id >= 0 && id < V && !top_.contains(id), "row \(n): draw \(d) is \(id)")
                }
            }
        }
    }

    /// With k = the whole vocabulary (and fp32 hidden states), the step reading the cache gives
    /// the losses and gradients of the step running the teacher on the same static masks.
    func testFullVocabularyCacheGivesTheUncachedLoss() throws {
        try checkFullVocabulary("fullk") { $0 }
    }

    /// The same with layer matches: the cached hidden states and q|k|v serve hidden_mse,
    /// relation and attention_kl as the teacher run does.
    func testFullVocabularyCacheServesLayerMatches() throws {
        try checkFullVocabulary("fullk-matches") {
            $0.replacingOccurrences(of: "[optimizer]", with: TrainerTests.layerMatchTables + "[optimizer]")
        }
    }

    func checkFullVocabulary(_ name: String, _ extra: @escaping (String) -> String) throws {
        let r = try RecipeParser.load(try Self.recipe(name, topK: 512, extra: extra))
        try Trainer(recipe: r).buildTeacherCache(topK: nil, path: nil, overwrite: false)
        let s = try Self.load(r)
        let reader = try TeacherCacheStore.open(r.teacherCachePath!, expected: s.expected)
        let student = try StudentBuilder.build(r.student, teacher: s.teacher, seed: 5)
        let params = TrainableParameters(model: student, projectTo: nil)
        let step = try DistillationStep(teacher: s.teacher, params: params, settings: r.loss, maxB: 8, maxS: r.data.maxSequenceLength)
        let cached = CachedTeacherBatch(reader: reader, maxB: 8)
        for indices in [Array(0..<8), [40, 3, 99, 12, 7]] {
            let (batch, labels) = s.masking.batch(indices, data: s.train, padId: s.tokenizer.padId, tokenTypes: s.teacher.config.hasTokenTypes)
            // The cached step first: what the teacher's run leaves in the step's buffers must
            // not be what the cached one reads.
            let (cb, cl) = try cached.load(indices, lengths: s.train.length, padId: s.tokenizer.padId, tokenTypes: s.teacher.config.hasTokenTypes)
            let fromCache = try step.run(cb, labels: cl, cached: cached)
            let g1 = Array(UnsafeBufferPointer(start: params.gradients.base, count: params.layout.count))
            params.gradients.zero()
            let plain = try step.run(batch, labels: labels)
            let g0 = Array(UnsafeBufferPointer(start: params.gradients.base, count: params.layout.count))
            params.gradients.zero()
            XCTAssertEqual(plain.matches.count, r.loss.matches.count)
            let matches = zip(plain.matches, fromCache.matches).enumerated().map { ("match \($0.offset)", $0.element.0, $0.element.1) }
            for (name, a, b) in [("ce", plain.ce, fromCache.ce), ("mlm", plain.mlm, fromCache.mlm), ("cos", plain.cos, fromCache.cos),
                                 ("total", plain.total, fromCache.total)] + matches {
                XCTAssertGreaterThan(a, 0, name)
                XCTAssertEqual(b, a, accuracy: 1e-5 * abs(a), "\(name): cached \(b), teacher run \(a)")
            }
            let scale = g0.reduce(Float(0)) { max($0, abs($1)) }
            XCTAssertGreaterThan(scale, 0)
            XCTAssertLessThan(maxAbsDifference(g0, g1), 1e-4 * scale)
        }
    }

    /// Damaged files are refused naming the file: a flipped byte in a sequence's checksum, in
    /// the header, a truncated file.
    func testDamagedCachesAreRefused() throws {
        let r = try RecipeParser.load(try Self.recipe("damaged", topK: 8, precision: "bf16"))
        try Trainer(recipe: r).buildTeacherCache(topK: nil, path: nil, overwrite: false)
        let path = r.teacherCachePath!
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        let reader = try TeacherCacheReader(path: path)
        try reader.verify()
        let damaged = Fixtures.temporaryDirectory + "/damaged.dtc"
        func expectRefusal(_ bytes: Data, _ what: String, _ check: (TeacherCacheFileError) -> Bool) throws {
            try bytes.write(to: URL(fileURLWithPath: damaged))
            do {
                let rd = try TeacherCacheReader(path: damaged)
                try rd.verify()
                XCTFail("\(what): accepted")
            } catch let e as TeacherCacheFileError {
                XCTAssertTrue(e.description.contains(damaged), "\(what): \(e)")
                XCTAssertTrue(check(e), "\(what): \(e)")
            }
        }
        // The last 4 bytes of sequence 3's frame are its content checksum.
        let e = reader.entries[3]
        var flipped = good
        flipped[e.offset + e.compressedBytes - 2] ^= 0x10
        try expectRefusal(flipped, "checksum") { if case .sequence(_, 3, let why) = $0 { return why.lowercased().contains("checksum") }; return false }
        // A byte inside a frame's compressed content.
        flipped = good
        flipped[e.offset + e.compressedBytes / 2] ^= 0x01
        try expectRefusal(flipped, "frame content") { if case .sequence(_, 3, _) = $0 { return true }; return false }
        // The JSON header.
        flipped = good
        flipped[TeacherCacheHeader.prefixSize + 5] ^= 0x01
        try expectRefusal(flipped, "header") { if case .header(_, let why) = $0 { return why.contains("checksum") }; return false }
        // Truncated: at the index, and inside the frames.
        try expectRefusal(good.prefix(good.count - 3), "truncated index") { if case .index = $0 { return true }; return false }
        try expectRefusal(good.prefix(e.offset + 10), "truncated frames") { if case .index = $0 { return true }; return false }
        try expectRefusal(good.prefix(20), "truncated prefix") { if case .notACache = $0 { return true }; return false }
    }

    /// Records whose checksums are right but whose values are not are refused naming the
    /// sequence and the value: a tail draw or a top-k id outside the vocabulary, a tail
    /// Σ p log p above 0 or below −log V, a tail logit of +∞ or NaN; and a version-2 file (the even tail only).
    func testHostileRecordValuesAreRefused() throws {
        let V = 100, L = 3, k = 4, m = 8
        let header = TeacherCacheHeader(teacher: "t", data: "d", vocabularySize: V, maxSequenceLength: 8, sequences: 1, tokens: L,
                                        masking: "static", topK: k, softTargetRows: "all", tailTemperature: 2, teacherWidth: 4, precision: "fp32",
                                        lastHidden: false, hiddenLayers: [], qkvLayers: [], tailSamples: m)
        let layout = TeacherCacheRecordLayout(header, tokens: L, rows: L)!
        let path = Fixtures.temporaryDirectory + "/hostile-values.dtc"
        func write(_ edit: (UnsafeMutableRawPointer) -> Void) throws {
            let rec = AlignedBuffer<UInt8>(count: layout.size)
            rec.zero()
            let base = UnsafeMutableRawPointer(rec.base)
            for p in 0..<L { (base + layout.ids).assumingMemoryBound(to: Int32.self)[p] = 5; (base + layout.labels).assumingMemoryBound(to: Int32.self)[p] = -100 }
            for j in 0..<(L * k) { (base + layout.topIds).assumingMemoryBound(to: UInt16.self)[j] = UInt16(j % k) }
            for j in 0..<(L * m) { (base + layout.draws).assumingMemoryBound(to: UInt16.self)[j] = UInt16(k + j % 7) }
            for r in 0..<L { (base + layout.tail).assumingMemoryBound(to: Float.self)[r] = -1; (base + layout.tailPlogp).assumingMemoryBound(to: Float.self)[r] = -0.5 }
            edit(base)
            let w = try TeacherCacheWriter(path: path, header: header)
            try w.append(sequence: 0, frame: try TeacherCacheWriter.compress(UnsafeRawBufferPointer(start: rec.base, count: layout.size)), tokens: L, rows: L)
            try w.commit()
        }
        try write { _ in }
        try TeacherCacheReader(path: path).verify()
        func refused(_ phrase: String, _ edit: (UnsafeMutableRawPointer) -> Void) throws {
            try write(edit)
            XCTAssertThrowsError(try TeacherCacheReader(path: path).verify(), phrase) { e in
                guard case TeacherCacheFileError.sequence(let p, 0, let why) = e else { return XCTFail("\(phrase): \(e)") }
                XCTAssertEqual(p, path)
                XCTAssertTrue(why.contains(phrase), "\(phrase): \(why)")
            }
        }
        try refused("tail draw 100 is outside the 100-token vocabulary") { ($0 + layout.draws).assumingMemoryBound(to: UInt16.self)[13] = 100 }
        try refused("top-k id 65535 is outside") { ($0 + layout.topIds).assumingMemoryBound(to: UInt16.self)[2] = 65535 }
        try refused("Σ p log p of row 1 is 0.25") { ($0 + layout.tailPlogp).assumingMemoryBound(to: Float.self)[1] = 0.25 }
        try refused("Σ p log p of row 2 is -7") { ($0 + layout.tailPlogp).assumingMemoryBound(to: Float.self)[2] = -7 }
        try refused("Σ p log p of row 0 is nan") { ($0 + layout.tailPlogp).assumingMemoryBound(to: Float.self)[0] = .nan }
        try refused("tail logit of row 1 is inf") { ($0 + layout.tail).assumingMemoryBound(to: Float.self)[1] = .infinity }
        try refused("tail logit of row 0 is nan") { ($0 + layout.tail).assumingMemoryBound(to: Float.self)[0] = .nan }
        // A header whose largest record (max_seq_len rows of top_k) cannot be sized is refused on
        // open: a reader's buffer is sized by it, and a small record must not be read past it.
        var huge = TeacherCacheHeader(teacher: "t", data: "d", vocabularySize: 1 << 21, maxSequenceLength: 65536, sequences: 1, tokens: 1,
                                      masking: "static", topK: 1 << 21, softTargetRows: "all", tailTemperature: 2, teacherWidth: 4, precision: "fp32",
                                      lastHidden: false, hiddenLayers: [], qkvLayers: [])
        huge.dataPath = "d"
        let small = TeacherCacheRecordLayout(huge, tokens: 1, rows: 1)!
        let zeros = AlignedBuffer<UInt8>(count: small.size)
        zeros.zero()
        let hw = try TeacherCacheWriter(path: path, header: huge)
        try hw.append(sequence: 0, frame: try TeacherCacheWriter.compress(UnsafeRawBufferPointer(start: zeros.base, count: small.size)), tokens: 1, rows: 1)
        try hw.commit()
        XCTAssertThrowsError(try TeacherCacheReader(path: path)) { e in
            guard case TeacherCacheFileError.header(let p, let why) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(p, path)
            XCTAssertTrue(why.contains("too large"), why)
        }
        // A version-2 cache (before the draws) asks to be built again.
        try write { _ in }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[8] = 2
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TeacherCacheReader(path: path)) { e in
            XCTAssertEqual(e as? TeacherCacheFileError, .unsupportedVersion(path: path, version: 2))
            XCTAssertTrue("\(e)".contains("build it again"), "\(e)")
        }
    }

    /// A cache built for another teacher, other data or another k is refused by the run,
    /// naming the file and what differs.
    func testMismatchedCachesAreRefused() throws {
        let base = try Self.recipe("mismatch", topK: 16)
        let r = try RecipeParser.load(base)
        try Trainer(recipe: r).buildTeacherCache(topK: nil, path: nil, overwrite: false)
        let cache = r.teacherCachePath!
        let folder = URL(fileURLWithPath: base).deletingLastPathComponent().path
        func refused(_ body: String, _ name: String, _ phrase: String) throws {
            let path = folder + "/\(name).toml"
            try body.replacingOccurrences(of: "output = \"run\"", with: "output = \"run-\(name)\"")
                .replacingOccurrences(of: "path = \"cache.dtc\"", with: "path = \"\(cache)\"")
                .write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try Trainer(recipe: try RecipeParser.load(path)).run()) { e in
                XCTAssertTrue(e is TeacherCacheError, "\(name): \(e)")
                XCTAssertTrue("\(e)".contains(cache), "\(name): \(e)")
                XCTAssertTrue("\(e)".contains(phrase), "\(name): \(e)")
            }
        }
        let text = try String(contentsOfFile: base, encoding: .utf8)
        try refused(text.replacingOccurrences(of: "top_k = 16", with: "top_k = 8"), "k", "other k: built with top_k = 16, the recipe asks for 8")
        try refused(text.replacingOccurrences(of: try Self.smallTrainingText(), with: Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"),
                    "data", "other data")
        try refused(text.replacingOccurrences(of: "top_k = 16", with: "top_k = 16\ntail_samples = 32"), "draws",
                    "other tail draws: built with tail_samples = 256, the recipe asks for 32")
        // Another teacher: the same one with one weight changed.
        let loaded = try ModelStore.load(folder + "/teacher", options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        loaded.model.parameters.base[loaded.model.layout.count / 2] += 0.01
        try HuggingFaceFolder.save(loaded.model, tokenizer: loaded.tokenizer, to: folder + "/teacher2")
        try refused(text.replacingOccurrences(of: "model = \"teacher\"", with: "model = \"teacher2\""), "teacher", "other teacher")
        // The same recipe is served.
        try refused(text.replacingOccurrences(of: "alpha_cos = 1.0", with: "alpha_cos = 0.0"), "losses", "last_hidden")
    }

    /// A recipe with [teacher.cache] builds the cache, trains from it (the loss falls), and
    /// distill validate says that masking is static; losses the cache cannot serve are refused.
    func testRecipeRunWithCacheTrains() throws {
        let path = try Self.recipe("run", topK: 32, precision: "bf16", steps: 120) { $0.replacingOccurrences(of: "lr = 1e-3", with: "lr = 3e-3") }
        let r = try RecipeParser.load(path)
        XCTAssertTrue(try RecipePlan(r).summary.contains("masking is static"))
        var losses: [Double] = [], mlm: [Double] = []
        var messages: [String] = []
        let summary = try Trainer(recipe: r).run(events: {
            if case .step(let s) = $0 { losses.append(s.losses.total); mlm.append(s.losses.mlm) }
            if case .message(let m) = $0 { messages.append(m) }
        })
        XCTAssertTrue(FileManager.default.fileExists(atPath: r.teacherCachePath!))
        XCTAssertTrue(messages.contains { $0.contains("static masking") }, "\(messages)")
        XCTAssertEqual(losses.count, 120)
        func mean(_ x: ArraySlice<Double>) -> Double { x.reduce(0, +) / Double(x.count) }
        let first = mean(losses.prefix(10)), last = mean(losses.suffix(10))
        let mlmFirst = mean(mlm.prefix(10)), mlmLast = mean(mlm.suffix(10))
        print("cached run: loss_total first 10 steps \(first), last 10 \(last); MLM \(mlmFirst) → \(mlmLast)")
        // The total falls; most of it is the MLM loss here: the soft-target KL of a student made
        // of the teacher's own layer starts near 0 (top k plus tail is close to the full KL) and
        // can only grow as the labels pull the student away.
        XCTAssertLessThan(last, 0.9 * first)
        XCTAssertLessThan(mlmLast, 0.8 * mlmFirst)
        XCTAssertNotNil(summary.studentFolder)

        let mse = try Self.recipe("mse", topK: 8) { $0.replacingOccurrences(of: "alpha_cos = 1.0", with: "alpha_cos = 1.0\nalpha_mse = 1.0") }
        XCTAssertThrowsError(try RecipePlan(try RecipeParser.load(mse))) { e in XCTAssertTrue("\(e)".contains("alpha_mse"), "\(e)") }
        // The tails are stored for one temperature: a temperature schedule is refused.
        let scheduled = try Self.recipe("scheduled", topK: 8) { $0.replacingOccurrences(of: "temperature = 2.0", with: "temperature = { start = 4.0, end = 1.0 }") }
        XCTAssertThrowsError(try RecipePlan(try RecipeParser.load(scheduled))) { e in XCTAssertTrue("\(e)".contains("schedules temperature"), "\(e)") }
    }
}
