import Foundation
import DistilleryTensor
import DistilleryModels

/// How the student is scored against the teacher (DistilBERT's losses, plus MSE on logits and a
/// hidden-state loss through a learned projection).
public struct LossSettings: Codable, Sendable, Equatable {
    public var temperature: Float = 2
    public var alphaCE: Float = 5
    public var alphaMLM: Float = 2
    public var alphaCos: Float = 1
    public var alphaMSE: Float = 0
    public var alphaHidden: Float = 0
    /// Sequence classification: the teacher's class logits at temperature T (KL × T²), and the
    /// labels (cross-entropy).
    public var alphaSoft: Float = 0
    public var alphaHard: Float = 0
    /// Soft targets only at the MLM targets (default: every non-padding token).
    public var restrictCEToMask = false
    /// Intermediate-layer losses ([[loss.match]]), each with its own weight.
    public var matches: [LayerMatch] = []
    /// Weights and the temperature that change over training, by recipe key ("alpha_ce",
    /// "temperature", …); the plain fields then hold their largest value.
    public var schedules: [String: ScheduledValue] = [:]
    public init() {}

    public var needsTeacherLogits: Bool { alphaCE > 0 || alphaMSE > 0 }
    public var needsStudentLogits: Bool { needsTeacherLogits || alphaMLM > 0 }
    public var needsClassifier: Bool { alphaSoft > 0 || alphaHard > 0 }
    /// Whether any loss compares with a teacher (without one, the step fine-tunes on labels).
    public var needsTeacher: Bool { needsTeacherLogits || alphaCos > 0 || alphaHidden > 0 || alphaSoft > 0 || !matches.isEmpty }

    /// Fine-tuning a classifier on its labels alone.
    public static var labelsOnly: LossSettings {
        var l = LossSettings()
        l.alphaCE = 0; l.alphaMLM = 0; l.alphaCos = 0; l.alphaHard = 1
        return l
    }
}

/// Loss values of one step (unweighted), as the distiller reports them.
public struct LossValues: Codable, Sendable, Equatable {
    public var total = 0.0
    public var ce = 0.0
    public var mlm = 0.0
    public var cos = 0.0
    public var mse = 0.0
    public var hidden = 0.0
    /// Sequence classification: soft targets (KL × T²) and labels (cross-entropy).
    public var soft = 0.0
    public var hard = 0.0
    /// The soft-target loss restricted to MLM targets (computed alongside, for reports).
    public var ceMaskedOnly = 0.0
    /// Each layer match's loss (unweighted), in the order of the resolved matches.
    public var matches: [Double] = []
    public init() {}

    public var isFinite: Bool { ([total, ce, mlm, cos, mse, hidden, soft, hard] + matches).allSatisfy(\.isFinite) }

    /// The named values, for logs and checks.
    public var named: [(String, Double)] {
        [("loss_total", total), ("loss_ce", ce), ("loss_mlm", mlm), ("loss_cos", cos), ("loss_mse", mse), ("loss_hidden", hidden),
         ("loss_soft", soft), ("loss_hard", hard)] + matches.enumerated().map { ("loss_match_\($0.offset)", $0.element) }
    }

    /// Adds `weight` × v (the mean over accumulated micro-batches).
    public mutating func add(_ v: LossValues, weight w: Double) {
        total += w * v.total; ce += w * v.ce; mlm += w * v.mlm; cos += w * v.cos; mse += w * v.mse; hidden += w * v.hidden
        soft += w * v.soft; hard += w * v.hard; ceMaskedOnly += w * v.ceMaskedOnly
        if matches.count < v.matches.count { matches += [Double](repeating: 0, count: v.matches.count - matches.count) }
        for (i, x) in v.matches.enumerated() { matches[i] += w * x }
    }
}

