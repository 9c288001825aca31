import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryQuant
import DistilleryEvaluation

/// Labelled data for a sequence-classification task: where it is and how to read it.
public struct TaskSpec: Sendable, Equatable {
    public var train: String
    public var dev: String
    public var label = LabelledData.Column.name("label")
    public var text = LabelledData.Column.name("text")
    public var pair: LabelledData.Column?
    public var maxSequenceLength = 128
    /// Stop after this many epochs without a better dev accuracy (nil: never).
    public var patience: Int?
    public init(train: String, dev: String) { self.train = train; self.dev = dev }
}

/// How a classifier trains: epochs over the training set, the dev set after each, the best
/// epoch kept.
public struct TaskTraining: Sendable, Equatable {
    public var epochs = 3
    public var batchSize = 32
    public var optimizer = OptimizerSpec()
    public var seed: UInt64 = 42
    public var dropout = true
    public var precision = WeightFormat.fp32
    public var batches = BatchOrder.bucketed
    public init() {}
}

/// A task's labelled data, read and tokenized once for every stage that trains on it.
public struct TaskData: Sendable {
    public let spec: TaskSpec
    public let train: ClassificationSet
    public let dev: ClassificationSet
    public var labels: [String] { train.data.labels }

    /// Reads the training and dev files (the dev labels must be among the training labels) and
    /// tokenizes them with at most `maxPositions` tokens (the smaller of the spec's and the
    /// models'). With a `classifier` (a teacher used as given), the labels are its classes.
    public init(_ spec: TaskSpec, tokenizer: BertTokenizer, maxPositions: Int, classifier: EncoderConfig? = nil) throws {
        self.spec = spec
        let trainData = try Self.trainingData(spec, classifier: classifier)
        let devData = classifier != nil
            ? try LabelledData.load(spec.dev, label: spec.label, text: spec.text, pair: spec.pair, classes: trainData.labels)
            : try LabelledData.load(spec.dev, label: spec.label, text: spec.text, pair: spec.pair, labels: trainData.labels)
        let S = min(spec.maxSequenceLength, maxPositions)
        train = ClassificationSet(trainData, tokenizer: tokenizer, maxSequenceLength: S)
        dev = ClassificationSet(devData, tokenizer: tokenizer, maxSequenceLength: S)
    }

    /// The training file's examples. For a classifier used as given, class i is its id2label[i]:
    /// the file's labels are those names or class ids 0…C−1 (any other is refused by line);
    /// where it has Hugging Face's unnamed LABEL_0 … defaults, the file's own labels stand for
    /// them, and there must be as many.
    public static func trainingData(_ spec: TaskSpec, classifier: EncoderConfig?) throws -> LabelledData {
        guard let c = classifier else { return try LabelledData.load(spec.train, label: spec.label, text: spec.text, pair: spec.pair) }
        if c.labels != EncoderConfig.defaultLabels(c.numLabels) {
            return try LabelledData.load(spec.train, label: spec.label, text: spec.text, pair: spec.pair, classes: c.labels)
        }
        let data = try LabelledData.load(spec.train, label: spec.label, text: spec.text, pair: spec.pair)
        // Labels written as the defaults themselves map by name (sorted as text, LABEL_10 would
        // come before LABEL_2).
        if Set(data.labels).isSubset(of: c.labels) {
            return try LabelledData.load(spec.train, label: spec.label, text: spec.text, pair: spec.pair, classes: c.labels)
        }
        if data.labels.count != c.numLabels {
            throw TaskTrainerError.classCount(path: spec.train, labels: data.labels, classes: c.numLabels)
        }
        return data
    }
}

/// What a task run reports after each epoch.
public struct EpochReport: Codable, Sendable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var dev: ClassificationReport
    public var seconds: Double
}

public struct TaskSummary: Codable, Sendable {
    public var epochs: [EpochReport] = []
    public var bestEpoch = 0
    public var best: ClassificationReport?
    public var stoppedEarly = false
    public var folder: String?
    public var checkpoint: String?
    public var seconds = 0.0
    public var labels: [String] = []
}

