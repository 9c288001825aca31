import Foundation
import Glibc
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryQuant
import DistilleryEvaluation

/// What a step reports.
public struct StepReport: Codable, Sendable {
    public var step: Int
    public var totalSteps: Int
    public var losses: LossValues
    public var lr: Float
    public var gradNorm: Double
    public var tokens: Int
    public var tokensPerSecond: Double
    public var elapsed: Double
    public var eta: Double
    /// Scheduled loss weights and temperature at this step, by recipe key.
    public var scheduled: [String: Double] = [:]
}

public enum TrainerEvent {
    case message(String)
    case preparing(file: String, done: Int, total: Int)
    case step(StepReport)
    case evaluation(step: Int, EvalReport)
    case checkpoint(step: Int, path: String)
    /// A classification run's epoch: its training loss and the dev set's scores.
    case classification(EpochReport)
}

public struct TrainingSummary: Codable, Sendable {
    public var steps = 0
    public var totalSteps = 0
    public var interrupted = false
    public var lastLosses: LossValues?
    public var evaluation: EvalReport?
    public var studentFolder: String?
    public var studentCheckpoint: String?
    public var seconds = 0.0
    public var tokens = 0
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : 0 }
    public var studentParameters = 0
    public var teacherParameters = 0
    /// A [task] recipe's stages.
    public var task: TaskRunSummary?
    /// OUTPUT/report.md, when it could be written.
    public var report: String?
}

public enum TrainerError: Error, CustomStringConvertible, Equatable {
    case noResumeState(path: String)
    case recipeChanged(path: String)
    case noData(path: String)
    case outputInUse(path: String, file: String)
    /// --overwrite would delete a file or folder the run reads.
    case inputInOutput(what: String, path: String, output: String)

    public var description: String {
        switch self {
        case let .outputInUse(p, f):
            return "\(p) holds a previous run (\(f)): continue it with --resume, or start again with --overwrite (which deletes that run's state, metrics and student)"
        case let .noResumeState(p): return "\(p): no training state to resume from (run without --resume to start)"
        case let .recipeChanged(p): return "\(p): the recipe differs from the one this state was trained with; resume with the same recipe, or start a new run with another output folder"
        case let .noData(p): return "\(p): the prepared data holds no sequences"
        case let .inputInOutput(what, p, o):
            return "the recipe's \(what) \(p) lies in \(o), which --overwrite deletes; move it out of the output folder or give another output"
        }
    }
}

/// Runs a recipe: builds (or restores) the student, streams masked batches, distils, evaluates,
/// checkpoints, and writes the student at the end.
public final class Trainer {
    public let recipe: Recipe
    public var statePath: String { recipe.output + "/state.safetensors.zst" }
    public var metricsPath: String { recipe.output + "/metrics.jsonl" }
    /// The mpirun job this process is a rank of (data-parallel training; DataParallel.swift),
    /// nil in a single process. Only rank 0 writes into the output folder.
    public var cluster: Cluster? = Cluster.shared
    var isWriter: Bool { (cluster?.rank ?? 0) == 0 }

    public init(recipe: Recipe) { self.recipe = recipe }

    /// `stopAfterSteps` ends the run early (as an interruption would: state saved, no final
    /// student); `interrupt` is polled between steps (Ctrl-C).
    public func run(resume: Bool = false, overwrite: Bool = false, stopAfterSteps: Int? = nil, interrupt: (() -> Bool)? = nil,
                    events: (TrainerEvent) -> Void = { _ in }) throws -> TrainingSummary {
        var summary = try train(resume: resume, overwrite: overwrite, stopAfterSteps: stopAfterSteps, interrupt: interrupt, events: events)
        if cluster?.isRoot ?? true { summary.report = writeReport(events: events) }
        return summary
    }