/// The student's parameters with any training-only slots (student→teacher projections)
/// appended: one buffer each for parameters and gradients, addressed by one slot table.
public final class TrainableParameters: @unchecked Sendable {
    /// A projection's slots: weight [to×from], bias [to].
    public struct Projection: Sendable, Equatable {
        public let weight: Int, bias: Int, from: Int, to: Int
    }
    public let student: EncoderModel
    public let layout: ParameterLayout
    public let gradients: FloatBuffer
    /// The projection of the last hidden state (cosine / hidden losses), when there is one.
    public let projection: Projection?
    /// Per layer match (by index among the resolved matches): its projection, when the
    /// widths differ.
    public let matchProjections: [Int: Projection]

    /// Trains `model`'s parameters in place, or, with projections (to width `projectTo` for
    /// the last hidden state, and for the matches in `matchProjections`: index → teacher
    /// width), a copy with room for them after its own. Projections start as the identity
    /// (padded or cut), so matching widths begin where no projection would.
    public init(model: EncoderModel, projectTo: Int?, matchProjections: [Int: Int] = [:]) {
        var layout = model.layout
        let from = model.config.hiddenSize
        func add(_ name: String, to: Int) -> Projection {
            let w = layout.appendExtra(name + ".weight", [to, from], decay: true)
            let b = layout.appendExtra(name + ".bias", [to], decay: false)
            return Projection(weight: w, bias: b, from: from, to: to)
        }
        let proj = projectTo.map { add("distill.projection", to: $0) }
        var matches: [Int: Projection] = [:]
        for (i, to) in matchProjections.sorted(by: { $0.key < $1.key }) { matches[i] = add("distill.match.\(i).projection", to: to) }
        if layout.count != model.layout.count {
            let params = FloatBuffer(count: layout.count)
            params.base.update(from: model.parameters.base, count: model.layout.count)
            for p in [proj].compactMap({ $0 }) + matches.values {
                for i in 0..<min(p.from, p.to) { params.base[p.weight + i * p.from + i] = 1 }
            }
            student = EncoderModel(config: model.config, parameters: params)
        } else {
            student = model
        }
        self.layout = layout
        gradients = FloatBuffer(count: layout.count)
        projection = proj
        self.matchProjections = matches
    }

    public var parameters: FloatBuffer { student.parameters }
    /// Whether training-only slots follow the model's own.
    public var hasExtras: Bool { layout.count != student.layout.count }
}

public enum DistillationError: Error, CustomStringConvertible, Equatable {
    case teacherHasNoHead
    case studentHasNoHead
    case noTeacher
    case noClassifier(model: String)
    case labelCount(teacher: Int, student: Int)
    case vocabularyMismatch(teacher: Int, student: Int)
    case widthMismatch(teacher: Int, student: Int)
    case nonFinite(step: Int, loss: String)

    public var description: String {
        switch self {
        case .teacherHasNoHead:
            return "alpha_ce and alpha_mse need teacher logits, but the teacher has no MLM head: set them to 0 (cosine/hidden losses only) or use a teacher with an MLM head"
        case .studentHasNoHead: return "alpha_mlm, alpha_ce and alpha_mse need a student with an MLM head"
        case .noTeacher: return "these losses compare with a teacher, and there is none (fine-tuning uses alpha_hard alone)"
        case let .noClassifier(m): return "alpha_soft and alpha_hard need a \(m) with a sequence-classification head"
        case let .labelCount(t, s): return "the teacher classifies into \(t) classes, the student into \(s)"
        case let .vocabularyMismatch(t, s): return "teacher vocabulary (\(t)) and student vocabulary (\(s)) differ"
        case let .widthMismatch(t, s):
            return "teacher hidden size \(t) and student hidden size \(s) differ: the cosine and hidden losses need a projection (set projection = true in [loss])"
        case let .nonFinite(step, loss): return "step \(step): \(loss) is not finite (NaN or infinity); stopping before it changes the weights (files saved earlier are as they were; lower the learning rate or the loss weights)"
        }
    }
}

