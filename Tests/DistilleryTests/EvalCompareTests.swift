import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryEvaluation
import DistilleryTraining
import DistilleryCLI

/// `distill quantize`, `eval` and `compare`: the evaluator against PyTorch's logits, int8
/// checkpoints through every command, and the errors bad int8 files get.
final class EvalCompareTests: XCTestCase {
    /// MLM accuracy and loss from our forward pass equal those computed from the logits
    /// PyTorch produced for the same batch; against itself a model agrees everywhere.
    func testEvaluatorMatchesPyTorchLogits() throws {
        let folder = Fixtures.path("tiny-bert-mlm")
        let ref = try SafetensorsFile(path: folder + "/reference.safetensors")
        let batch = try TokenBatch.read(from: ref)
        let logits = try ref.floats("logits")
        let V = 512, N = batch.B * batch.S
        // Targets at every other real position: the reference's arg max at some, other tokens elsewhere.
        var labels = [Int32](repeating: -1, count: N)
        var expectedCorrect = 0, expectedLoss = 0.0, targets = 0
        for n in 0..<N where batch.attentionMask[n] != 0 && n % 2 == 0 {
            let row = Array(logits[(n * V)..<((n + 1) * V)]).map(Double.init)
            let best = row.indices.max { row[$0] < row[$1] }!
            let label = n % 4 == 0 ? best : (best + 1 + n) % V
            labels[n] = Int32(label)
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            expectedLoss += lse - row[label]
            if label == best { expectedCorrect += 1 }
            targets += 1
        }
        let set = EvalSet(batches: [EvalSet.Batch(plain: batch, masked: batch, labels: labels)])
        let model = try HuggingFaceFolder.load(folder).model
        let r = try Evaluator.evaluate(model, reference: model, on: set)
        XCTAssertEqual(r.targets, targets)
        XCTAssertEqual(r.tokens, Int(batch.attentionMask.reduce(0, +)))
        XCTAssertEqual(r.mlmAccuracy!, Double(expectedCorrect) / Double(targets), accuracy: 1e-12)
        XCTAssertEqual(r.mlmLoss!, expectedLoss / Double(targets), accuracy: 1e-4)
        XCTAssertEqual(r.top1Agreement, 1)
        XCTAssertEqual(r.kl!, 0, accuracy: 1e-9)
        XCTAssertEqual(r.hiddenCosine!, 1, accuracy: 1e-6)
        XCTAssertEqual(r.sentenceCosine!, 1, accuracy: 1e-6)
    }

    /// A trainer evaluates a changing student against a frozen teacher: with a reference cache
    /// the teacher runs at the first evaluation only, and every report is what the uncached
    /// evaluation gives, bit for bit. The cache serves only the reference it was made for, and
    /// keeps nothing past its budget.
    func testReferenceCacheReusesTheTeachersPass() throws {
        let folder = Fixtures.path("tiny-bert-mlm")
        let batch = try TokenBatch.read(from: try SafetensorsFile(path: folder + "/reference.safetensors"))
        let labels = [Int32](repeating: -1, count: batch.B * batch.S)
        let set = EvalSet(batches: [EvalSet.Batch(plain: batch, masked: batch, labels: labels),
                                    EvalSet.Batch(plain: batch, masked: batch, labels: labels)])
        let teacher = try HuggingFaceFolder.load(folder).model
        let student = try HuggingFaceFolder.load(folder).model
        let cache = ReferenceHiddenCache(reference: teacher)
        for round in 0..<3 {
            // The student moves between evaluations, as it does while training.
            for i in stride(from: round, to: student.layout.count, by: 7) { student.parameters.base[i] *= 0.9 }
            let plain = try Evaluator.evaluate(student, reference: teacher, on: set)
            let cached = try Evaluator.evaluate(student, reference: teacher, on: set, referenceCache: cache)
            XCTAssertEqual(cached, plain, "round \(round)")
            XCTAssertLessThan(plain.hiddenCosine!, 1)
            XCTAssertEqual(cache.misses, 2, "the teacher ran for the first evaluation's two batches only")
            XCTAssertEqual(cache.hits, 2 * round)
        }
        // Another reference: the cache is not consulted.
        let other = try HuggingFaceFolder.load(folder).model
        other.parameters.base[0] += 1
        let r = try Evaluator.evaluate(student, reference: other, on: set, referenceCache: cache)
        XCTAssertEqual(r, try Evaluator.evaluate(student, reference: other, on: set))
        XCTAssertEqual(cache.hits, 4)
        // A budget smaller than a batch keeps nothing.
        let small = ReferenceHiddenCache(reference: teacher, budgetBytes: 16)
        for _ in 0..<2 { _ = try Evaluator.evaluate(student, reference: teacher, on: set, referenceCache: small) }
        XCTAssertEqual(small.hits, 0)
        XCTAssertEqual(small.misses, 4)
    }

