import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryEvaluation
import DistilleryQuant

/// How an MLM head is fitted on a frozen encoder.
public struct HeadFitSettings: Sendable, Equatable {
    public var steps = 1500
    public var batchSize = 32
    /// Only the head trains, from scratch: a larger rate than fine-tuning uses.
    public var lr: Float = 1e-3
    public var warmupFraction = 0.05
    public var clip: Float? = 1
    public var masking = MaskingPolicy()
    public var seed: UInt64 = 42
    /// Where a recipe keeps the fitted teacher (default: OUTPUT/teacher-mlm); recipes naming
    /// the same folder share one fit.
    public var output: String?
    public init() {}

    /// What decides the fit: the same stamp means the same head. `fit 2`: heads fitted before
    /// the encoder's training forward filled the embedding output without dropout keys saw a
    /// zero input to layer 0 (a constant encoder output); they are fitted again.
    func stamp(teacher: String, data: [String], maxSequenceLength: Int) -> String {
        "fit 2; teacher \(teacher); data \(data.joined(separator: ", ")); max_seq_len \(maxSequenceLength); steps \(steps); batch \(batchSize); "
            + "lr \(lr); warmup \(warmupFraction); mlm \(masking.probability)/\(masking.maskShare)/\(masking.randomShare); seed \(seed)"
    }
}

public struct HeadFitSummary: Codable, Sendable {
    public var steps = 0
    public var tokens = 0
    public var seconds = 0.0
    public var lastLoss = 0.0
    /// MLM accuracy and loss of the fitted head on held-out text.
    public var heldout: EvalReport?
    public var folder: String?
    public var checkpoint: String?
}

/// Fits a BERT-style MLM head (dense + activation + LayerNorm, then the decoder tied to the
/// word embeddings plus a bias) on an encoder that stays frozen, such as a sentence-embedding
/// model shipped without one, so the soft-target and MLM losses can be used with it.
///
/// Only the head's transform, LayerNorm and decoder bias change: the encoder's backward pass
/// is skipped and the optimizer leaves every other slot (the tied word embeddings included)
/// as loaded.
public final class HeadFitter {
    public static let note = "MLM head fitted by Distillery (distill fit-head) on the frozen encoder; the encoder's weights are the original's"

    public let model: EncoderModel
    public let settings: HeadFitSettings

    /// `encoder` without a head gets a new one: the transform drawn from normal(0, 0.02) (as
    /// BERT initialises it), LayerNorm 1/0, and the decoder bias set to the log unigram
    /// frequencies of `tokenCounts` (what a head that knows nothing yet should predict), so
    /// the first steps do not spend themselves learning the token distribution.
    public init(encoder: EncoderModel, tokenCounts: [Int]?, settings: HeadFitSettings) {
        var c = encoder.config
        c.hasMLMHead = true
        c.hasPooler = c.hasClassifier || c.hasPooler
        let m = EncoderModel(config: c)
        m.initializeRandomly(seed: streamKey(settings.seed, 0x4845_4144))
        for slot in m.layout.slots {
            guard let from = encoder.layout.slot(slot.name), from.shape == slot.shape else { continue }
            m.p(slot.offset).update(from: encoder.p(from.offset), count: slot.count)
        }
        if let counts = tokenCounts, let h = m.layout.head {
            let V = c.vocabSize
            let total = Double(counts.prefix(V).reduce(0, +)) + Double(V)
            for v in 0..<V { m.p(h.bias)[v] = Float(log((Double(v < counts.count ? counts[v] : 0) + 1) / total)) }
        }
        model = m
        self.settings = settings
    }

    /// The slots that train: the head's.
    static func headSlots(_ layout: ParameterLayout) -> Set<Int> {
        guard let h = layout.head else { return [] }
        return [h.transformWeight, h.transformBias, h.normWeight, h.normBias, h.bias]
    }