/// One distillation step: teacher forward (no gradients, no stored activations), student
/// forward, the losses, and the student's backward pass into the gradient buffer.
///
/// Logits are never materialised for the whole batch: the rows that need them (soft targets
/// and MLM targets) are gathered and processed `chunkRows` at a time: student and teacher
/// logits for the chunk, the row losses and their gradient, then the decoder's backward.
public final class DistillationStep {
    /// nil when fine-tuning on labels alone.
    public let teacher: EncoderModel?
    public let params: TrainableParameters
    /// The settings as built (scheduled values at their largest).
    public let baseSettings: LossSettings
    /// The settings of the current step (`progress` applied to the schedules).
    public private(set) var settings: LossSettings
    /// Steps done / all steps: where the schedules stand.
    public var progress: Double = 0 {
        didSet { settings = baseSettings.at(progress); matchLosses?.setWeights(settings.resolvedWeights(matchLosses!.sources)) }
    }
    public let chunkRows: Int
    /// false: gradients stop at the heads (the encoder is frozen; its backward pass is skipped).
    public let trainsEncoder: Bool
    /// Data-parallel ranks: where the input embeddings' part of the word table's gradient goes
    /// (GradientReducer sums the tied decoder's dense part early, this sparse part at the end).
    public var inputWordGradients: UnsafeMutablePointer<Float>?
    let teacherActs: EncoderActivations?
    let studentActs: EncoderActivations
    /// Student and teacher logits of a chunk [chunk × V], in the scratch arena: nothing else
    /// there is live between the student's forward pass and its backward pass.
    let arena: ScratchArena
    let logitCapacity: Int
    var zs: UnsafeMutablePointer<Float> { arena.buffer.base }
    var zt: UnsafeMutablePointer<Float> { arena.buffer.base + logitCapacity }
    let hs: FloatBuffer, ht: FloatBuffer, dhs: FloatBuffer  // gathered head outputs [rows × Ht]
    let decoderScratch: FloatBuffer                      // the decoder product's backward scratch
    let dLast: FloatBuffer                               // [N×H]
    let proj: FloatBuffer, dProj: FloatBuffer            // [N×H_t] projected student hidden
    // Rows that need logits, per step: position, MLM label (−1: none), in the soft-target set.
    let rowIndex: AlignedBuffer<Int32>, rowLabel: AlignedBuffer<Int32>, rowCE: AlignedBuffer<Bool>  // [N]
    // Per-row loss values [N]: KL, MLM cross-entropy, logit MSE; per-token hidden losses [N].
    let rowKL: AlignedBuffer<Double>, rowMLM: AlignedBuffer<Double>, rowMSE: AlignedBuffer<Double>, rowHidden: AlignedBuffer<Double>
    let tokenWeight: FloatBuffer                         // [N] 1 real, 0 padding
    let classGrad: FloatBuffer                           // [B×C] student class logits, then their gradient
    let classCE: AlignedBuffer<Bool>                     // [B]
    let classKL: AlignedBuffer<Double>, classHard: AlignedBuffer<Double>, classMSE: AlignedBuffer<Double>  // [B]
    /// The layer matches, resolved, with their buffers (nil without matches).
    let matchLosses: MatchLosses?
    public var resolvedMatches: [LayerMatch] { matchLosses?.matches ?? [] }

    public var student: EncoderModel { params.student }

    /// Checks that the losses can be computed for this teacher and student.
    public static func check(_ settings: LossSettings, teacher: EncoderConfig?, student sc: EncoderConfig, projection: Bool) throws {
        if settings.needsClassifier && !sc.hasClassifier { throw DistillationError.noClassifier(model: "student") }
        guard let tc = teacher else {
            if settings.needsTeacher { throw DistillationError.noTeacher }
            if settings.needsStudentLogits && !sc.hasMLMHead { throw DistillationError.studentHasNoHead }
            return
        }
        if settings.alphaSoft > 0 && !tc.hasClassifier { throw DistillationError.noClassifier(model: "teacher") }
        if settings.alphaSoft > 0 && tc.numLabels != sc.numLabels { throw DistillationError.labelCount(teacher: tc.numLabels, student: sc.numLabels) }
        if settings.needsTeacherLogits && !tc.hasMLMHead { throw DistillationError.teacherHasNoHead }
        if settings.needsStudentLogits && !sc.hasMLMHead { throw DistillationError.studentHasNoHead }
        if (settings.needsStudentLogits || settings.needsTeacherLogits) && sc.vocabSize != tc.vocabSize {
            throw DistillationError.vocabularyMismatch(teacher: tc.vocabSize, student: sc.vocabSize)
        }
        if !settings.matches.isEmpty { _ = try settings.resolvedMatches(teacher: tc, student: sc) }
        if (settings.alphaCos > 0 || settings.alphaHidden > 0) && !projection && sc.hiddenSize != tc.hiddenSize {
            throw DistillationError.widthMismatch(teacher: tc.hiddenSize, student: sc.hiddenSize)
        }
    }