    /// OUTPUT/report.md and curves.svg from what the run left (no speed column: no model is
    /// timed). The run's results are saved by then, so a report that cannot be written is a
    /// message rather than a failed run; `distill report` gives the error.
    func writeReport(events: (TrainerEvent) -> Void) -> String? {
        var settings = RunFolderReport.Settings()
        settings.timing = nil
        settings.recipe = recipe.text
        // A fine-tuned teacher is found in the folder; otherwise the one the student learnt from.
        settings.teacher = recipe.task?.teacherFineTune != nil ? recipe.task?.teacherOutput : teacherPath
        do {
            let written = try RunFolderReport.write(recipe.output, settings: settings)
            events(.message("report: \(written.report)" + (written.curves.map { ", \($0)" } ?? "")))
            return written.report
        } catch {
            events(.message("report not written: \(error)"))
            return nil
        }
    }

    func train(resume: Bool, overwrite: Bool, stopAfterSteps: Int?, interrupt: (() -> Bool)?,
               events: (TrainerEvent) -> Void) throws -> TrainingSummary {
        if let cluster {
            return try runDataParallel(cluster, resume: resume, overwrite: overwrite, stopAfterSteps: stopAfterSteps,
                                       interrupt: interrupt, events: events)
        }
        let start = Timing.now()
        try prepareOutput(resume: resume, overwrite: overwrite, events: events)
        if recipe.task != nil {
            var summary = try TaskRun(trainer: self).run(resume: resume, events: events)
            summary.seconds = Timing.now() - start
            return summary
        }
        if recipe.fitHead != nil { try fitTeacherHead(resume: resume, events: events) }
        let session = try TrainingSession(trainer: self, resume: resume, events: events)
        if session.current == 0 { try session.evaluate(events: events) }
        var summary = try session.train(stopAfterSteps: stopAfterSteps, interrupt: interrupt, events: events)
        try session.saveState(events: events)
        if session.current >= session.totalSteps {
            summary.evaluation = try session.evaluate(events: events, final: true)
            (summary.studentFolder, summary.studentCheckpoint) = try session.exportStudent()
        }
        summary.seconds = Timing.now() - start
        return summary
    }

    /// The teacher the distillation reads: the recipe's, or its copy with a fitted MLM head.
    public var teacherPath: String {
        guard let f = recipe.fitHead else { return recipe.teacher }
        return f.output ?? recipe.output + "/teacher-mlm"
    }