    /// Held-out batches hold the first batches × batch-size sequences of the file, each once,
    /// grouped by length, longest first, so each batch pads only to its own longest; beyond
    /// the file (or a count that overflows) they hold every sequence. Each sequence carries the
    /// masks it got when the batches were cut in file order.
    func testEvalSetBatchesTheFirstSequencesByLength() throws {
        let t = TokenizerTests.tokenizer
        let wordCounts = [3, 9, 1, 12, 5, 5, 7, 2, 20, 4]
        let text = wordCounts.enumerated().map { line, k in (["line\(line)"] + (1...k).map { "w\($0)" }).joined(separator: " ") }
            .joined(separator: "\n") + "\n"
        let input = Fixtures.temporaryDirectory + "/evalset-lines.txt", out = input + ".tok"
        try Data(text.utf8).write(to: URL(fileURLWithPath: input))
        _ = try Corpus.prepare(inputs: [input], tokenizer: t, maxSequenceLength: 64, unit: .lines, output: out)
        let data = try TokenDataset(path: out)
        XCTAssertEqual(data.count, wordCounts.count)
        // (plain, masked, labels) of each sequence in a batch, over its real positions.
        func rows(_ S: Int, _ mask: [Float], _ plain: [Int32], _ masked: [Int32], _ labels: [Int32]) -> [[[Int32]]] {
            (0..<(mask.count / S)).map { r in
                let real = (0..<S).filter { mask[r * S + $0] != 0 }.map { r * S + $0 }
                return [real.map { plain[$0] }, real.map { masked[$0] }, real.map { labels[$0] }]
            }
        }
        let masker = MLMMasker(policy: MaskingPolicy(), tokenizer: t)
        for (batchSize, maxBatches, chosen) in [(3, 2, 6), (4, 1, 4), (3, 100, 10), (2, Int.max, 10)] {
            let set = EvalSet.make(data, tokenizer: t, batchSize: batchSize, maxBatches: maxBatches, withTokenTypes: false)
            let got = set.batches.flatMap { b in rows(b.plain.S, b.plain.attentionMask, b.plain.inputIds, b.masked.inputIds, b.labels) }
            // The masks of file-order batches keyed by their index, what the set carried before.
            var wanted: [[[Int32]]] = []
            for (j, first) in stride(from: 0, to: chosen, by: batchSize).enumerated() {
                let c = data.collate(Array(first..<min(chosen, first + batchSize)), padId: t.padId)
                let m = masker.apply(TokenBatchView(inputIds: c.ids, attentionMask: c.mask), key: streamKey(0xE7A1, UInt64(j)))
                wanted += rows(c.S, c.mask, c.ids, m.inputIds, m.labels)
            }
            let what = "\(batchSize) × \(maxBatches)"
            XCTAssertEqual(got.count, chosen, what)
            XCTAssertEqual(wanted.map { $0[0] }, (0..<chosen).map { data.sequence($0) }, what)
            XCTAssertEqual(Set(got), Set(wanted), what)
            // The lengths in order cut into batches (full ones but the longest), served longest
            // batch first so the first batch sizes the models' workspaces.
            let ascending = wanted.map { $0[0].count }.sorted()
            let cut = stride(from: 0, to: chosen, by: batchSize).map { Array(ascending[$0..<min(chosen, $0 + batchSize)]) }
            XCTAssertEqual(got.map { $0[0].count }, Array(cut.reversed().joined()), what)
            XCTAssertEqual(set.batches.map(\.plain.B), cut.reversed().map(\.count), what)
            XCTAssertGreaterThan(got.reduce(0) { $0 + $1[2].filter { $0 >= 0 }.count }, 0, what)
            for b in set.batches {
                XCTAssertLessThanOrEqual(b.plain.B, batchSize, what)
                XCTAssertEqual(b.plain.S, rows(b.plain.S, b.plain.attentionMask, b.plain.inputIds, b.masked.inputIds, b.labels).map { $0[0].count }.max(), what)
                XCTAssertEqual(b.masked.attentionMask, b.plain.attentionMask, what)
                // Padding keeps the pad id and no target.
                for n in 0..<(b.plain.B * b.plain.S) where b.plain.attentionMask[n] == 0 {
                    XCTAssertEqual(b.masked.inputIds[n], t.padId, what); XCTAssertEqual(b.labels[n], -100, what)
                }
            }
        }
        XCTAssertTrue(EvalSet.make(data, tokenizer: t, batchSize: 4, maxBatches: 0, withTokenTypes: false).batches.isEmpty)
        XCTAssertTrue(EvalSet.make(data, tokenizer: t, batchSize: 0, maxBatches: 4, withTokenTypes: false).batches.isEmpty)
    }