    public init(teacher: EncoderModel?, params: TrainableParameters, settings: LossSettings, maxB: Int, maxS: Int,
                chunkRows: Int = 512, trainsEncoder: Bool = true) throws {
        let sc = params.student.config, tc = teacher?.config
        try Self.check(settings, teacher: tc, student: sc, projection: params.projection != nil)
        precondition(params.student.trainable, "the student's matrices must be trainable (fp32 or bf16)")
        self.teacher = teacher; self.params = params; self.baseSettings = settings; self.settings = settings.at(0)
        self.chunkRows = chunkRows
        self.trainsEncoder = trainsEncoder
        // The teacher's temporaries are dead by the time the student's forward pass starts (its
        // outputs are kept apart), so both share one scratch arena.
        let scratch = ScratchArena()
        teacherActs = try teacher.map { try EncoderActivations(model: $0, maxB: maxB, maxS: maxS, training: false, scratch: scratch) }
        studentActs = try EncoderActivations(model: params.student, maxB: maxB, maxS: maxS, training: true, scratch: scratch)
        let N = maxB * maxS, V = sc.vocabSize
        let logitRows = settings.needsStudentLogits ? min(chunkRows, N) : 0
        logitCapacity = logitRows * V
        scratch.reserve(logitCapacity * (settings.needsTeacherLogits ? 2 : 1))
        arena = scratch
        hs = FloatBuffer(count: settings.needsStudentLogits ? N * sc.headWidth : 0)
        dhs = FloatBuffer(count: settings.needsStudentLogits ? N * sc.headWidth : 0)
        ht = FloatBuffer(count: settings.needsTeacherLogits ? N * (tc?.headWidth ?? 0) : 0)
        // The decoder products' own scratch: the logits of a chunk occupy the arena, where the
        // activations' product scratch lives.
        decoderScratch = FloatBuffer(count: max(settings.needsStudentLogits ? params.student.decoderScratch(rows: logitRows, training: true) : 0,
                                                settings.needsTeacherLogits ? teacher?.decoderScratch(rows: logitRows, training: false) ?? 0 : 0))
        dLast = FloatBuffer(count: N * sc.hiddenSize)
        let pw = params.projection?.to ?? 0
        proj = FloatBuffer(count: N * pw)
        dProj = FloatBuffer(count: N * pw)
        rowIndex = AlignedBuffer(count: N); rowLabel = AlignedBuffer(count: N); rowCE = AlignedBuffer(count: N)
        rowKL = AlignedBuffer(count: N); rowMLM = AlignedBuffer(count: N); rowMSE = AlignedBuffer(count: N)
        rowHidden = AlignedBuffer(count: N)
        tokenWeight = FloatBuffer(count: N)
        classGrad = FloatBuffer(count: maxB * max(1, sc.numLabels)); classCE = AlignedBuffer(count: maxB)
        classKL = AlignedBuffer(count: maxB); classHard = AlignedBuffer(count: maxB); classMSE = AlignedBuffer(count: maxB)
        if settings.matches.isEmpty {
            matchLosses = nil
        } else {
            guard let tc else { throw LayerMatchError.noTeacher }
            let resolved = try settings.resolvedMatches(teacher: tc, student: sc)
            for (i, m) in resolved.enumerated() where m.kind.comparesHidden && tc.hiddenSize != sc.hiddenSize && params.matchProjections[i] == nil {
                throw LayerMatchError.width(match: i, teacher: tc.hiddenSize, student: sc.hiddenSize)
            }
            matchLosses = MatchLosses(matches: resolved, sources: try settings.matchSources(teacher: tc, student: sc), params: params,
                                      teacher: tc, maxB: maxB, maxS: maxS)
            matchLosses?.setWeights(self.settings.resolvedWeights(matchLosses!.sources))
        }
    }