    /// [teacher.fit_head]: fits an MLM head on the frozen teacher over the recipe's training
    /// text, measures it on the held-out text, and writes OUTPUT/teacher-mlm (or the folder the
    /// recipe names). A folder fitted with the same teacher, data and settings is reused.
    func fitTeacherHead(resume: Bool, events: (TrainerEvent) -> Void) throws {
        let r = recipe, folder = teacherPath
        var settings = r.fitHead!
        settings.masking = r.data.masking
        if settings.masking.probability == 0 { settings.masking.probability = 0.15 }
        settings.seed = r.seed
        let stamp = settings.stamp(teacher: r.teacher, data: r.data.train, maxSequenceLength: r.data.maxSequenceLength)
        if FileManager.default.fileExists(atPath: folder + "/model.safetensors"), HeadFitter.recordedStamp(folder: folder) == stamp {
            events(.message("teacher: reusing the head fitted on the same text with the same settings in \(folder)"))
            return
        }
        _ = try RecipeCheck(r)
        try HuggingFaceFolder.checkReplaceable(folder)
        let loaded = try ModelStore.load(r.teacher, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let tokenizer = try BertTokenizer.of(model: r.teacher, files: loaded.tokenizer)
        let train = try dataset(r.data.train, name: "train", tokenizer: tokenizer, events: events)
        if train.count == 0 { throw TrainerError.noData(path: train.path) }
        let heldout = try r.data.heldout.isEmpty ? nil : dataset(r.data.heldout, name: "heldout", tokenizer: tokenizer, events: events)
        let fitter = HeadFitter(encoder: loaded.model, tokenCounts: train.tokenCounts(), settings: settings)
        let evalSet = heldout.map {
            EvalSet.make($0, tokenizer: tokenizer, batchSize: r.training.batchSize, maxBatches: r.evaluation.batches,
                         policy: settings.masking, withTokenTypes: loaded.model.config.hasTokenTypes)
        }
        events(.message("teacher: fitting an MLM head on the frozen encoder, \(settings.steps) steps"))
        let s = try withoutActuallyEscaping(events) { events in
            try fitter.fit(train: train, heldout: evalSet, tokenizer: tokenizer) { e in
                if case .evaluation(_, let report) = e {
                    events(.message("teacher: fitted head's held-out MLM accuracy \(report.mlmAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "–")"))
                } else { events(e) }
            }
        }
        try fitter.save(folder: folder, checkpoint: nil, tokenizer: loaded.tokenizer, source: r.teacher, steps: s.steps, stamp: stamp)
        let metrics = try MetricsLog(path: metricsPath, stage: "fit_head")
        var line: [String: Any] = ["step": s.steps, "eval": true, "tokens": s.tokens, "loss_mlm": s.lastLoss, "seconds": s.seconds]
        if let a = s.heldout?.mlmAccuracy { line["mlm_accuracy"] = a }
        try metrics.write(line)
    }

    /// What a run leaves in its output folder (the tokenized data in data/ is kept: it is
    /// reused while the text and the tokenizer stay the same).
    public var runFiles: [String] {
        [statePath, metricsPath, recipe.output + "/student", recipe.output + "/student.safetensors.zst", recipe.output + "/report.md",
         recipe.output + "/curves.svg"]
            + ["teacher", "baseline", "teacher-mlm"].flatMap { [recipe.output + "/" + $0, recipe.output + "/\($0).safetensors.zst"] }
            + [recipe.output + "/student-int8.safetensors.zst"]
    }

    /// Creates the output folder, removes what interrupted writes left, and refuses to start a
    /// fresh run over another run's files unless told to replace them.
    func prepareOutput(resume: Bool, overwrite: Bool, events: (TrainerEvent) -> Void) throws {
        let fm = FileManager.default
        try fm.createFolder(recipe.output + "/data")
        for folder in [recipe.output, recipe.output + "/data"] {
            for name in fm.removeStaleTemporaries(in: folder) { events(.message("removed \(folder)/\(name), left by an interrupted write")) }
        }
        // A resumed run replaces OUT/student at its end: a folder it may not replace is named
        // now, not after the training.
        guard !resume else { try HuggingFaceFolder.checkReplaceable(recipe.output + "/student"); return }
        let existing = runFiles.filter { fm.fileExists(atPath: $0) }
        guard !existing.isEmpty else { return }
        guard overwrite else { throw TrainerError.outputInUse(path: recipe.output, file: URL(fileURLWithPath: existing[0]).lastPathComponent) }
        // Everything is checked before anything is removed: what the run reads must not lie in
        // what it deletes, and a model folder goes only if an earlier run wrote it.
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        let taskFiles = recipe.task.map { [$0.spec.train, $0.spec.dev] } ?? []
        let inputs = ([("teacher", recipe.teacher)] + (recipe.data.train + recipe.data.heldout + taskFiles).map { ("data file", $0) })
            .map { (what: $0.0, path: $0.1, resolved: resolved($0.1)) }
        for f in existing {
            let gone = resolved(f)
            for input in inputs where input.resolved == gone || input.resolved.hasPrefix(gone + "/") {
                throw TrainerError.inputInOutput(what: input.what, path: input.path, output: f)
            }
            var isFolder: ObjCBool = false
            if fm.fileExists(atPath: f, isDirectory: &isFolder), isFolder.boolValue { try HuggingFaceFolder.checkReplaceable(f) }
        }
        for f in existing {
            do { try fm.removeItem(atPath: f) } catch { throw FileError(path: f, operation: "remove", reason: fileErrorReason(error, path: f)) }
        }
    }

    /// Tokenizes text files into OUTPUT/data/NAME.tok unless an up-to-date one is there;
    /// prepared .tok files are used as they are.
    func dataset(_ files: [String], name: String, tokenizer: BertTokenizer, events: (TrainerEvent) -> Void) throws -> TokenDataset {
        if files.count == 1 && files[0].hasSuffix(".tok") {
            let d = try TokenDataset(path: files[0])
            try d.checkVocabulary(tokenizer.vocabulary)
            return d
        }
        let out = recipe.output + "/data/\(name).tok", stamp = out + ".sources"
        let fm = FileManager.default
        let sources = files.map { f -> String in
            let a = try? fm.attributesOfItem(atPath: f)
            return "\(f)\t\((a?[.size] as? Int) ?? 0)\t\((a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        }.joined(separator: "\n") + "\nmax_seq_len \(recipe.data.maxSequenceLength)\nsequences \(recipe.data.sequences.rawValue)\nvocab \(tokenizer.vocabulary.hash)\n"
        if fm.fileExists(atPath: out), (try? String(contentsOfFile: stamp, encoding: .utf8)) == sources,
           let d = try? TokenDataset(path: out), (try? d.checkVocabulary(tokenizer.vocabulary)) != nil {
            return d
        }
        let s = try withoutActuallyEscaping(events) { events in
            try Corpus.prepare(inputs: files, tokenizer: tokenizer, maxSequenceLength: recipe.data.maxSequenceLength,
                               unit: recipe.data.sequences, output: out) {
                events(.preparing(file: name, done: $0, total: $1))
            }
        }
        events(.message("\(name): \(grouped(s.sequences)) sequences, \(grouped(s.tokens)) tokens from \(grouped(s.lines)) lines"))
        try AtomicFileWriter.write(Data(sources.utf8), to: stamp)
        return try TokenDataset(path: out)
    }

    /// Keeps the metrics of steps up to `step` (a resumed run rewrites what follows).
    func prepareMetrics(keepingThrough step: Int, fresh: Bool) throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: metricsPath) else { return }
        if fresh { try? fm.removeItem(atPath: metricsPath); return }
        let lines = String(decoding: try readFile(metricsPath), as: UTF8.self).split(separator: "\n")
        let kept = lines.filter { line in
            guard let d = line.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                  let s = o["step"] as? Int else { return false }
            return s <= step
        }
        try AtomicFileWriter.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metricsPath)
    }
}