    /// Trains the head for `settings.steps` steps on `train`, then measures it on `heldout`.
    public func fit(train: TokenDataset, heldout: EvalSet?, tokenizer: BertTokenizer,
                    events: (TrainerEvent) -> Void = { _ in }) throws -> HeadFitSummary {
        let s = settings, m = model
        var loss = LossSettings()
        loss.alphaCE = 0; loss.alphaCos = 0; loss.alphaMLM = 1
        let params = TrainableParameters(model: m, projectTo: nil)
        let maxS = (0..<train.count).reduce(1) { max($0, train.length($1)) }
        let step = try DistillationStep(teacher: nil, params: params, settings: loss, maxB: s.batchSize, maxS: maxS, trainsEncoder: false)
        var adamw = AdamWSettings(beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01)
        adamw.weightDecay = 0.01
        let optimizer = AdamW(layout: params.layout, settings: adamw, rule: .biasesAndNorms)
        let trained = Self.headSlots(m.layout)
        optimizer.trainable = params.layout.slots.map { trained.contains($0.offset) }
        let frozen = params.layout.slots.filter { !trained.contains($0.offset) }
        let masker = MLMMasker(policy: s.masking, tokenizer: tokenizer)
        let batches = EpochBatches(lengths: (0..<train.count).map(train.length), batchSize: s.batchSize, seed: s.seed)
        let perEpoch = (train.count + s.batchSize - 1) / s.batchSize
        let schedule = LinearSchedule(peak: s.lr, warmupSteps: Int((s.warmupFraction * Double(s.steps)).rounded()), totalSteps: s.steps)
        var summary = HeadFitSummary()
        var epoch: (Int, [[Int]])?
        let start = Timing.now()
        for current in 0..<s.steps {
            let e = current / perEpoch
            if epoch?.0 != e { epoch = (e, batches.epoch(e)) }
            let c = train.collate(epoch!.1[current % perEpoch], padId: tokenizer.padId)
            let masked = masker.apply(TokenBatchView(inputIds: c.ids, attentionMask: c.mask), key: streamKey(s.seed, 0x4D41_534B, UInt64(current)))
            let batch = TokenBatch(B: c.B, S: c.S, inputIds: masked.inputIds, attentionMask: c.mask,
                                   tokenTypes: m.config.hasTokenTypes ? [Int32](repeating: 0, count: c.B * c.S) : nil)
            let v = try step.run(batch, labels: masked.labels)
            if !v.mlm.isFinite { throw DistillationError.nonFinite(step: current + 1, loss: "loss_mlm") }
            // The tied decoder's product leaves a gradient on the frozen word embeddings.
            for slot in frozen { params.gradients.base.advanced(by: slot.offset).update(repeating: 0, count: slot.count) }
            let norm = clipGradientNorm(params.gradients, count: params.layout.count, maxNorm: s.clip)
            if !norm.isFinite { throw DistillationError.nonFinite(step: current + 1, loss: "gradient norm") }
            let lr = schedule.rate(at: current)
            optimizer.update(parameters: params.parameters, gradients: params.gradients, lr: lr)
            m.refreshMatrices()
            params.gradients.zero()
            summary.tokens += batch.tokenCount
            summary.lastLoss = v.mlm
            let elapsed = Timing.now() - start
            events(.step(StepReport(step: current + 1, totalSteps: s.steps, losses: v, lr: lr, gradNorm: norm, tokens: batch.tokenCount,
                                    tokensPerSecond: Double(summary.tokens) / max(elapsed, 1e-9), elapsed: elapsed,
                                    eta: elapsed / Double(current + 1) * Double(s.steps - current - 1))))
        }
        summary.steps = s.steps
        summary.seconds = Timing.now() - start
        if let heldout {
            let e = try Evaluator.evaluate(m, reference: nil, on: heldout)
            summary.heldout = e
            events(.evaluation(step: s.steps, e))
        }
        return summary
    }