    /// Runs the step on `batch` (input ids already masked) with MLM `labels` (−100: not a
    /// target), adding gradients × `gradScale` into the gradient buffer.
    /// `labels` are MLM targets per position (−100: none; may be empty when no MLM loss is
    /// on), `classLabels` the class of each sequence (classification).
    /// Data-parallel ranks pass `counts`, the denominators of the whole batch (all ranks' rows),
    /// so the ranks' gradients and loss values add up to one process's; and `progress`, told
    /// when the heads' and each layer's gradients are final (see GradientReducer). With `cached` (a batch read from a
    /// teacher cache) the teacher does not run: its outputs come from the cache.
    public func run(_ batch: TokenBatch, labels: [Int32], classLabels: [Int32]? = nil, gradScale: Float = 1,
                    dropout: DropoutKeys? = nil, counts: LossCounts? = nil,
                    progress: ((BackwardProgress) -> Void)? = nil, cached: CachedTeacherBatch? = nil) throws -> LossValues {
        let s = settings, st = student
        if s.needsStudentLogits { try Self.checkLabels(labels, count: batch.B * batch.S, vocabulary: st.config.vocabSize) }
        if s.alphaHard > 0 {
            guard let classLabels else { throw InputError.shape(name: "class labels", reason: "alpha_hard needs a label for every sequence") }
            try Self.checkClassLabels(classLabels, count: batch.B, classes: st.config.numLabels)
        }
        var clock = PhaseClock()
        let N = batch.B * batch.S, ml = matchLosses
        if let cached {
            useCachedTeacher(cached, N: N)
        } else if let teacher, let teacherActs {
            try teacher.forward(batch, teacherActs, onHiddenState: ml.map { m in { m.captureTeacherHidden($0, $1, N: N) } },
                                onQKV: ml.map { m in { m.captureTeacherQKV($0, $1, N: N) } })
            if s.needsTeacherLogits { teacher.forwardHeadTransform(teacherActs) }
            if s.alphaSoft > 0 { teacher.forwardClassifier(teacherActs) }
        }
        clock.lap("teacher forward")
        try st.forward(batch, studentActs, dropout: dropout, onHiddenState: ml.map { m in { m.captureStudentHidden($0, $1, N: N) } })
        if s.needsStudentLogits { st.forwardHeadTransform(studentActs) }
        if s.needsClassifier { st.forwardClassifier(studentActs, dropout: dropout) }
        clock.lap("student forward")

        var values = LossValues()
        dLast.base.update(repeating: 0, count: batch.B * batch.S * st.config.hiddenSize)
        if s.needsStudentLogits { logitLosses(batch, labels: labels, gradScale: gradScale, counts: counts, into: &values, clock: &clock, cached: cached) }
        if s.needsClassifier {
            classificationLosses(batch, labels: classLabels, gradScale: gradScale, counts: counts, into: &values, dropout: dropout)
        }
        hiddenLosses(batch, gradScale: gradScale, counts: counts, into: &values)
        let taps = ml?.run(batch, student: st, studentActs: studentActs, grads: params.gradients, gradScale: gradScale, counts: counts,
                           values: &values.matches)
        values.total = Double(s.alphaCE) * values.ce + Double(s.alphaMLM) * values.mlm + Double(s.alphaCos) * values.cos
            + Double(s.alphaMSE) * values.mse + Double(s.alphaHidden) * values.hidden
            + Double(s.alphaSoft) * values.soft + Double(s.alphaHard) * values.hard
        for (m, v) in zip(resolvedMatches, values.matches) { values.total += Double(m.weight) * v }
        clock.lap("hidden losses")
        progress?(.heads)
        if trainsEncoder {
            st.backward(studentActs, dLast: dLast.base, grads: params.gradients, dropout: dropout, taps: taps,
                        onLayerDone: progress.map { p in { p(.layer($0)) } }, inputWordGradients: inputWordGradients)
        }
        clock.lap("student backward")
        clock.report()
        return values
    }