    /// An int8 checkpoint of the tiny teacher: smaller, close to fp32, and accepted by forward,
    /// eval, compare and bench.
    func testQuantizedCheckpointThroughTheCommands() throws {
        let (dir, teacher, ck, summary) = try Fixtures.tinyTeacherWithInt8("int8-commands")
        XCTAssertGreaterThan(summary.quantizedMatrices, 0)
        XCTAssertEqual(summary.fp32Matrices, 1, "the token-type table stays fp32")
        let stored = try Checkpoint(path: ck)
        XCTAssertNil(stored.tensors.first { $0.name.hasSuffix("token_type_embeddings.weight.scale") })
        XCTAssertEqual(stored.tensors.first { $0.name.hasSuffix("token_type_embeddings.weight") }?.dtype.rawValue, "F32")
        XCTAssertNotNil(stored.tensors.first { $0.name.hasSuffix("word_embeddings.weight.scale") })
        XCTAssertLessThan(summary.rawBytes, summary.fp32Bytes / 2)

        let int8 = try ModelStore.open(ck)
        XCTAssertTrue(int8.model.precision.hasPrefix("int8"), int8.model.precision)
        XCTAssertNotNil(try QuantizationScheme.read(int8.metadata, path: ck))
        XCTAssertNotNil(int8.tokenizer.vocabulary)
        // Against PyTorch's fp32 outputs: the last hidden state stays close row by row.
        let ref = try SafetensorsFile(path: Fixtures.path("tiny-bert-mlm/reference.safetensors"))
        let batch = try TokenBatch.read(from: ref)
        let outputs = try int8.model.referenceOutputs(batch)
        XCTAssertEqual(Set(outputs.map(\.name)), Set(ref.tensors.filter { $0.name.hasPrefix("hidden") || $0.name == "logits" }.map(\.name)))
        let last = outputs.first { $0.name == "hidden_states.2" }!.floats, expected = try ref.floats("hidden_states.2")
        let H = 64
        for row in 0..<(batch.B * batch.S) where batch.attentionMask[row] != 0 {
            let a = Array(last[(row * H)..<((row + 1) * H)]), b = Array(expected[(row * H)..<((row + 1) * H)])
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let cos = dot / (a.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot() * b.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())
            XCTAssertGreaterThan(cos, 0.995, "row \(row)")
        }

        var settings = ComparisonSettings()
        settings.maxBatches = 2
        settings.shapes = [(B: 2, S: 32)]
        settings.warmup = 0
        settings.iterations = 1
        let data = Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"
        let report = try Comparison.run(models: [teacher, ck], data: data, settings: settings)
        XCTAssertEqual(report.rows.count, 2)
        let (fp32, q) = (report.rows[0], report.rows[1])
        XCTAssertEqual(fp32.precision, "fp32")
        XCTAssertEqual(fp32.parameters, q.parameters)
        XCTAssertEqual(q.bytesOnDisk, try FileManager.default.attributesOfItem(atPath: ck)[.size] as? Int)
        XCTAssertLessThan(q.bytesOnDisk, fp32.bytesOnDisk / 2)
        XCTAssertEqual(fp32.timings.map(\.sequence), [32])
        XCTAssertNotNil(fp32.evaluation.mlmAccuracy)
        XCTAssertNil(fp32.evaluation.top1Agreement, "the first model is the reference")
        XCTAssertGreaterThan(q.evaluation.top1Agreement!, 0.8)
        XCTAssertGreaterThan(q.evaluation.sentenceCosine!, 0.99)
        XCTAssertEqual(q.evaluation.mlmAccuracy!, fp32.evaluation.mlmAccuracy!, accuracy: 0.05)

        // The same through the command line.
        try distill(["quantize", teacher, dir + "/cli-int8.safetensors.zst", "--keep-fp32", "word_embeddings", "--json"])
        try distill(["eval", "--model", ck, "--reference", teacher, "--data", data, "--batches", "1", "--json"])
        try distill(["eval", "--model", ck, "--data", data, "--batches", "1"])
        try distill(["compare", teacher, ck, dir + "/cli-int8.safetensors.zst", "--data", data, "--batches", "1",
                 "--iterations", "1", "--shapes", "2x16"])
        try distill(["bench", "forward", "--model", ck, "--batch", "2x16", "--iterations", "1", "--warmup", "0"])
        let fwd = dir + "/forward-int8.safetensors"
        try distill(["forward", "--model", ck, "--batch", Fixtures.path("tiny-bert-mlm/reference.safetensors"), "--out", fwd])
        XCTAssertEqual(try SafetensorsFile(path: fwd).metadata["precision"], int8.model.precision)
        // Converting back gives an fp32 Hugging Face folder.
        try distill(["convert", ck, dir + "/back"])
        XCTAssertEqual(try HuggingFaceFolder.load(dir + "/back").model.config.hiddenSize, 64)

        XCTAssertThrowsError(try distill(["quantize", ck, dir + "/again.safetensors.zst"])) { e in
            XCTAssertTrue("\(e)".contains("already int8"), "\(e)")
        }
        XCTAssertThrowsError(try distill(["quantize", teacher, dir + "/k.safetensors.zst", "--keep-fp32", "no_such_layer"])) { e in
            XCTAssertTrue("\(e)".contains("no_such_layer"), "\(e)")
        }
        XCTAssertThrowsError(try distill(["eval", "--model", teacher, "--data", dir + "/missing.txt"])) { e in
            XCTAssertTrue("\(e)".contains("missing.txt"), "\(e)")
        }

        // Keeping one of query/key/value keeps all three (they run as one matrix), and the
        // checkpoint runs.
        let keptQuery = dir + "/kept-query.safetensors.zst"
        let kept = try Quantizer.quantize(input: teacher, output: keptQuery, scheme: QuantizationScheme(keptFP32: ["attention.self.query"]))
        XCTAssertEqual(kept.fp32Matrices, 3 * 2 + 1, "Q, K and V of both layers, and the token-type table")
        let keptOutputs = try ModelStore.open(keptQuery).model.referenceOutputs(batch)
        XCTAssertTrue(keptOutputs.allSatisfy { $0.floats.allSatisfy(\.isFinite) })

        // A reference with another vocabulary cannot be compared token by token.
        let other = dir + "/other-vocab"
        try Fixtures.makeTinyTeacher(at: other)
        var words = try String(contentsOfFile: other + "/vocab.txt", encoding: .utf8).split(separator: "\n").map(String.init)
        words.swapAt(words.count - 1, words.count - 2)
        try (words.joined(separator: "\n") + "\n").write(toFile: other + "/vocab.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try distill(["eval", "--model", ck, "--reference", other, "--data", data, "--batches", "1"])) { e in
            XCTAssertTrue("\(e)".contains("different vocabularies"), "\(e)")
        }
    }