/// One training run's state between steps: the teacher, the data, the student with its
/// optimizer and the step, named stages in the order `Trainer.run` calls them.
final class TrainingSession {
    let trainer: Trainer
    var recipe: Recipe { trainer.recipe }
    let teacherLoaded: LoadedModel
    var teacher: EncoderModel { teacherLoaded.model }
    let tokenizer: BertTokenizer
    let train: TokenDataset
    let evalSet: EvalSet?
    /// The frozen teacher's hidden states on the held-out batches, computed at the first
    /// evaluation and reused by the rest.
    let teacherOnHeldout: ReferenceHiddenCache
    let params: TrainableParameters
    var student: EncoderModel { params.student }
    let optimizer: AdamW
    let step: DistillationStep
    let masker: MLMMasker
    let batches: EpochBatches
    let perEpoch: Int
    let totalSteps: Int
    let schedule: LinearSchedule
    let metrics: MetricsLog
    /// [teacher.cache]: batches read from the cache (the teacher does not run while training).
    let cached: CachedTeacherBatch?
    /// Optimizer steps taken (restored on resume; set by DataParallel too).
    var current: Int
    /// Set when this process is one rank of a data-parallel job: the steps run there.
    var dataParallel: DataParallel?
    private var epochCache: (Int, [[Int]])?