    /// MLM labels are −100 (not a target, as PyTorch's ignore_index) or a token id of the
    /// vocabulary: anything else would index outside a row of logits.
    public static func checkLabels(_ labels: [Int32], count: Int, vocabulary V: Int, source: String = "mlm_labels") throws {
        guard labels.count == count else {
            throw InputError.shape(name: source, reason: "\(labels.count) labels for \(count) positions")
        }
        for (i, l) in labels.enumerated() where l != -100 && (l < 0 || Int(l) >= V) {
            throw InputError.tokenOutOfRange(name: source + " (−100 marks a position that is not a target)", index: i, value: Int(l), limit: V)
        }
    }

    /// Class labels are 0…C−1, one per sequence.
    public static func checkClassLabels(_ labels: [Int32], count: Int, classes C: Int) throws {
        guard labels.count == count else { throw InputError.shape(name: "class labels", reason: "\(labels.count) labels for \(count) sequences") }
        for (i, l) in labels.enumerated() where l < 0 || Int(l) >= C {
            throw InputError.tokenOutOfRange(name: "class labels", index: i, value: Int(l), limit: C)
        }
    }

    /// Sequence classification: KL(teacher ‖ student) of the class distributions at T (× T²)
    /// and cross-entropy with the labels, each the mean over the B sequences; then the head's
    /// backward (which adds into dLast at the [CLS] rows).
    ///   zs, zt [B×C];  L = α_soft · T² · mean KL + α_hard · mean CE
    func classificationLosses(_ batch: TokenBatch, labels: [Int32]?, gradScale: Float, counts: LossCounts?, into values: inout LossValues,
                              dropout: DropoutKeys?) {
        let s = settings, st = student, B = batch.B, C = st.config.numLabels, T = s.temperature
        let meanOver = counts?.sequences ?? B  // the whole batch's sequences (data-parallel ranks)
        let zs = classGrad.base
        zs.update(from: st.classifierLogits(studentActs), count: B * C)
        let labelBuffer = rowLabel.base
        for b in 0..<B { labelBuffer[b] = s.alphaHard > 0 ? labels![b] : -1; classCE[b] = s.alphaSoft > 0 }
        let zt = s.alphaSoft > 0 ? UnsafePointer(teacher!.classifierLogits(teacherActs!)) : nil
        distillationRows(zs: zs, zt: zt, rows: B, V: C, labels: labelBuffer, ce: classCE.base, temperature: T,
                         ceScale: s.alphaSoft * T * T / Float(meanOver) * gradScale, mlmScale: s.alphaHard / Float(meanOver) * gradScale, mseScale: 0,
                         klOut: classKL.base, mlmOut: classHard.base, mseOut: classMSE.base)
        var kl = 0.0, hard = 0.0
        for b in 0..<B { kl += classKL[b]; hard += classHard[b] }
        values.soft = s.alphaSoft > 0 ? Double(T * T) * kl / Double(meanOver) : 0
        values.hard = s.alphaHard > 0 ? hard / Double(meanOver) : 0
        st.backwardClassifier(studentActs, dLogits: zs, dLast: dLast.base, grads: params.gradients, dropout: dropout)
    }