    /// Writes the model with its fitted head as a Hugging Face *ForMaskedLM folder (its
    /// config.json and safetensors metadata say the head was fitted here) and a checkpoint.
    public func save(folder: String, checkpoint: String?, tokenizer: TokenizerFiles, source: String, steps: Int, stamp: String? = nil) throws {
        let parent = URL(fileURLWithPath: folder).deletingLastPathComponent().path
        try FileManager.default.createFolder(parent)
        let staging = parent + "/." + URL(fileURLWithPath: folder).lastPathComponent + ".tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        var notes = ["distillery_head": Self.note, "distillery_head_source": source, "distillery_head_steps": String(steps)]
        if let stamp { notes["distillery_head_stamp"] = stamp }
        try HuggingFaceFolder.save(model, tokenizer: tokenizer, to: staging, notes: notes)
        try HuggingFaceFolder.replace(folder, with: staging)
        if let checkpoint {
            try ModelCheckpoint.save(model, tokenizer: tokenizer, to: checkpoint, provenance: Provenance(source: source, steps: steps))
        }
    }
}

extension HeadFitter {
    /// `distill fit-head`: reads the model, tokenizes the text (into a temporary folder beside
    /// OUTPUT, removed afterwards; prepared .tok files are read as they are), fits the head,
    /// measures it on `heldout`, and writes OUTPUT (a *ForMaskedLM folder) and
    /// OUTPUT.safetensors.zst.
    public static func run(model path: String, train: [String], heldout: [String], output: String, maxSequenceLength: Int,
                           settings: HeadFitSettings, evaluationBatches: Int = 20,
                           events: (TrainerEvent) -> Void = { _ in }) throws -> HeadFitSummary {
        try HuggingFaceFolder.checkReplaceable(output)
        let loaded = try ModelStore.load(path, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true, dropMLMHead: true))
        try ModelStore.checkFinite(loaded.model, path: path)
        let tokenizer = try BertTokenizer.of(model: path, files: loaded.tokenizer)
        let S = min(maxSequenceLength, loaded.model.config.maxPositions)
        let parent = URL(fileURLWithPath: output).deletingLastPathComponent().path
        try FileManager.default.createFolder(parent)
        let scratch = parent + "/.fit-head-data.tmp-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        func tokens(_ files: [String], _ name: String) throws -> TokenDataset {
            if files.count == 1 && files[0].hasSuffix(".tok") {
                let d = try TokenDataset(path: files[0])
                try d.checkVocabulary(tokenizer.vocabulary)
                return d
            }
            try FileManager.default.createFolder(scratch)
            let out = scratch + "/\(name).tok"
            _ = try withoutActuallyEscaping(events) { events in
                try Corpus.prepare(inputs: files, tokenizer: tokenizer, maxSequenceLength: S, output: out) {
                    events(.preparing(file: name, done: $0, total: $1))
                }
            }
            return try TokenDataset(path: out)
        }
        let trainSet = try tokens(train, "train")
        if trainSet.count == 0 { throw TrainerError.noData(path: train.joined(separator: ", ")) }
        let heldSet = try heldout.isEmpty ? nil : tokens(heldout, "heldout")
        let evalSet = heldSet.map {
            EvalSet.make($0, tokenizer: tokenizer, batchSize: 16, maxBatches: evaluationBatches, policy: settings.masking,
                         withTokenTypes: loaded.model.config.hasTokenTypes)
        }
        let fitter = HeadFitter(encoder: loaded.model, tokenCounts: trainSet.tokenCounts(), settings: settings)
        var summary = try fitter.fit(train: trainSet, heldout: evalSet, tokenizer: tokenizer, events: events)
        let checkpoint = output + ".safetensors.zst"
        try fitter.save(folder: output, checkpoint: checkpoint, tokenizer: loaded.tokenizer, source: path, steps: summary.steps)
        summary.folder = output
        summary.checkpoint = checkpoint
        return summary
    }
}

extension HeadFitter {
    /// The stamp a folder written by `save` records (nil when it has none or cannot be read).
    public static func recordedStamp(folder: String) -> String? {
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: folder + "/config.json")),
              let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return nil }
        return o["distillery_head_stamp"] as? String
    }
}