    /// Weights that are not numbers are refused before quantizing, naming the tensor.
    func testNonFiniteWeightsAreRefused() throws {
        let dir = Fixtures.temporaryDirectory + "/int8-nan"
        try? FileManager.default.removeItem(atPath: dir)
        let teacher = dir + "/teacher"
        try Fixtures.makeTinyTeacher(at: teacher)
        let file = try SafetensorsFile(path: teacher + "/model.safetensors")
        let name = "bert.encoder.layer.1.output.dense.weight"
        let tensors = try file.tensors.map { t -> OwnedTensor in
            var v = try file.floats(t.name)
            if t.name == name { v[17] = .nan }
            return OwnedTensor(name: t.name, shape: t.shape, floats: v)
        }
        try Safetensors.write(tensors, to: teacher + "/model.safetensors")
        XCTAssertThrowsError(try Quantizer.quantize(input: teacher, output: dir + "/out.safetensors.zst")) { e in
            XCTAssertTrue("\(e)".contains(name) && "\(e)".contains("NaN"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out.safetensors.zst"))
    }

    /// A damaged int8 checkpoint fails to load with the tensor or key named.
    func testBadInt8Checkpoints() throws {
        let (dir, _, ck, _) = try Fixtures.tinyTeacherWithInt8("int8-bad")
        let c = try Checkpoint(path: ck)
        let all = try Fixtures.ownedTensors(of: c)
        func rewrite(_ tensors: [OwnedTensor], metadata: [String: String] = c.metadata, _ name: String) throws -> String {
            let path = dir + "/" + name + ".safetensors.zst"
            try Safetensors.withPayloads(tensors) { _ = try CheckpointWriter.write($0, metadata: metadata, to: path) }
            return path
        }
        func expectError(_ path: String, mentioning text: String) {
            XCTAssertThrowsError(try ModelStore.open(path)) { XCTAssertTrue("\($0)".contains(text), "\($0)") }
            XCTAssertThrowsError(try ModelStore.load(path)) { XCTAssertTrue("\($0)".contains(text), "\($0)") }
        }
        let scale = "bert.encoder.layer.0.attention.self.query.weight.scale"
        XCTAssertTrue(all.contains { $0.name == scale })
        expectError(try rewrite(all.filter { $0.name != scale }, "no-scale"), mentioning: scale)
        expectError(try rewrite(all.map { $0.name == scale ? OwnedTensor(name: scale, shape: [3], floats: [1, 2, 3]) : $0 }, "short-scale"),
                    mentioning: scale)
        expectError(try rewrite(all + [OwnedTensor(name: "bert.encoder.extra", shape: [1], floats: [0])], "extra"), mentioning: "bert.encoder.extra")
        // Scales and smoothing factors must be usable numbers; embedding tables are not smoothed.
        let smooth = "bert.encoder.layer.0.attention.self.query.weight.smooth"
        XCTAssertTrue(all.contains { $0.name == smooth }, "the QKV input is smoothed by default")
        expectError(try rewrite(all.map { $0.name == smooth ? OwnedTensor(name: smooth, shape: $0.shape, floats: [Float](repeating: 0, count: $0.shape[0])) : $0 },
                                "zero-smooth"), mentioning: smooth)
        expectError(try rewrite(all.map { $0.name == scale ? OwnedTensor(name: scale, shape: $0.shape, floats: [Float](repeating: .infinity, count: $0.shape[0])) : $0 },
                                "inf-scale"), mentioning: scale)
        let wordSmooth = "bert.embeddings.word_embeddings.weight.smooth"
        expectError(try rewrite(all + [OwnedTensor(name: wordSmooth, shape: [64], floats: [Float](repeating: 1, count: 64))], "smoothed-embeddings"),
                    mentioning: wordSmooth)
        var meta = c.metadata
        meta[QuantizationScheme.metadataKey] = "{not json"
        let badMeta = try rewrite(all, metadata: meta, "bad-scheme")
        XCTAssertThrowsError(try ModelStore.open(badMeta)) { XCTAssertTrue("\($0)".contains(QuantizationScheme.metadataKey), "\($0)") }

        // Outlier channels: inside the input, distinct and ascending, with finite columns of the
        // right shape; present exactly where the scheme says.
        let channels = "bert.encoder.layer.0.attention.self.query.weight.outlier_channels"
        let columns = "bert.encoder.layer.0.attention.self.query.weight.outliers"
        let k = QuantizationScheme().outlierChannels
        XCTAssertEqual(all.first { $0.name == channels }?.shape, [k], "the QKV input has outlier channels by default")
        func ints(_ v: [Int32]) -> OwnedTensor { OwnedTensor(name: channels, dtype: .I32, shape: [v.count], data: v.withUnsafeBytes { Array($0) }) }
        for (label, bad) in [("outside", [Int32(1), 64]), ("negative", [-1, 3]), ("repeated", [5, 5]), ("descending", [7, 2])] {
            expectError(try rewrite(all.map { $0.name == channels ? ints(bad) : $0 }, "channels-\(label)"), mentioning: channels)
        }
        expectError(try rewrite(all.map { $0.name == channels ? ints([1, 2, 3]) : $0 }, "channels-count"), mentioning: channels)
        expectError(try rewrite(all.filter { $0.name != columns }, "no-columns"), mentioning: columns)
        expectError(try rewrite(all.map { $0.name == columns ? OwnedTensor(name: columns, shape: $0.shape, floats: [Float](repeating: .nan, count: $0.shape[0] * $0.shape[1])) : $0 },
                                "nan-columns"), mentioning: columns)
        expectError(try rewrite(all.map { $0.name == columns ? OwnedTensor(name: columns, shape: [$0.shape[1], $0.shape[0]], floats: [Float](repeating: 0, count: $0.shape[0] * $0.shape[1])) : $0 },
                                "transposed-columns"), mentioning: columns)
        var none = QuantizationScheme()
        none.outlierChannels = 0
        meta[QuantizationScheme.metadataKey] = try none.json()
        expectError(try rewrite(all, metadata: meta, "outliers-not-in-scheme"), mentioning: ".outlier_channels")
        var tooMany = QuantizationScheme()
        tooMany.outlierChannels = 1 << 40
        meta[QuantizationScheme.metadataKey] = try tooMany.json()
        expectError(try rewrite(all, metadata: meta, "outliers-too-many"), mentioning: "outlierChannels")
    }

    /// Outlier channels: the int8 file keeps their weight columns exactly (converting back to
    /// fp32 restores them bit for bit), and a file written before them (scheme version 1, no
    /// outlier keys in its metadata) still loads and runs its two-pass inputs.
    func testOutlierChannelsRoundTripAndVersion1Files() throws {
        let (dir, teacher, ck, _) = try Fixtures.tinyTeacherWithInt8("int8-outliers")
        let fp32 = try ModelStore.load(teacher).model, decoded = try ModelStore.load(ck).model
        let file = try Checkpoint(path: ck)
        let image = try SafetensorsImage(try file.decompressAll(), path: ck)
        let name = "bert.encoder.layer.1.intermediate.dense.weight"
        let info = image.tensors.first { $0.name == name + ".outlier_channels" }!
        let channels = try image.withBytes(info) { raw in (0..<info.shape[0]).map { Int(raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) } }
        XCTAssertEqual(channels.count, 2)
        let slot = fp32.layout.slot("ffn.1.intermediate.weight")!
        let cols = slot.shape[1]
        for r in 0..<slot.shape[0] {
            for c in channels { XCTAssertEqual(decoded.p(slot.offset)[r * cols + c], fp32.p(slot.offset)[r * cols + c], "row \(r) channel \(c)") }
        }
        // The int8 columns there are 0: the fp32 columns carry those channels alone.
        let q = try image.withBytes(image.tensors.first { $0.name == name }!) { Array($0.bindMemory(to: Int8.self)) }
        for r in 0..<slot.shape[0] { for c in channels { XCTAssertEqual(q[r * cols + c], 0) } }

        // A version 1 file: no outlier tensors, the old scheme text.
        var old = QuantizationScheme()
        old.outlierChannels = 0
        old.twoPassInputs = [.qkv]
        let v1File = try Checkpoint(path: try Fixtures.tinyTeacherWithInt8("int8-v1", scheme: old).int8)
        let text = v1File.metadata[QuantizationScheme.metadataKey]!
        XCTAssertTrue(text.contains("\"version\":1"), text)
        var meta = v1File.metadata
        let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        meta[QuantizationScheme.metadataKey] = String(decoding: try JSONSerialization.data(withJSONObject: json.filter { !$0.key.hasPrefix("outlier") }), as: UTF8.self)
        let tensors = try Fixtures.ownedTensors(of: v1File)
        let legacy = dir + "/legacy.safetensors.zst"
        try Safetensors.withPayloads(tensors) { _ = try CheckpointWriter.write($0, metadata: meta, to: legacy) }
        let scheme = try XCTUnwrap(QuantizationScheme.read(meta, path: legacy))
        XCTAssertEqual(scheme.outlierChannels, 0)
        XCTAssertEqual(scheme.twoPassInputs, [.qkv])
        let model = try ModelStore.open(legacy).model
        XCTAssertTrue(model.precision.hasPrefix("int8"), model.precision)
    }
}