    /// The soft-target, MLM and logit-MSE losses over the rows that need logits, chunk by
    /// chunk, ending with the head transform's backward (which adds into dLast).
    func logitLosses(_ batch: TokenBatch, labels: [Int32], gradScale: Float, counts: LossCounts?, into values: inout LossValues,
                     clock: inout PhaseClock, cached: CachedTeacherBatch? = nil) {
        let s = settings, st = student, sc = st.config
        let N = batch.B * batch.S, V = sc.vocabSize, Hs = sc.headWidth, Ht = teacher?.config.headWidth ?? 0
        let grads = params.gradients
        // A row needs logits if it is in the soft-target set or is an MLM target.
        // (LossCounts.init counts the same way, for the whole batch of data-parallel ranks.)
        var rows = 0, nCE = 0, nMLM = 0
        for n in 0..<N {
            let inCE = s.needsTeacherLogits && (s.restrictCEToMask ? labels[n] >= 0 : batch.attentionMask[n] != 0)
            guard inCE || labels[n] >= 0 else { continue }
            rowIndex[rows] = Int32(n); rowLabel[rows] = max(-1, labels[n]); rowCE[rows] = inCE
            if inCE { nCE += 1 }
            if labels[n] >= 0 { nMLM += 1 }
            rows += 1
        }
        // Means over the whole batch: this process's rows, or all ranks' (data-parallel).
        if let counts { nCE = counts.softTargets; nMLM = counts.mlmTargets }
        let T = s.temperature
        let ceScale = nCE > 0 ? s.alphaCE * T * T / Float(nCE) * gradScale : 0
        let mlmScale = nMLM > 0 && s.alphaMLM > 0 ? s.alphaMLM / Float(nMLM) * gradScale : 0
        let mseScale = nCE > 0 ? s.alphaMSE / Float(nCE) * gradScale : 0
        // Gather the head outputs of the rows.
        for i in 0..<rows {
            let n = Int(rowIndex[i])
            (hs.base + i * Hs).update(from: studentActs.headOutput + n * Hs, count: Hs)
            if s.needsTeacherLogits && cached == nil { (ht.base + i * Ht).update(from: teacherActs!.headOutput + n * Ht, count: Ht) }
        }
        let word = st.matrix(st.layout.embeddings.word), headBias = st.layout.head!.bias
        var start = 0
        while start < rows {
            let r = min(chunkRows, rows - start)
            let hsC = hs.base + start * Hs
            st.decoderLogits(zs, headOutput: hsC, rows: r, scratch: decoderScratch.base)
            if s.needsTeacherLogits && cached == nil {
                teacher!.decoderLogits(zt, headOutput: ht.base + start * Ht, rows: r, scratch: decoderScratch.base)
            }
            clock.lap("logits")
            if let cached {
                // The teacher's top k of each row from the cache: no teacher logits at all.
                cached.lossRows(zs: zs, positions: rowIndex.base + start, rows: r, V: V, labels: rowLabel.base + start, ce: rowCE.base + start,
                                temperature: T, ceScale: ceScale, mlmScale: mlmScale,
                                klOut: rowKL.base + start, mlmOut: rowMLM.base + start, mseOut: rowMSE.base + start)
            } else {
                distillationRows(zs: zs, zt: s.needsTeacherLogits ? UnsafePointer(zt) : nil, rows: r, V: V,
                                 labels: rowLabel.base + start, ce: rowCE.base + start, temperature: T,
                                 ceScale: ceScale, mlmScale: mlmScale, mseScale: mseScale,
                                 klOut: rowKL.base + start, mlmOut: rowMLM.base + start, mseOut: rowMSE.base + start)
            }
            clock.lap("loss rows")
            // Decoder backward: the word embeddings (tied) and the head bias.
            let dh = dhs.base + start * Hs
            dh.update(repeating: 0, count: r * Hs)
            word.backward(dinp: dh, dweight: grads.base + st.layout.embeddings.word, dbias: grads.base + headBias,
                          dout: zs, inp: hsC, N: r, overwriteInput: false, scratch: decoderScratch.base)
            clock.lap("decoder backward")
            start += r
        }
        // Row losses summed in row order.
        var klSum = 0.0, klMasked = 0.0, mlmSum = 0.0, mseSum = 0.0
        for i in 0..<rows {
            if rowCE[i] { klSum += rowKL[i]; mseSum += rowMSE[i] }
            if rowLabel[i] >= 0 { mlmSum += rowMLM[i]; klMasked += rowKL[i] }
        }
        values.ce = nCE > 0 ? Double(T * T) * klSum / Double(nCE) : 0
        values.ceMaskedOnly = nMLM > 0 && s.needsTeacherLogits ? Double(T * T) * klMasked / Double(nMLM) : 0
        values.mlm = nMLM > 0 ? mlmSum / Double(nMLM) : 0
        values.mse = nCE > 0 ? mseSum / Double(nCE) : 0
        // Scatter the head-output gradient and backpropagate through the head transform.
        let dHead = st.headGradientScratch(studentActs)
        dHead.update(repeating: 0, count: N * Hs)
        for i in 0..<rows { (dHead + Int(rowIndex[i]) * Hs).update(from: dhs.base + i * Hs, count: Hs) }
        st.backwardHeadTransform(studentActs, dHead: dHead, dLast: dLast.base, grads: grads)
        clock.lap("head backward")
    }