public enum TaskTrainerError: Error, CustomStringConvertible, Equatable {
    case labelMismatch(model: String, model2: [String], data: [String])
    case classCount(path: String, labels: [String], classes: Int)
    public var description: String {
        switch self {
        case let .labelMismatch(m, ml, d):
            return "\(m) classifies into \(ml.joined(separator: ", ")) but the data's labels are \(d.joined(separator: ", "))"
        case let .classCount(p, l, c):
            let shown = l.count > 12 ? l.prefix(12).joined(separator: ", ") + ", …" : l.joined(separator: ", ")
            return "\(p): \(l.count) labels (\(shown)) but the teacher classifies into \(c) classes: give a classifier for these labels, or add [teacher.finetune] to fine-tune one on them"
        }
    }
}

/// Fine-tunes a classifier on labels, or distils one (soft class targets from a teacher
/// classifier, hard labels, optionally hidden-state losses), evaluating on the dev set after
/// every epoch and keeping the best epoch's weights.
public final class TaskTrainer {
    public let student: EncoderModel
    public let teacher: EncoderModel?
    public let tokenizer: BertTokenizer
    public let tokenizerFiles: TokenizerFiles
    public let train: ClassificationSet
    public let dev: ClassificationSet
    /// The best epoch's model, after `run`.
    public private(set) var best: EncoderModel?
    /// Where the result goes instead of OUTPUT/NAME and OUTPUT/NAME.safetensors.zst.
    public var destination: (folder: String, checkpoint: String)?
    /// Written into the exported folder's config.json and safetensors metadata.
    public var notes: [String: String] = [:]
    public let loss: LossSettings
    public let training: TaskTraining
    public let task: TaskSpec
    public let output: String
    public let provenance: Provenance

    public init(student: EncoderModel, teacher: EncoderModel?, tokenizer: BertTokenizer, tokenizerFiles: TokenizerFiles,
                data: TaskData, loss: LossSettings, training: TaskTraining, output: String, provenance: Provenance) throws {
        guard student.config.numLabels == data.labels.count else {
            throw TaskTrainerError.labelMismatch(model: "the student", model2: student.config.labels, data: data.labels)
        }
        if let teacher, loss.alphaSoft > 0, teacher.config.numLabels != data.labels.count {
            throw TaskTrainerError.labelMismatch(model: "the teacher", model2: teacher.config.labels, data: data.labels)
        }
        try DistillationStep.check(loss, teacher: loss.needsTeacher ? teacher?.config : nil, student: student.config, projection: false)
        self.student = student; self.teacher = teacher; self.tokenizer = tokenizer; self.tokenizerFiles = tokenizerFiles
        self.loss = loss; self.training = training; self.task = data.spec; self.output = output; self.provenance = provenance
        train = data.train
        dev = data.dev
    }

