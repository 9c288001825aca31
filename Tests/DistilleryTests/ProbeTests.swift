import Foundation
import XCTest
import DistilleryTensor
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryEvaluation
import DistilleryCLI

/// `distill probe`: the logistic regression against scikit-learn, the probe end to end against
/// transformers + scikit-learn on the tiny BERT, and the errors bad data files get. The
/// references come from Tests/Scripts/probe_reference.py (Fixtures/probe).
final class ProbeTests: XCTestCase {
    struct Problem: Decodable {
        let c: Double
        let classes: [Int32]
        let probabilities: [[Double]]
        let testAccuracy, testMacroF1, trainAccuracy: Double
        let trainFeatures: [[Double]]?
        let trainLabels: [Int32]?
        let testFeatures: [[Double]]?
        let testLabels: [Int32]?
        let trainEmbeddings: [[Double]]?
        let testEmbeddings: [[Double]]?
    }

    static func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(T.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("probe/" + name))))
    }

    /// Fits, then checks classes, probabilities and scores against scikit-learn's.
    func check(_ p: Problem, train: [[Double]], trainLabels: [Int32], test: [[Double]], testLabels: [Int32],
               probabilityTolerance: Double, _ name: String) throws {
        var settings = LogisticRegression.Settings()
        settings.c = p.c
        let d = train[0].count
        let (lr, fit) = try LogisticRegression.fit(features: train.flatMap { $0 }, labels: trainLabels, dimensions: d, settings: settings)
        XCTAssertTrue(fit.converged, "\(name): \(fit)")
        XCTAssertEqual(lr.classes, p.classes, name)
        let probabilities = try lr.probabilities(test.flatMap { $0 })
        let expected = p.probabilities.flatMap { $0 }
        XCTAssertEqual(probabilities.count, expected.count, name)
        let worst = zip(probabilities, expected).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, probabilityTolerance, "\(name): probabilities differ from scikit-learn's by \(worst)")
        let predicted = try lr.predict(test.flatMap { $0 })
        XCTAssertEqual(ClassificationScores.accuracy(truth: testLabels, predicted: predicted), p.testAccuracy, accuracy: 1e-12, name)
        XCTAssertEqual(ClassificationScores.macroF1(truth: testLabels, predicted: predicted), p.testMacroF1, accuracy: 1e-12, name)
        let trainPredicted = try lr.predict(train.flatMap { $0 })
        XCTAssertEqual(ClassificationScores.accuracy(truth: trainLabels, predicted: trainPredicted), p.trainAccuracy, accuracy: 1e-12, name)
    }

    /// Two classes (scikit-learn's binomial fit), three with labels that are not 0..<K, and two
    /// classes with features at the level of float noise (kept at scale 1), each with a constant
    /// feature: the same optimum as the standardisation + LogisticRegression(C).
    func testLogisticRegressionMatchesScikitLearn() throws {
        let problems = try Self.decode([String: Problem].self, "logistic.json")
        XCTAssertEqual(Set(problems.keys), ["binary", "multiclass", "noise"])
        for (name, p) in problems.sorted(by: { $0.key < $1.key }) {
            try check(p, train: p.trainFeatures!, trainLabels: p.trainLabels!, test: p.testFeatures!, testLabels: p.testLabels!,
                      probabilityTolerance: 1e-6, name)
        }
    }

    func testLogisticRegressionRefusesWhatItCannotFit() {
        XCTAssertThrowsError(try LogisticRegression.fit(features: [1, 2, 3], labels: [4, 4, 4], dimensions: 1)) { e in
            XCTAssertEqual(e as? ProbeError, .oneClass(label: 4, data: "the training features"))
        }
        XCTAssertThrowsError(try LogisticRegression.fit(features: [1, .nan, 3, 4], labels: [0, 1], dimensions: 2)) { e in
            XCTAssertEqual(e as? ProbeError, .nonFiniteFeature(row: 0))
        }
        XCTAssertThrowsError(try LogisticRegression.fit(features: [1, 2, 3], labels: [0, 1], dimensions: 2))
        XCTAssertThrowsError(try LogisticRegression.fit(features: [], labels: [], dimensions: 2))
        // Separable data: the penalty keeps the optimum finite, and the fit gets there.
        let (lr, fit) = try! LogisticRegression.fit(features: [-2, -1, 1, 2], labels: [0, 0, 1, 1], dimensions: 1)
        XCTAssertTrue(fit.converged)
        XCTAssertEqual(try! lr.predict([-3, 3]), [0, 1])
    }

    static func readTSV(_ name: String) throws -> (texts: [String], labels: [Int32]) {
        let lines = try String(contentsOfFile: Fixtures.path("probe/" + name), encoding: .utf8).split(separator: "\n").dropFirst()
        let fields = lines.map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        return (fields.map { String($0[2]) }, fields.map { Int32($0[0])! })
    }

    /// The tiny BERT's embeddings match transformers' for both poolings, and the probe on them
    /// gives scikit-learn's probabilities and scores.
    func testProbeOnTheTinyBERTMatchesTransformersAndScikitLearn() throws {
        let folder = Fixtures.temporaryDirectory + "/probe-tiny-teacher"
        try Fixtures.makeTinyTeacher(at: folder)
        let m = try ModelStore.open(folder, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let tokenizer = try BertTokenizer.of(model: folder, files: m.tokenizer)
        let train = try Self.readTSV("train.tsv"), test = try Self.readTSV("test.tsv")
        struct Reference: Decodable { let maxLength: Int; let mean: Problem; let cls: Problem }
        let reference = try Self.decode(Reference.self, "tiny-bert.json")
        XCTAssertEqual(reference.maxLength, 64)
        for pooling in Pooling.allCases {
            let p = pooling == .mean ? reference.mean : reference.cls
            // Batch size 5 and length-sorted batches: padding must not change an embedding.
            let ours = try Probe.embed(m.model, tokenizer: tokenizer, texts: train.texts, pooling: pooling, maxSequenceLength: 64, batchSize: 5)
            let theirs = p.trainEmbeddings!.flatMap { $0 }
            XCTAssertEqual(ours.count, theirs.count)
            let worst = zip(ours, theirs).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(pooling) embeddings differ from transformers' by \(worst)")
            // The probe on transformers' embeddings: scikit-learn's numbers.
            try check(p, train: p.trainEmbeddings!, trainLabels: train.labels, test: p.testEmbeddings!, testLabels: test.labels,
                      probabilityTolerance: 1e-5, "tiny-bert \(pooling)")
            // End to end on ours: the same scores.
            var settings = ProbeSettings()
            settings.pooling = pooling
            settings.batchSize = 7
            let task = ProbeTask(trainTexts: train.texts, trainLabels: train.labels, testTexts: test.texts, testLabels: test.labels,
                                 settings: settings)
            let r = try Probe.run(m.model, tokenizer: tokenizer, task: task)
            XCTAssertEqual(r.testAccuracy, p.testAccuracy, accuracy: 1e-12, "\(pooling)")
            XCTAssertEqual(r.testMacroF1, p.testMacroF1, accuracy: 1e-12, "\(pooling)")
            XCTAssertEqual(r.trainAccuracy, p.trainAccuracy, accuracy: 1e-12, "\(pooling)")
            XCTAssertEqual(r.classes, [0, 1])
            XCTAssertEqual(r.dimensions, 64)
            XCTAssertEqual([r.trainExamples, r.testExamples], [48, 24])
            XCTAssertTrue(r.converged)
        }
        // The command, on the TSV files, with columns by name and by index, both poolings, int8.
        let data = Fixtures.path("probe/")
        try distill(["probe", "--model", folder, "--train", data + "train.tsv", "--test", data + "test.tsv"])
        try distill(["probe", "--model", folder, "--train", data + "train.tsv", "--test", data + "test.tsv", "--label", "0", "--text", "2",
                     "--pooling", "cls", "--c", "0.5", "--json", "--precision", "int8"])
    }

    /// `--folds`: scikit-learn's KFold cross-validation, on fixed features and on the tiny
    /// BERT end to end, and the fold counts it refuses.
    func testCrossValidationMatchesScikitLearn() throws {
        let file = try Self.decode(CVFile.self, "cv.json")
        let cv = ["binary": file.binary, "binary_7": file.binary7, "multiclass": file.multiclass, "tiny_bert_mean": file.tinyBertMean]
        func same(_ ours: CrossValidation, _ theirs: CVFile.CV, _ name: String) {
            XCTAssertEqual(ours.folds, theirs.folds, name)
            XCTAssertEqual(ours.examples, theirs.predicted.count, name)
            XCTAssertEqual(ours.foldAccuracies.count, theirs.foldAccuracies.count, name)
            for (a, b) in zip(ours.foldAccuracies, theirs.foldAccuracies) { XCTAssertEqual(a, b, accuracy: 1e-12, name) }
            XCTAssertEqual(ours.accuracy, theirs.accuracy, accuracy: 1e-12, name)
            XCTAssertEqual(ours.macroF1, theirs.macroF1, accuracy: 1e-12, name)
            XCTAssertEqual(ours.standardError, (theirs.accuracy * (1 - theirs.accuracy) / Double(ours.examples)).squareRoot(),
                           accuracy: 1e-12, name)
            XCTAssertTrue(ours.converged, name)
        }
        // scikit-learn's fold sizes: the first n mod k folds one longer.
        XCTAssertEqual((0..<3).map { LogisticRegression.foldRange($0, of: 3, examples: 10) }, [0..<4, 4..<7, 7..<10])
        XCTAssertEqual((0..<4).map { LogisticRegression.foldRange($0, of: 4, examples: 48).count }, [12, 12, 12, 12])

        // Fixed features: two classes in even and uneven folds, three classes named 0, 2, 5.
        let problems = try Self.decode([String: Problem].self, "logistic.json")
        for (name, problem) in [("binary", "binary"), ("binary_7", "binary"), ("multiclass", "multiclass")] {
            let p = try XCTUnwrap(problems[problem]), r = try XCTUnwrap(cv[name])
            var settings = LogisticRegression.Settings()
            settings.c = r.c
            let (predicted, summary) = try LogisticRegression.crossValidatedPredictions(
                features: p.trainFeatures!.flatMap { $0 }, labels: p.trainLabels!, dimensions: p.trainFeatures![0].count,
                folds: r.folds, settings: settings)
            XCTAssertEqual(predicted, r.predicted, name)
            same(summary, r, name)
        }
        struct Reference: Decodable { let mean: Problem }
        let tiny = try Self.decode(Reference.self, "tiny-bert.json").mean, t = try XCTUnwrap(cv["tiny_bert_mean"])
        let train = try Self.readTSV("train.tsv"), test = try Self.readTSV("test.tsv")
        let (tinyPredicted, tinySummary) = try LogisticRegression.crossValidatedPredictions(
            features: tiny.trainEmbeddings!.flatMap { $0 }, labels: train.labels, dimensions: 64, folds: t.folds)
        XCTAssertEqual(tinyPredicted, t.predicted)
        same(tinySummary, t, "tiny-bert on transformers' embeddings")
        // Two models on the same folds, example by example: mean pooling minus [CLS].
        let tinyCLS = try Self.decode(ReferenceCLS.self, "tiny-bert.json").cls
        let (clsPredicted, clsSummary) = try LogisticRegression.crossValidatedPredictions(
            features: tinyCLS.trainEmbeddings!.flatMap { $0 }, labels: train.labels, dimensions: 64, folds: file.tinyBertCls.folds)
        XCTAssertEqual(clsPredicted, file.tinyBertCls.predicted)
        same(clsSummary, file.tinyBertCls, "tiny-bert [CLS]")
        let paired = try XCTUnwrap(tinySummary.difference(from: clsSummary)), expected = file.pairedMeanMinusCls
        XCTAssertEqual(paired.difference, expected.difference, accuracy: 1e-12)
        XCTAssertEqual(paired.standardError, expected.standardError, accuracy: 1e-12)
        XCTAssertEqual([paired.onlyFirstCorrect, paired.onlySecondCorrect, paired.examples],
                       [expected.onlyFirstCorrect, expected.onlySecondCorrect, 48])
        var otherFolds = clsSummary
        otherFolds.folds = 3
        XCTAssertNil(tinySummary.difference(from: otherFolds), "different folds do not pair")

        // End to end on our embeddings, and through the command.
        let folder = Fixtures.temporaryDirectory + "/probe-cv-teacher"
        try Fixtures.makeTinyTeacher(at: folder)
        let m = try ModelStore.open(folder, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let tokenizer = try BertTokenizer.of(model: folder, files: m.tokenizer)
        var probe = ProbeSettings()
        probe.folds = t.folds
        probe.maxSequenceLength = 64
        let r = try Probe.run(m.model, tokenizer: tokenizer, task: ProbeTask(trainTexts: train.texts, trainLabels: train.labels,
                                                                              testTexts: test.texts, testLabels: test.labels, settings: probe))
        same(try XCTUnwrap(r.crossValidation), t, "tiny-bert end to end")
        let data = Fixtures.path("probe/")
        try distill(["probe", "--model", folder, "--train", data + "train.tsv", "--test", data + "test.tsv", "--folds", "4", "--json"])
        // Reports without cross-validation keep their JSON shape, and old reports still read.
        var plain = r
        plain.crossValidation = nil
        let encoded = String(decoding: try JSONEncoder().encode(plain), as: UTF8.self)
        XCTAssertFalse(encoded.contains("crossValidation"), encoded)
        XCTAssertEqual(try JSONDecoder().decode(ProbeReport.self, from: Data(encoded.utf8)), plain)
        XCTAssertTrue(String(decoding: try JSONEncoder().encode(r), as: UTF8.self).contains("\"foldAccuracies\""))

        // Refused: too few or too many folds, and a fold whose other rows hold one class.
        for folds in [1, 5] {
            XCTAssertThrowsError(try LogisticRegression.crossValidate(features: [1, 2, 3, 4], labels: [0, 1, 0, 1], dimensions: 1, folds: folds)) { e in
                XCTAssertEqual(e as? ProbeError, .badSetting(name: "folds", reason: "must be 2…4 (the examples in the features), got \(folds)"))
            }
        }
        XCTAssertThrowsError(try LogisticRegression.crossValidate(features: [1, 2, 3, 4], labels: [0, 0, 1, 1], dimensions: 1, folds: 2)) { e in
            XCTAssertEqual(e as? ProbeError, .oneClass(label: 1, data: "the training rows of cross-validation fold 1 of 2 in the features"))
        }
        // Sorted by label, 4 folds: every fit still sees both classes, but each tests on one.
        let sortedRows = train.labels.indices.sorted { train.labels[$0] < train.labels[$1] }
        let sorted = Fixtures.temporaryDirectory + "/probe-cv-sorted.tsv"
        try Data(("label\ttext\n" + sortedRows.map { "\(train.labels[$0])\t\(train.texts[$0])\n" }.joined()).utf8)
            .write(to: URL(fileURLWithPath: sorted))
        let sortedCV = try LogisticRegression.crossValidate(features: sortedRows.flatMap { tiny.trainEmbeddings![$0] },
                                                            labels: sortedRows.map { train.labels[$0] }, dimensions: 64, folds: 4)
        XCTAssertEqual(sortedCV.oneClassFolds, [1, 2, 3, 4])
        XCTAssertEqual(tinySummary.oneClassFolds, [])
        try distill(["probe", "--model", folder, "--train", sorted, "--test", data + "test.tsv", "--folds", "4"])
        XCTAssertThrowsError(try distill(["probe", "--model", "/nonexistent", "--train", sorted, "--test", data + "test.tsv", "--folds", "2"])) { e in
            XCTAssertTrue("\(e)".contains("fold 1 of 2 in \(sorted)") && "\(e)".contains("two classes"), "\(e)")
        }
        XCTAssertThrowsError(try distill(["probe", "--model", folder, "--train", data + "train.tsv", "--test", data + "test.tsv", "--folds", "49"])) { e in
            XCTAssertTrue("\(e)".contains("folds") && "\(e)".contains("2…48"), "\(e)")
        }
        XCTAssertThrowsError(try distill(["probe", "--model", folder, "--train", data + "train.tsv", "--test", data + "test.tsv", "--folds", "1"])) { e in
            XCTAssertTrue(Distill.message(for: e).contains("--folds"), Distill.message(for: e))
        }
    }

    /// Fixtures/probe/cv.json.
    struct CVFile: Decodable {
        struct CV: Decodable { let folds: Int; let c: Double; let foldAccuracies: [Double]; let accuracy, macroF1: Double; let predicted: [Int32] }
        struct Paired: Decodable { let difference, standardError: Double; let onlyFirstCorrect, onlySecondCorrect: Int }
        let binary, binary7, multiclass, tinyBertMean, tinyBertCls: CV
        let pairedMeanMinusCls: Paired
    }
    struct ReferenceCLS: Decodable { let cls: Problem }

    /// `distill compare --probe-train --probe-test`: a probe per model, the fp32 one scoring as
    /// scikit-learn does on transformers' embeddings.
    func testCompareShowsTheProbe() throws {
        let (dir, teacher, ck, _) = try Fixtures.tinyTeacherWithInt8("probe-compare")
        let train = try Self.readTSV("train.tsv"), test = try Self.readTSV("test.tsv")
        var settings = ComparisonSettings()
        settings.maxBatches = 1
        settings.shapes = [(B: 2, S: 16)]
        settings.warmup = 0
        settings.iterations = 1
        var folds = ProbeSettings()
        folds.folds = 4
        settings.probe = ProbeTask(trainTexts: train.texts, trainLabels: train.labels, testTexts: test.texts, testLabels: test.labels,
                                   settings: folds)
        let data = Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"
        let report = try Comparison.run(models: [teacher, ck], data: data, settings: settings)
        struct Reference: Decodable { let mean: Problem }
        let expected = try Self.decode(Reference.self, "tiny-bert.json").mean
        XCTAssertEqual(report.rows[0].probe?.testAccuracy ?? -1, expected.testAccuracy, accuracy: 1e-12)
        let cv = try Self.decode(CVFile.self, "cv.json").tinyBertMean
        XCTAssertEqual(report.rows[0].probe?.crossValidation?.accuracy ?? -1, cv.accuracy, accuracy: 1e-12)
        // The int8 row against the first, paired: its mean is the difference of the two accuracies.
        let d = try XCTUnwrap(report.rows[1].probeDifference)
        XCTAssertNil(report.rows[0].probeDifference)
        XCTAssertEqual(d.difference, (report.rows[1].probe?.crossValidation?.accuracy ?? 0) - cv.accuracy, accuracy: 1e-12)
        XCTAssertEqual(d.examples, 48)
        XCTAssertTrue(RunReport(comparison: report).markdown().contains("probe CV accuracy"))
        XCTAssertEqual(report.rows[0].probe?.trainAccuracy ?? -1, expected.trainAccuracy, accuracy: 1e-12)
        let q = try XCTUnwrap(report.rows[1].probe)
        XCTAssertGreaterThan(q.testAccuracy, 0.5, "the int8 copy still carries the task")
        XCTAssertEqual(q.dimensions, 64)

        let probe = ["--probe-train", Fixtures.path("probe/train.tsv"), "--probe-test", Fixtures.path("probe/test.tsv")]
        try distill(["compare", teacher, ck, "--data", data, "--batches", "1", "--iterations", "1", "--shapes", "2x16"] + probe)
        try distill(["compare", teacher, "--data", data, "--batches", "1", "--iterations", "1", "--shapes", "2x16", "--json"] + probe)
        try distill(["compare", teacher, "--data", data, "--batches", "1", "--iterations", "1", "--shapes", "2x16", "--probe-folds", "4"] + probe)
        XCTAssertThrowsError(try distill(["compare", teacher, "--data", data, "--probe-folds", "4"])) { e in
            XCTAssertTrue(Distill.message(for: e).contains("--probe-train"), Distill.message(for: e))
        }
        XCTAssertThrowsError(try distill(["compare", teacher, "--data", data, "--probe-train", Fixtures.path("probe/train.tsv")])) { e in
            XCTAssertTrue(Distill.message(for: e).contains("--probe-test"), Distill.message(for: e))
        }
        // A bad file is refused before any model is loaded or timed.
        let bad = dir + "/bad.tsv"
        try Data("label\ttext\nyes\tfine\n".utf8).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try distill(["compare", teacher, "--data", data, "--probe-train", bad, "--probe-test", bad])) { e in
            XCTAssertTrue("\(e)".contains(bad + ", line 2"), "\(e)")
        }
    }

    /// Careless data files: an error naming the file and the line, before any model is loaded.
    func testBadDataFilesAreNamed() throws {
        let dir = Fixtures.temporaryDirectory + "/probe-hostile"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let good = Fixtures.path("probe/test.tsv"), model = Fixtures.path("tiny-bert-mlm")
        func expectFailure(_ name: String, _ content: String, _ extra: [String] = [], mentions: [String],
                           file: StaticString = #filePath, line: UInt = #line) throws {
            let path = dir + "/" + name
            try Data(content.utf8).write(to: URL(fileURLWithPath: path))
            do {
                try distill(["probe", "--model", model, "--train", path, "--test", good] + extra)
                XCTFail("\(name): succeeded", file: file, line: line)
            } catch {
                let message = "\(error)"
                for m in [path] + mentions {
                    XCTAssertTrue(message.contains(m), "\(name): '\(message)' does not mention '\(m)'", file: file, line: line)
                }
            }
        }
        try expectFailure("empty.tsv", "", mentions: ["empty"])
        try expectFailure("blank.tsv", "\n\n", mentions: ["empty"])
        try expectFailure("header-only.tsv", "label\ttext\n", mentions: ["no examples"])
        try expectFailure("no-label-column.tsv", "score\ttext\n1\tfine\n", mentions: ["line 1", "'label'", "'score'"])
        try expectFailure("no-text-column.tsv", "label\tsentence\n1\tfine\n", mentions: ["line 1", "'text'"])
        try expectFailure("index-out-of-range.tsv", "label\ttext\n1\tfine\n", ["--text", "5"], mentions: ["line 1", "'5'"])
        try expectFailure("short-line.tsv", "label\tid\ttext\n1\ta\tfine\n0\tb\n", mentions: ["line 3", "2 tab-separated fields"])
        try expectFailure("bad-label.tsv", "label\ttext\n1\tfine\n0\tok\npositive\tgreat\n", mentions: ["line 4", "'positive'", "integer"])
        try expectFailure("fraction-label.tsv", "label\ttext\n0.5\tfine\n", mentions: ["line 2", "'0.5'"])
        try expectFailure("huge-label.tsv", "label\ttext\n99999999999\tfine\n", mentions: ["line 2", "99999999999"])
        try expectFailure("one-class.tsv", "label\ttext\n1\tfine\n1\tgood\n", mentions: ["two classes"])
        try Data([0x6c, 0x61, 0x62, 0x65, 0x6c, 0x0a, 0xff, 0xfe, 0x0a]).write(to: URL(fileURLWithPath: dir + "/binary.tsv"))
        XCTAssertThrowsError(try distill(["probe", "--model", model, "--train", dir + "/binary.tsv", "--test", good])) { e in
            XCTAssertTrue("\(e)".contains(dir + "/binary.tsv") && "\(e)".contains("UTF-8"), "\(e)")
        }
        XCTAssertThrowsError(try distill(["probe", "--model", model, "--train", dir + "/missing.tsv", "--test", good])) { e in
            XCTAssertTrue("\(e)".contains(dir + "/missing.tsv"), "\(e)")
        }
        XCTAssertThrowsError(try distill(["probe", "--model", model, "--train", good, "--test", good, "--c", "0"])) { e in
            XCTAssertTrue(Distill.message(for: e).contains("--c"), Distill.message(for: e))
        }
        // Through the real binary: the exit status is non-zero and the message names the line.
        let binary = Fixtures.repositoryRoot + "/.build/debug/distill"
        if FileManager.default.isExecutableFile(atPath: binary) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["probe", "--model", model, "--train", dir + "/bad-label.tsv", "--test", good]
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            p.waitUntilExit()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertNotEqual(p.terminationStatus, 0)
            XCTAssertTrue(text.contains("line 4"), text)
        }
    }
}
