import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText

/// `distill probe`: a task number for any encoder without fine-tuning it. The frozen model
/// embeds labelled texts (mean-pooled last hidden state, or its [CLS] row), and a logistic
/// regression learns the labels from the training embeddings; its accuracy on the test texts
/// says how much of the task the representation carries, so a student of a headless teacher
/// can be compared with the teacher on a task.
public struct ProbeSettings: Sendable, Equatable {
    public var pooling = Pooling.mean
    /// Tokens per text, [CLS] and [SEP] included (longer texts are truncated; the model's own
    /// positions bound it further).
    public var maxSequenceLength = 128
    public var batchSize = 32
    public var regression = LogisticRegression.Settings()
    /// When 2 or more: also cross-validate on the training split over this many folds
    /// (`CrossValidation`), a steadier number than one small test split gives.
    public var folds = 0
    public init() {}
}

/// Labelled texts for a probe, as plain arrays (the caller reads the files).
public struct ProbeTask: Sendable {
    public var trainTexts: [String]
    public var trainLabels: [Int32]
    public var testTexts: [String]
    public var testLabels: [Int32]
    /// Where the two splits came from, for reports.
    public var trainName: String
    public var testName: String
    public var settings: ProbeSettings

    public init(trainTexts: [String], trainLabels: [Int32], testTexts: [String], testLabels: [Int32],
                trainName: String = "train", testName: String = "test", settings: ProbeSettings = ProbeSettings()) {
        precondition(trainTexts.count == trainLabels.count && testTexts.count == testLabels.count)
        self.trainTexts = trainTexts; self.trainLabels = trainLabels
        self.testTexts = testTexts; self.testLabels = testLabels
        self.trainName = trainName; self.testName = testName; self.settings = settings
    }

    /// Refuses a task no probe can learn, before minutes of embedding.
    public func check() throws {
        guard !trainTexts.isEmpty else { throw ProbeError.noExamples(what: trainName) }
        guard !testTexts.isEmpty else { throw ProbeError.noExamples(what: testName) }
        if Set(trainLabels).count < 2 { throw ProbeError.oneClass(label: trainLabels[0], data: trainName) }
        if settings.folds != 0 { try LogisticRegression.checkFolds(settings.folds, labels: trainLabels, data: trainName) }
    }
}

public struct ProbeReport: Codable, Sendable, Equatable {
    public var train: String
    public var test: String
    public var pooling: Pooling
    public var c: Double
    public var classes: [Int32]
    public var trainExamples: Int
    public var testExamples: Int
    /// Width of the embeddings (the model's hidden size).
    public var dimensions: Int
    public var testAccuracy: Double
    public var testMacroF1: Double
    public var trainAccuracy: Double
    public var iterations: Int
    public var converged: Bool
    public var embeddingSeconds: Double
    public var fitSeconds: Double
    /// k-fold cross-validation on the training split, when `ProbeSettings.folds` asked for it
    /// (its time is its own `seconds`, not in `fitSeconds`).
    public var crossValidation: CrossValidation?
}

public enum Probe {
    /// One embedding per text, [texts.count × H] row-major in Float64. Texts run in batches of
    /// similar length (less padding); the result is in the order of `texts`.
    /// `progress(done, total)` counts texts.
    public static func embed(_ model: EncoderModel, tokenizer: BertTokenizer, texts: [String], pooling: Pooling,
                             maxSequenceLength: Int = 128, batchSize: Int = 32,
                             progress: ((Int, Int) -> Void)? = nil) throws -> [Double] {
        let c = model.config, H = c.hiddenSize
        let length = max(2, min(maxSequenceLength, c.maxPositions))
        let ids = texts.map { tokenizer.encode($0, maxLength: length).inputIds }
        let B = max(1, batchSize)
        let longest = ids.map(\.count).max() ?? 0
        let hidden = FloatBuffer(count: max(1, min(B, ids.count) * longest * H))
        var pooled = [Double](repeating: 0, count: B * H)
        var out = [Double](repeating: 0, count: texts.count * H)
        var done = 0
        for rows in lengthOrderedBatches(count: ids.count, batchSize: B, length: { ids[$0].count }).reversed() {
            let S = rows.map { ids[$0].count }.max()!
            var batchIds = [Int32](repeating: tokenizer.padId, count: rows.count * S)
            var mask = [Float](repeating: 0, count: rows.count * S)
            for (b, r) in rows.enumerated() {
                for (k, t) in ids[r].enumerated() { batchIds[b * S + k] = t; mask[b * S + k] = 1 }
            }
            let batch = TokenBatch(B: rows.count, S: S, inputIds: batchIds, attentionMask: mask,
                                   tokenTypes: c.hasTokenTypes ? [Int32](repeating: 0, count: rows.count * S) : nil)
            try model.encode(batch, hidden: hidden.base)
            pooling.pool(hidden.base, mask: mask, B: rows.count, S: S, H: H, into: &pooled)
            for (b, r) in rows.enumerated() {
                for h in 0..<H { out[r * H + h] = pooled[b * H + h] }
            }
            done += rows.count
            progress?(done, texts.count)
        }
        if let i = out.firstIndex(where: { !$0.isFinite }) { throw ProbeError.nonFiniteFeature(row: i / H) }
        return out
    }

    /// Embeds both splits, fits the regression on the training split and scores both.
    /// `progress(stage, done, total)`: stages "train" and "test" count texts as they are embedded.
    public static func run(_ model: EncoderModel, tokenizer: BertTokenizer, task: ProbeTask,
                           progress: ((String, Int, Int) -> Void)? = nil) throws -> ProbeReport {
        let s = task.settings
        try task.check()
        let t0 = Timing.now()
        let train = try embed(model, tokenizer: tokenizer, texts: task.trainTexts, pooling: s.pooling,
                              maxSequenceLength: s.maxSequenceLength, batchSize: s.batchSize) { progress?("train", $0, $1) }
        let test = try embed(model, tokenizer: tokenizer, texts: task.testTexts, pooling: s.pooling,
                             maxSequenceLength: s.maxSequenceLength, batchSize: s.batchSize) { progress?("test", $0, $1) }
        let t1 = Timing.now()
        let (lr, fit) = try LogisticRegression.fit(features: train, labels: task.trainLabels, dimensions: model.config.hiddenSize,
                                                   settings: s.regression)
        let testPredicted = try lr.predict(test), trainPredicted = try lr.predict(train)
        let t2 = Timing.now()
        let cv = s.folds >= 2 ? try LogisticRegression.crossValidate(features: train, labels: task.trainLabels, dimensions: model.config.hiddenSize,
                                                                     folds: s.folds, settings: s.regression, data: task.trainName) : nil
        return ProbeReport(train: task.trainName, test: task.testName, pooling: s.pooling, c: s.regression.c, classes: lr.classes,
                           trainExamples: task.trainTexts.count, testExamples: task.testTexts.count, dimensions: model.config.hiddenSize,
                           testAccuracy: ClassificationScores.accuracy(truth: task.testLabels, predicted: testPredicted),
                           testMacroF1: ClassificationScores.macroF1(truth: task.testLabels, predicted: testPredicted),
                           trainAccuracy: ClassificationScores.accuracy(truth: task.trainLabels, predicted: trainPredicted),
                           iterations: fit.iterations, converged: fit.converged, embeddingSeconds: t1 - t0, fitSeconds: t2 - t1,
                           crossValidation: cv)
    }
}