    /// Trains, evaluates after each epoch, keeps the best, writes OUTPUT/NAME (a Hugging Face
    /// folder) and OUTPUT/NAME.safetensors.zst, and appends to OUTPUT/metrics.jsonl.
    public func run(name: String, events: (TrainerEvent) -> Void = { _ in }) throws -> TaskSummary {
        events(.message("\(name): \(training.epochs) epoch\(training.epochs == 1 ? "" : "s") over \(grouped(train.count)) examples, dev \(grouped(dev.count))"))
        let start = Timing.now()
        try FileManager.default.createFolder(output)
        let teacherForStep = loss.needsTeacher ? teacher : nil
        let resolved = try teacherForStep.map { try loss.resolvedMatches(teacher: $0.config, student: student.config) } ?? []
        let params = TrainableParameters(model: student, projectTo: nil,
                                         matchProjections: teacherForStep.map { LayerMatch.projections(resolved, teacher: $0.config, student: student.config) } ?? [:])
        if training.precision == .bf16 {
            teacherForStep?.convertMatricesToBF16()
            params.student.convertMatricesToBF16()
        }
        let maxS = max(train.ids.map(\.count).max() ?? 1, 1)
        let step = try DistillationStep(teacher: teacherForStep, params: params, settings: loss, maxB: training.batchSize, maxS: maxS)
        let optimizer = AdamW(layout: params.layout, settings: training.optimizer.adamw, rule: training.optimizer.decay)
        let batches = EpochBatches(lengths: train.ids.map(\.count), batchSize: training.batchSize, seed: training.seed, order: training.batches)
        let perEpoch = (train.count + training.batchSize - 1) / training.batchSize
        let total = perEpoch * training.epochs
        let warmup = training.optimizer.warmupSteps ?? Int((training.optimizer.warmupFraction * Double(total)).rounded())
        let schedule = LinearSchedule(peak: training.optimizer.lr, warmupSteps: min(warmup, total), totalSteps: total)
        let metrics = try MetricsLog(path: output + "/metrics.jsonl", stage: name)
        let pad = tokenizer.padId, types = student.config.hasTokenTypes || (teacherForStep?.config.hasTokenTypes ?? false)
        let best = FloatBuffer(count: student.layout.count)
        var summary = TaskSummary()
        summary.labels = student.config.labels
        var bestAccuracy = -1.0, sinceBest = 0, current = 0, runTokens = 0
        let runStart = Timing.now()
        for epoch in 0..<training.epochs {
            let epochStart = Timing.now()
            var lossSum = 0.0
            for indices in batches.epoch(epoch) {
                let b = train.batch(indices, padId: pad, withTokenTypes: types)
                let batch = TokenBatch(B: b.B, S: b.S, inputIds: b.inputIds, attentionMask: b.mask, tokenTypes: b.types)
                step.progress = Double(current) / Double(max(1, total))
                let keys = training.dropout ? DropoutKeys(seed: streamKey(training.seed, 0x4452_4F50), iteration: UInt64(current)) : nil
                let v = try step.run(batch, labels: [], classLabels: b.labels, dropout: keys)
                for (n, x) in v.named where !x.isFinite { throw DistillationError.nonFinite(step: current + 1, loss: n) }
                let norm = clipGradientNorm(params.gradients, count: params.layout.count, maxNorm: training.optimizer.clip)
                if !norm.isFinite { throw DistillationError.nonFinite(step: current + 1, loss: "gradient norm") }
                let lr = schedule.rate(at: current)
                optimizer.update(parameters: params.parameters, gradients: params.gradients, lr: lr)
                params.student.refreshMatrices()
                params.gradients.zero()
                current += 1
                lossSum += v.total
                runTokens += batch.tokenCount
                let elapsed = Timing.now() - runStart
                let report = StepReport(step: current, totalSteps: total, losses: v, lr: lr, gradNorm: norm, tokens: batch.tokenCount,
                                        tokensPerSecond: Double(runTokens) / max(elapsed, 1e-9), elapsed: elapsed,
                                        eta: elapsed / Double(current) * Double(total - current))
                try metrics.append(report)
                events(.step(report))
            }
            let r = try ClassificationEvaluator.evaluate(params.student, on: dev, padId: pad, reference: loss.alphaSoft > 0 ? teacher : nil)
            let e = EpochReport(epoch: epoch + 1, step: current, trainLoss: lossSum / Double(max(1, perEpoch)), dev: r, seconds: Timing.now() - epochStart)
            summary.epochs.append(e)
            try metrics.append(epoch: e)
            events(.classification(e))
            if r.accuracy > bestAccuracy {
                bestAccuracy = r.accuracy
                best.base.update(from: params.parameters.base, count: student.layout.count)
                summary.bestEpoch = epoch + 1
                summary.best = r
                sinceBest = 0
            } else {
                sinceBest += 1
                if let patience = task.patience, sinceBest >= patience, epoch + 1 < training.epochs {
                    summary.stoppedEarly = true
                    events(.message("no better dev accuracy for \(patience) epoch\(patience == 1 ? "" : "s"): stopping after epoch \(epoch + 1)"))
                    break
                }
            }
        }
        // The best epoch's weights, exported.
        params.parameters.base.update(from: best.base, count: student.layout.count)
        params.student.refreshMatrices()
        let final = EncoderModel(config: student.config)
        final.parameters.base.update(from: best.base, count: final.layout.count)
        (summary.folder, summary.checkpoint) = try export(final, name: name)
        self.best = final
        summary.seconds = Timing.now() - start
        return summary
    }