    /// The cosine and MSE losses on the last hidden states over real tokens (through the
    /// learned projection when the student is narrower), adding into dLast.
    func hiddenLosses(_ batch: TokenBatch, gradScale: Float, counts: LossCounts?, into values: inout LossValues) {
        let s = settings, st = student
        let N = batch.B * batch.S
        var tokens = 0
        for n in 0..<N { tokenWeight[n] = batch.attentionMask[n]; if batch.attentionMask[n] != 0 { tokens += 1 } }
        guard (s.alphaCos > 0 || s.alphaHidden > 0) && tokens > 0, let teacher, let teacherActs else { return }
        if let counts { tokens = counts.tokens }  // means over all ranks' tokens (data-parallel)
        let Hs = st.config.hiddenSize, Ht = teacher.config.hiddenSize
        var student = UnsafePointer(studentActs.lastHidden)
        var dStudent = dLast.base
        if let p = params.projection {
            linearForward(proj.base, studentActs.lastHidden, weight: st.parameters.base + p.weight,
                          bias: st.parameters.base + p.bias, N: N, K: Hs, M: Ht)
            student = UnsafePointer(proj.base)
            dStudent = dProj.base
            dStudent.update(repeating: 0, count: N * Ht)
        }
        let perRow = rowHidden.base
        if s.alphaCos > 0 {
            cosineLossRows(s: student, t: teacherActs.lastHidden, ds: dStudent, weight: tokenWeight.base, N: N, H: Ht,
                           scale: s.alphaCos / Float(tokens) * gradScale, lossOut: perRow)
            values.cos = (0..<N).reduce(0.0) { $0 + perRow[$1] } / Double(tokens)
        }
        if s.alphaHidden > 0 {
            squaredErrorRows(s: student, t: teacherActs.lastHidden, ds: dStudent, weight: tokenWeight.base, N: N, H: Ht,
                             scale: s.alphaHidden / Float(tokens * Ht) * gradScale, lossOut: perRow)
            values.hidden = (0..<N).reduce(0.0) { $0 + perRow[$1] } / Double(tokens * Ht)
        }
        if let p = params.projection {
            linearBackward(dinp: dLast.base, dweight: params.gradients.base + p.weight, dbias: params.gradients.base + p.bias,
                           dout: dProj.base, inp: studentActs.lastHidden, weight: st.parameters.base + p.weight, N: N, K: Hs, M: Ht)
        }
    }
}

/// Per-phase wall time of a step, printed to standard error when DISTILL_PROFILE is set.
package struct PhaseClock {
    static let enabled = ProcessInfo.processInfo.environment["DISTILL_PROFILE"] != nil
    var last = Timing.now()
    var phases: [(String, Double)] = []
    package init() {}

    package mutating func lap(_ name: String) {
        guard Self.enabled else { return }
        let now = Timing.now()
        if let i = phases.firstIndex(where: { $0.0 == name }) { phases[i].1 += now - last } else { phases.append((name, now - last)) }
        last = now
    }

    package func report() {
        guard Self.enabled else { return }
        let line = phases.map { "\($0.0) \(String(format: "%.0f", $0.1 * 1000)) ms" }.joined(separator: ", ")
        FileHandle.standardError.write(Data(("step: " + line + "\n").utf8))
    }
}