    /// Loads the teacher and the data, builds or restores the student, and readies the step.
    init(trainer: Trainer, resume: Bool, events: (TrainerEvent) -> Void) throws {
        self.trainer = trainer
        let r = trainer.recipe

        // The checks `distill validate` makes, before anything is loaded.
        _ = try RecipeCheck(r)
        events(.message("teacher \(trainer.teacherPath)"))
        teacherLoaded = try ModelStore.load(trainer.teacherPath, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let tokenizer = try BertTokenizer.of(model: trainer.teacherPath, files: teacherLoaded.tokenizer)
        self.tokenizer = tokenizer

        // Data, tokenized once into the output folder.
        let train = try trainer.dataset(r.data.train, name: "train", tokenizer: tokenizer, events: events)
        self.train = train
        if train.count == 0 { throw TrainerError.noData(path: train.path) }
        let heldout = r.data.heldout.isEmpty ? nil : try trainer.dataset(r.data.heldout, name: "heldout", tokenizer: tokenizer, events: events)
        if r.data.masking.probability > 0 && !r.loss.needsStudentLogits {
            events(.message("note: inputs are masked (mlm_probability \(r.data.masking.probability)) but only hidden-state losses are on; the student then learns the teacher's [MASK] states. Set mlm_probability = 0.0 to train on the text as it is."))
        }

        // Student: restored from the state, or built from the teacher.
        var state: (state: TrainingState, checkpoint: Checkpoint)?
        if resume {
            guard FileManager.default.fileExists(atPath: trainer.statePath) else { throw TrainerError.noResumeState(path: trainer.statePath) }
            let loaded = try TrainingState.load(trainer.statePath)
            if loaded.state.recipeText != r.text { throw TrainerError.recipeChanged(path: trainer.statePath) }
            state = loaded
            let ranks = trainer.cluster?.size ?? 1
            if loaded.state.ranks != ranks { events(.message(resumeNote(saved: loaded.state.ranks, now: ranks, batch: r.training.batchSize))) }
        }
        let teacherModel = teacherLoaded.model
        var studentModel = try state.map { EncoderModel(config: $0.state.studentConfig) }
            ?? StudentBuilder.build(r.student, teacher: teacherModel, seed: streamKey(r.seed, 0x5354))
        if state == nil, let d = r.studentDropout {
            var c = studentModel.config
            c.hiddenDropout = d; c.attentionDropout = d
            studentModel = EncoderModel(config: c, parameters: studentModel.parameters)
        }
        let resolved = try r.loss.resolvedMatches(teacher: teacherModel.config, student: studentModel.config)
        params = TrainableParameters(model: studentModel, projectTo: r.projection ? teacherModel.config.hiddenSize : nil,
                                     matchProjections: LayerMatch.projections(resolved, teacher: teacherModel.config, student: studentModel.config))
        optimizer = AdamW(layout: params.layout, settings: r.optimizer.adamw, rule: r.optimizer.decay)
        if let state {
            try TrainingState.restore(from: state.checkpoint, params: params, optimizer: optimizer)
            optimizer.step = state.state.optimizerStep
        }
        current = state?.state.step ?? 0
        events(.message("student \(grouped(params.student.layout.modelCount)) parameters, teacher \(grouped(teacherModel.layout.modelCount))"))

        if r.training.precision == .bf16 {
            // Copies made once for the teacher, after every optimizer step for the student.
            teacherModel.convertMatricesToBF16()
            params.student.convertMatricesToBF16()
        }
        step = try DistillationStep(teacher: teacherModel, params: params, settings: r.loss, maxB: r.training.batchSize,
                                    maxS: r.data.maxSequenceLength)
        masker = MLMMasker(policy: r.data.masking, tokenizer: tokenizer, tokenCounts: r.data.masking.smoothing > 0 ? train.tokenCounts() : nil)
        if let spec = r.teacherCache {
            let masking = StaticMasking(masker: masker, seed: r.seed)
            let expected = try TeacherCacheStore.expectedHeader(recipe: r, spec: spec, teacher: teacherModel, matches: step.resolvedMatches,
                                                                train: train, masking: masking)
            let file = r.teacherCachePath!
            if !FileManager.default.fileExists(atPath: file) {
                events(.message("teacher cache: \(grouped(train.count)) sequences, top \(expected.topK) soft targets, static masking → \(file)"))
                try withoutActuallyEscaping(events) { events in
                    _ = try TeacherCacheStore.build(file, expected: expected, teacher: teacherModel, train: train, masking: masking,
                                                    padId: tokenizer.padId, batchSize: r.training.batchSize) {
                        events(.preparing(file: "teacher cache", done: $0, total: $1))
                    }
                }
            }
            let reader = try TeacherCacheStore.open(file, expected: expected)
            // Every record checked before the first step: a damaged sequence stops the run now,
            // not when an epoch reaches it.
            try reader.verify()
            events(.message("teacher cache \(file): static masking, top \(expected.topK) soft targets; the teacher does not run while training"))
            cached = CachedTeacherBatch(reader: reader, maxB: r.training.batchSize)
        } else {
            cached = nil
        }
        batches = EpochBatches(lengths: (0..<train.count).map(train.length), batchSize: r.training.batchSize, seed: r.seed,
                               order: r.training.batches)
        let perEpoch = (train.count + r.training.batchSize - 1) / r.training.batchSize
        self.perEpoch = perEpoch
        let totalSteps = r.training.steps ?? max(1, r.training.epochs! * perEpoch / r.training.accumulation)
        self.totalSteps = totalSteps
        let warmup = r.optimizer.warmupSteps ?? Int((r.optimizer.warmupFraction * Double(totalSteps)).rounded())
        schedule = LinearSchedule(peak: r.optimizer.lr, warmupSteps: min(warmup, totalSteps), totalSteps: totalSteps)
        evalSet = heldout.map {
            EvalSet.make($0, tokenizer: tokenizer, batchSize: r.training.batchSize, maxBatches: r.evaluation.batches,
                         policy: r.data.masking, withTokenTypes: teacherModel.config.hasTokenTypes)
        }
        teacherOnHeldout = ReferenceHiddenCache(reference: teacherModel)
        // Only rank 0 of a data-parallel job keeps the metrics.
        if trainer.isWriter { try trainer.prepareMetrics(keepingThrough: current, fresh: !resume) }
        metrics = trainer.isWriter ? try MetricsLog(path: trainer.metricsPath) : MetricsLog.discarding
    }

    /// The sequences of micro-batch `g` (counted over the whole run, epochs following each other).
    func batchIndices(micro g: Int) -> [Int] {
        let e = g / perEpoch, i = g % perEpoch
        if epochCache?.0 != e { epochCache = (e, batches.epoch(e)) }
        return epochCache!.1[i]
    }

    /// Micro-batch `g`, collated and masked (masks keyed by the seed, g and each sequence's
    /// row, as data-parallel ranks key their shares).
    func microBatch(_ g: Int) throws -> (batch: TokenBatch, labels: [Int32]) {
        let r = recipe
        if let cached {
            // Static masking: the masks and the teacher's outputs stored with each sequence.
            return try cached.load(batchIndices(micro: g), lengths: train.length, padId: tokenizer.padId, tokenTypes: teacher.config.hasTokenTypes)
        }
        let c = train.collate(batchIndices(micro: g), padId: tokenizer.padId)
        let masked = masker.applyPerSequence(TokenBatchView(inputIds: c.ids, attentionMask: c.mask), S: c.S,
                                             key: streamKey(r.seed, 0x4D41_534B, UInt64(g)))
        let batch = TokenBatch(B: c.B, S: c.S, inputIds: masked.inputIds, attentionMask: c.mask,
                               tokenTypes: teacher.config.hasTokenTypes ? [Int32](repeating: 0, count: c.B * c.S) : nil)
        return (batch, masked.labels)
    }

    /// One optimizer step: the micro-batches' gradients, clipping, AdamW. Returns the mean
    /// losses, the gradient norm and the real tokens seen.
    func trainStep() throws -> (losses: LossValues, gradNorm: Double, lr: Float, tokens: Int) {
        if let dataParallel { return try dataParallel.step(self) }
        let r = recipe, accumulation = r.training.accumulation
        var losses = LossValues()
        var tokens = 0
        step.progress = Double(current) / Double(max(1, totalSteps))
        for micro in 0..<accumulation {
            let g = current * accumulation + micro
            let (batch, labels) = try microBatch(g)
            let keys = r.training.dropout ? DropoutKeys(seed: streamKey(r.seed, 0x4452_4F50), iteration: UInt64(g)) : nil
            let v = try step.run(batch, labels: labels, gradScale: 1 / Float(accumulation), dropout: keys, cached: cached)
            for (name, value) in v.named where !value.isFinite {
                throw DistillationError.nonFinite(step: current + 1, loss: name)
            }
            losses.add(v, weight: 1 / Double(accumulation))
            tokens += batch.tokenCount
        }
        let norm = clipGradientNorm(params.gradients, count: params.layout.count, maxNorm: r.optimizer.clip)
        if !norm.isFinite { throw DistillationError.nonFinite(step: current + 1, loss: "gradient norm") }
        let lr = schedule.rate(at: current)
        optimizer.update(parameters: params.parameters, gradients: params.gradients, lr: lr)
        student.refreshMatrices()
        params.gradients.zero()
        current += 1
        return (losses, norm, lr, tokens)
    }

    /// Steps until the end, `stopAfterSteps` more, or an interruption; evaluates and saves the
    /// state as the recipe says along the way.
    func train(stopAfterSteps: Int?, interrupt: (() -> Bool)?, events: (TrainerEvent) -> Void) throws -> TrainingSummary {
        var summary = TrainingSummary()
        summary.totalSteps = totalSteps
        summary.studentParameters = student.layout.modelCount
        summary.teacherParameters = teacher.layout.modelCount
        let r = recipe
        let runStart = Timing.now(), firstStep = current
        var runTokens = 0
        while current < totalSteps {
            if let stopAfterSteps, current - firstStep >= stopAfterSteps { break }
            if interrupt?() == true { summary.interrupted = true; break }
            let (losses, norm, lr, tokens) = try trainStep()
            runTokens += tokens
            let elapsed = Timing.now() - runStart
            let report = StepReport(step: current, totalSteps: totalSteps, losses: losses, lr: lr, gradNorm: norm, tokens: tokens,
                                    tokensPerSecond: Double(runTokens) / max(elapsed, 1e-9), elapsed: elapsed,
                                    eta: elapsed / Double(current - firstStep) * Double(totalSteps - current))
            var withSchedule = report
            withSchedule.scheduled = r.loss.scheduledValues(at: Double(current - 1) / Double(max(1, totalSteps)))
            try metrics.append(withSchedule)
            summary.lastLosses = losses
            events(.step(withSchedule))
            if r.evaluation.every > 0, current % r.evaluation.every == 0, current < totalSteps { try evaluate(events: events) }
            if r.checkpoints.every > 0, current % r.checkpoints.every == 0, current < totalSteps { try saveState(events: events) }
        }
        summary.steps = current
        summary.tokens = runTokens
        return summary
    }

    /// Evaluates the student against the teacher on the held-out set (nil without one, or when
    /// evaluation is off, except for the final one), logging it.
    @discardableResult
    func evaluate(events: (TrainerEvent) -> Void, final: Bool = false) throws -> EvalReport? {
        guard trainer.isWriter, let evalSet, final || recipe.evaluation.every > 0 else { return nil }
        let e = try Evaluator.evaluate(student, reference: teacher, on: evalSet, referenceCache: teacherOnHeldout)
        try metrics.append(evaluation: e, step: current)
        events(.evaluation(step: current, e))
        return e
    }

    /// Saves parameters, Adam moments, the step and the data position.
    func saveState(events: (TrainerEvent) -> Void) throws {
        guard trainer.isWriter else { return }
        let r = recipe, g = current * r.training.accumulation
        let s = TrainingState(step: current, optimizerStep: optimizer.step,
                              position: DataPosition(epoch: g / perEpoch, batch: g % perEpoch),
                              studentConfig: student.config, recipeText: r.text, ranks: trainer.cluster?.size ?? 1)
        try TrainingState.save(s, params: params, optimizer: optimizer, to: trainer.statePath)
        events(.checkpoint(step: current, path: trainer.statePath))
    }

    /// The student alone (no training-only projection), as a Hugging Face folder and a compact
    /// checkpoint.
    func exportStudent() throws -> (folder: String, checkpoint: String) {
        let r = recipe
        var final = student
        if params.hasExtras {
            final = EncoderModel(config: student.config)
            final.parameters.base.update(from: student.parameters.base, count: final.layout.count)
        }
        let folder = r.output + "/student", ck = r.output + "/student.safetensors.zst"
        // The folder is written beside its place and renamed into it: a run killed here leaves
        // the previous student or none, never a folder without its vocabulary.
        let staging = r.output + "/.student.tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try HuggingFaceFolder.save(final, tokenizer: teacherLoaded.tokenizer, to: staging)
        try HuggingFaceFolder.replace(folder, with: staging)
        try ModelCheckpoint.save(final, tokenizer: teacherLoaded.tokenizer, to: ck,
                                 provenance: Provenance(source: r.path, teacher: r.teacher, steps: current),
                                 recipe: r.text, level: r.checkpoints.level)
        return (folder, ck)
    }
}

/// metrics.jsonl: one JSON object a line, a step or an evaluation.
final class MetricsLog {
    let path: String
    let fd: Int32
    /// Written into every line: which stage of a run it belongs to ("teacher", "student"…).
    let stage: String?
    init(path: String, stage: String? = nil) throws {
        self.path = path
        self.stage = stage
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path: path, operation: "open for writing", reason: String(cString: strerror(errno))) }
    }
    /// Writes nothing (ranks other than 0 of a data-parallel job).
    private init() { path = ""; stage = nil; fd = -1 }
    static var discarding: MetricsLog { MetricsLog() }
    deinit { if fd >= 0 { close(fd) } }

    func write(_ object: [String: Any]) throws {
        guard fd >= 0 else { return }
        var object = object
        if let stage { object["stage"] = stage }
        let d = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) + Data("\n".utf8)
        try d.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileError(path: path, operation: "append to", reason: String(cString: strerror(errno)))
                }
                done += n
            }
        }
    }

    func append(_ r: StepReport) throws {
        var o: [String: Any] = ["step": r.step, "lr": Double(r.lr), "grad_norm": r.gradNorm, "tokens": r.tokens,
                                "tokens_per_s": r.tokensPerSecond, "elapsed_s": r.elapsed]
        for (name, v) in r.losses.named { o[name] = v }
        for (name, v) in r.scheduled { o[name] = v }
        try write(o)
    }

    func append(epoch e: EpochReport) throws {
        var o: [String: Any] = ["step": e.step, "epoch": e.epoch, "eval": true, "train_loss": e.trainLoss, "dev_accuracy": e.dev.accuracy,
                                "dev_macro_f1": e.dev.macroF1, "dev_loss": e.dev.loss, "dev_examples": e.dev.examples]
        if let a = e.dev.agreement { o["dev_teacher_agreement"] = a }
        try write(o)
    }

    func append(evaluation e: EvalReport, step: Int) throws {
        var o: [String: Any] = ["step": step, "eval": true, "sequences": e.sequences, "tokens": e.tokens]
        if let v = e.mlmAccuracy { o["mlm_accuracy"] = v }
        if let v = e.mlmLoss { o["mlm_loss"] = v }
        if let v = e.top1Agreement { o["top1_agreement"] = v }
        if let v = e.kl { o["kl"] = v }
        if let v = e.hiddenCosine { o["hidden_cosine"] = v }
        if let v = e.sentenceCosine { o["sentence_cosine"] = v }
        try write(o)
    }
}