    /// OUTPUT/NAME (Hugging Face folder, written beside its place and renamed into it) and
    /// OUTPUT/NAME.safetensors.zst.
    func export(_ model: EncoderModel, name: String) throws -> (String, String) {
        let folder = destination?.folder ?? output + "/" + name, ck = destination?.checkpoint ?? output + "/" + name + ".safetensors.zst"
        let parent = URL(fileURLWithPath: folder).deletingLastPathComponent().path
        try FileManager.default.createFolder(parent)
        let staging = parent + "/.\(URL(fileURLWithPath: folder).lastPathComponent).tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try HuggingFaceFolder.save(model, tokenizer: tokenizerFiles, to: staging, notes: notes)
        try HuggingFaceFolder.replace(folder, with: staging)
        try ModelCheckpoint.save(model, tokenizer: tokenizerFiles, to: ck, provenance: provenance)
        return (folder, ck)
    }
}

extension TaskTraining {
    /// The trainer's settings for fine-tuning (a smaller learning rate and weight decay, as for
    /// BERT fine-tuning).
    public static var fineTuning: TaskTraining {
        var t = TaskTraining()
        t.optimizer.lr = 5e-5
        t.optimizer.adamw = AdamWSettings(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01)
        t.optimizer.warmupFraction = 0.1
        t.optimizer.clip = 1
        return t
    }
}

extension EncoderModel {
    /// The model with a sequence-classification head for `labels`: its pooler kept (a new one,
    /// drawn from `seed`, where it has none) and a new classifier (normal(0, 0.02), zero bias),
    /// as transformers' `…ForSequenceClassification.from_pretrained` builds it. Load the encoder
    /// without dropping its pooler for that.
    public func addingClassifier(labels: [String], seed: UInt64) -> EncoderModel {
        var c = config
        c.numLabels = labels.count
        c.labels = labels
        c.hasPooler = true
        if c.family == .distilbert && c.classifierDropout == c.hiddenDropout { c.classifierDropout = 0.2 }
        let m = EncoderModel(config: c)
        m.initializeRandomly(seed: seed)
        for slot in m.layout.slots {
            guard let from = layout.slot(slot.name), from.shape == slot.shape, hasFP32Weights else { continue }
            m.p(slot.offset).update(from: p(from.offset), count: slot.count)
        }
        return m
    }
}

/// `distill finetune`: an encoder (with a new classification head unless it has one for these
/// labels) fine-tuned on labelled data, written as OUTPUT/classifier.
public enum FineTuning {
    public static func run(model path: String, task: TaskSpec, training: TaskTraining, output: String,
                           events: (TrainerEvent) -> Void = { _ in }) throws -> TaskSummary {
        // The file's pooler starts the head, as from_pretrained does (sentence-transformers
        // folders keep the pretrained pooler they never use).
        let loaded = try ModelStore.load(path, options: LoadOptions(dropPretrainingHeads: true, dropMLMHead: true))
        try ModelStore.checkFinite(loaded.model, path: path)
        let tokenizer = try BertTokenizer.of(model: path, files: loaded.tokenizer)
        let data = try TaskData(task, tokenizer: tokenizer, maxPositions: loaded.model.config.maxPositions)
        var model = loaded.model
        if model.config.labels != data.labels || !model.config.hasClassifier {
            if model.config.hasClassifier {
                events(.message("\(path) classifies into \(model.config.labels.joined(separator: ", ")); the data's labels are \(data.labels.joined(separator: ", ")): a new head"))
            }
            model = model.addingClassifier(labels: data.labels, seed: streamKey(training.seed, 0x5443_4C53))
        }
        try FileManager.default.createFolder(output)
        let t = try TaskTrainer(student: model, teacher: nil, tokenizer: tokenizer, tokenizerFiles: loaded.tokenizer, data: data,
                                loss: .labelsOnly, training: training, output: output, provenance: Provenance(source: path))
        return try t.run(name: "classifier", events: events)
    }
}
