import Foundation
import DistilleryTensor
import DistilleryModels

/// One intermediate-layer loss ([[loss.match]] in a recipe): a teacher layer, a student layer,
/// what is compared and its weight. Hidden states are numbered 0 (the embedding output) to L;
/// attention maps and relations 1 to L (the layer whose self-attention they come from).
public struct LayerMatch: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// Mean squared error of the hidden states over real tokens (through a learned linear
        /// projection when the widths differ).
        case hiddenMSE = "hidden_mse"
        /// Mean of 1 − cos of the hidden states over real tokens (same projection rule).
        case hiddenCos = "hidden_cos"
        /// Mean squared error of the sentence embeddings: the hidden states mean-pooled over
        /// real tokens, as sentence-transformers pools them and distils its students (same
        /// projection rule, applied to the pooled vector).
        case sentenceMSE = "sentence_mse"
        /// KL(teacher ‖ student) of the attention probabilities (TinyBERT).
        case attentionKL = "attention_kl"
        /// Squared error of the attention probabilities.
        case attentionMSE = "attention_mse"
        /// KL of the q-q, k-k and v-v self-relations over R relation heads (MiniLMv2).
        case relation

        public var comparesHidden: Bool { self == .hiddenMSE || self == .hiddenCos || self == .sentenceMSE }
    }

    public var kind: Kind
    /// nil (both): the uniform map over every student layer, teacher layer g(m) = m · L_t / L_s.
    public var teacherLayer: Int?
    public var studentLayer: Int?
    public var weight: Float = 1
    /// Relation heads (default: the teacher's attention heads).
    public var relationHeads: Int?
    /// A weight that changes over training (`weight` then holds its largest value).
    public var weightSchedule: ScheduledValue?

    public init(kind: Kind, teacherLayer: Int? = nil, studentLayer: Int? = nil, weight: Float = 1, relationHeads: Int? = nil) {
        self.kind = kind; self.teacherLayer = teacherLayer; self.studentLayer = studentLayer; self.weight = weight
        self.relationHeads = relationHeads
    }

    /// This match with its layers given: itself, or one per student layer under the uniform map
    /// (from the embedding output for hidden states, from layer 1 for attention and relations).
    public func expanded(teacherLayers Lt: Int, studentLayers Ls: Int) -> [LayerMatch] {
        guard teacherLayer == nil && studentLayer == nil else { return [self] }
        return ((kind.comparesHidden ? 0 : 1)...Ls).map { m in
            var e = LayerMatch(kind: kind, teacherLayer: m * Lt / Ls, studentLayer: m, weight: weight, relationHeads: relationHeads)
            e.weightSchedule = weightSchedule
            return e
        }
    }

    /// Matches (by index) that compare hidden states of different widths: each gets a
    /// projection to the teacher's width.
    public static func projections(_ resolved: [LayerMatch], teacher tc: EncoderConfig, student sc: EncoderConfig) -> [Int: Int] {
        guard tc.hiddenSize != sc.hiddenSize else { return [:] }
        return Dictionary(uniqueKeysWithValues: resolved.enumerated().filter { $0.element.kind.comparesHidden }.map { ($0.offset, tc.hiddenSize) })
    }

    public var label: String { "\(kind.rawValue) t\(teacherLayer.map(String.init) ?? "*")→s\(studentLayer.map(String.init) ?? "*")" }
}

public enum LayerMatchError: Error, CustomStringConvertible, Equatable {
    case layer(match: Int, side: String, layer: Int, range: ClosedRange<Int>)
    case halfMap(match: Int)
    case relationHeads(match: Int, heads: Int, teacherWidth: Int, studentWidth: Int)
    case width(match: Int, teacher: Int, student: Int)
    case noTeacher

    public var description: String {
        switch self {
        case let .layer(i, side, l, r):
            return "[[loss.match]] \(i + 1): \(side) layer \(l) does not exist (\(r.lowerBound)…\(r.upperBound) for this kind: hidden states count the embedding output as 0, attention and relations start at layer 1)"
        case let .halfMap(i): return "[[loss.match]] \(i + 1): give both teacher and student layers, or neither (the uniform map m · L_t / L_s)"
        case let .relationHeads(i, r, t, s): return "[[loss.match]] \(i + 1): relation_heads = \(r) must divide both widths (teacher \(t), student \(s))"
        case let .width(i, t, s): return "[[loss.match]] \(i + 1): widths differ (teacher \(t), student \(s)) and this kind has no projection"
        case .noTeacher: return "layer matches compare with a teacher, and there is none"
        }
    }
}

extension LossSettings {
    /// For each resolved match, the index of the recipe's match it comes from.
    public func matchSources(teacher tc: EncoderConfig, student sc: EncoderConfig) throws -> [Int] {
        let Lt = ParameterLayout(config: tc).steps.count, Ls = ParameterLayout(config: sc).steps.count
        return matches.enumerated().flatMap { i, m in [Int](repeating: i, count: m.expanded(teacherLayers: Lt, studentLayers: Ls).count) }
    }

    /// The resolved matches' weights, from the recipe's matches they come from.
    func resolvedWeights(_ sources: [Int]) -> [Float] { sources.map { matches[$0].weight } }

    /// The matches with their layers resolved, checked against the two configurations.
    public func resolvedMatches(teacher tc: EncoderConfig, student sc: EncoderConfig) throws -> [LayerMatch] {
        let Lt = ParameterLayout(config: tc).steps.count, Ls = ParameterLayout(config: sc).steps.count
        var out: [LayerMatch] = []
        for (i, m) in matches.enumerated() {
            if (m.teacherLayer == nil) != (m.studentLayer == nil) { throw LayerMatchError.halfMap(match: i) }
            for e in m.expanded(teacherLayers: Lt, studentLayers: Ls) {
                let low = e.kind.comparesHidden ? 0 : 1
                if !(low...Lt).contains(e.teacherLayer!) { throw LayerMatchError.layer(match: i, side: "teacher", layer: e.teacherLayer!, range: low...Lt) }
                if !(low...Ls).contains(e.studentLayer!) { throw LayerMatchError.layer(match: i, side: "student", layer: e.studentLayer!, range: low...Ls) }
                if e.kind == .relation {
                    let r = e.relationHeads ?? tc.numHeads
                    guard r >= 1, tc.hiddenSize % r == 0, sc.hiddenSize % r == 0 else {
                        throw LayerMatchError.relationHeads(match: i, heads: r, teacherWidth: tc.hiddenSize, studentWidth: sc.hiddenSize)
                    }
                }
                out.append(e)
            }
        }
        return out
    }
}

/// The layer-matching part of a distillation step: captures the teacher's hidden states and
/// projections where matches read them, computes each match's loss and gradient, and hands
/// the gradients to the student's backward pass as taps.
final class MatchLosses {
    private(set) var matches: [LayerMatch]
    /// For each resolved match, the recipe match it comes from.
    let sources: [Int]
    /// Per match: the projection's slots when it has one.
    let projections: [TrainableParameters.Projection?]
    let teacherHidden: [Int: FloatBuffer]    // teacher layer → [N×Ht]
    let teacherQKV: [Int: FloatBuffer]       // teacher layer → [N×3Ht]
    let studentHidden: [Int: FloatBuffer]    // student layer → [N×Hs]
    let dHidden: [Int: FloatBuffer]          // student layer → [N×Hs]
    let dQKV: [Int: FloatBuffer]             // student layer → [N×3Hs]
    let projected: FloatBuffer, dProjected: FloatBuffer  // [N×Ht]
    let tokenWeight: FloatBuffer             // [N]
    // Sentence matches: pooled teacher, pooled student, and the student's pooled gradient.
    let pooledT: FloatBuffer                 // [B×Ht]
    let pooledS: FloatBuffer, dPooledS: FloatBuffer  // [B×Hs]
    let sequenceWeight: FloatBuffer          // [B]: 1 for a sequence with a real token
    let perRow: AlignedBuffer<Double>        // [N]
    let scratch: MatchScratch
    let tc: EncoderConfig, sc: EncoderConfig

    init(matches: [LayerMatch], sources: [Int], params: TrainableParameters, teacher tc: EncoderConfig, maxB: Int, maxS: Int) {
        self.matches = matches
        self.sources = sources
        let sc = params.student.config
        self.tc = tc; self.sc = sc
        projections = matches.indices.map { params.matchProjections[$0] }
        let N = maxB * maxS, Ht = tc.hiddenSize, Hs = sc.hiddenSize
        var th: [Int: FloatBuffer] = [:], tq: [Int: FloatBuffer] = [:], sh: [Int: FloatBuffer] = [:]
        var dh: [Int: FloatBuffer] = [:], dq: [Int: FloatBuffer] = [:]
        for m in matches {
            if m.kind.comparesHidden {
                if th[m.teacherLayer!] == nil { th[m.teacherLayer!] = FloatBuffer(count: N * Ht) }
                if sh[m.studentLayer!] == nil { sh[m.studentLayer!] = FloatBuffer(count: N * Hs) }
                if dh[m.studentLayer!] == nil { dh[m.studentLayer!] = FloatBuffer(count: N * Hs) }
            } else {
                if tq[m.teacherLayer!] == nil { tq[m.teacherLayer!] = FloatBuffer(count: N * 3 * Ht) }
                if dq[m.studentLayer!] == nil { dq[m.studentLayer!] = FloatBuffer(count: N * 3 * Hs) }
            }
        }
        teacherHidden = th; teacherQKV = tq; studentHidden = sh; dHidden = dh; dQKV = dq
        let needsProjection = projections.contains { $0 != nil }
        projected = FloatBuffer(count: needsProjection ? N * Ht : 0)
        dProjected = FloatBuffer(count: needsProjection ? N * Ht : 0)
        tokenWeight = FloatBuffer(count: N)
        let pools = matches.contains { $0.kind == .sentenceMSE }
        pooledT = FloatBuffer(count: pools ? maxB * Ht : 0)
        pooledS = FloatBuffer(count: pools ? maxB * Hs : 0)
        dPooledS = FloatBuffer(count: pools ? maxB * Hs : 0)
        sequenceWeight = FloatBuffer(count: pools ? maxB : 0)
        perRow = AlignedBuffer(count: N)
        scratch = MatchScratch(maxS: matches.contains { !$0.kind.comparesHidden } ? maxS : 0, studentHeads: sc.numHeads)
    }

    /// The current weights (schedules move them).
    func setWeights(_ w: [Float]) { for i in matches.indices { matches[i].weight = w[i] } }

    /// Copies what the matches read from the teacher's forward pass as it runs.
    func captureTeacherHidden(_ l: Int, _ h: UnsafePointer<Float>, N: Int) {
        teacherHidden[l]?.base.update(from: h, count: N * tc.hiddenSize)
    }
    func captureTeacherQKV(_ k: Int, _ q: UnsafePointer<Float>, N: Int) {
        teacherQKV[k + 1]?.base.update(from: q, count: N * 3 * tc.hiddenSize)
    }
    func captureStudentHidden(_ l: Int, _ h: UnsafePointer<Float>, N: Int) {
        studentHidden[l]?.base.update(from: h, count: N * sc.hiddenSize)
    }

    /// Every match's weighted loss, and the gradients: into the taps' buffers and, for the
    /// projections, into `grads`. Returns the taps for the student's backward pass.
    /// `counts` (data-parallel ranks): the whole batch's denominators, for means over all ranks' rows.
    func run(_ batch: TokenBatch, student: EncoderModel, studentActs: EncoderActivations, grads: FloatBuffer, gradScale: Float,
             counts: LossCounts? = nil, values: inout [Double]) -> BackwardTaps {
        let B = batch.B, S = batch.S, N = B * S, Ht = tc.hiddenSize, Hs = sc.hiddenSize
        for (_, b) in dHidden { b.base.update(repeating: 0, count: N * Hs) }
        for (_, b) in dQKV { b.base.update(repeating: 0, count: N * 3 * Hs) }
        var tokens = 0
        for n in 0..<N { tokenWeight[n] = batch.attentionMask[n]; if batch.attentionMask[n] != 0 { tokens += 1 } }
        let local = tokens
        if let counts { tokens = counts.tokens }
        let totals = counts?.matchTotals
        let sequences = counts?.sequences ?? B
        if sequenceWeight.count > 0 {  // sentence matches: sequences with a real token
            for b in 0..<B { sequenceWeight[b] = 0; for i in 0..<S where tokenWeight[b * S + i] != 0 { sequenceWeight[b] = 1; break } }
        }
        let mask = studentActs.attentionMask
        values = []
        for (i, m) in matches.enumerated() {
            let w = m.weight * gradScale
            var loss = 0.0
            switch m.kind {
            case .sentenceMSE:
                // pooled [B×H] = mean over real tokens; x = P(pooled student) [B×Ht];
                // loss = Σ_b Σ_c (x − pooled teacher)² / (sequences · Ht)
                let t = teacherHidden[m.teacherLayer!]!.base, s = studentHidden[m.studentLayer!]!.base
                let ds = dHidden[m.studentLayer!]!.base
                meanPoolForward(pooledT.base, t, mask: tokenWeight.base, B: B, S: S, H: Ht)
                meanPoolForward(pooledS.base, s, mask: tokenWeight.base, B: B, S: S, H: Hs)
                var x = UnsafePointer(pooledS.base), dx = dPooledS.base
                dx.update(repeating: 0, count: B * Hs)
                if let p = projections[i] {
                    linearForward(projected.base, pooledS.base, weight: student.parameters.base + p.weight,
                                  bias: student.parameters.base + p.bias, N: B, K: Hs, M: Ht)
                    x = UnsafePointer(projected.base); dx = dProjected.base
                    dx.update(repeating: 0, count: B * Ht)
                }
                guard local > 0 else { break }
                squaredErrorRows(s: x, t: pooledT.base, ds: dx, weight: sequenceWeight.base, N: B, H: Ht,
                                 scale: w / Float(sequences * Ht), lossOut: perRow.base)
                loss = (0..<B).reduce(0.0) { $0 + perRow[$1] } / Double(sequences * Ht)
                if let p = projections[i] {
                    linearBackward(dinp: dPooledS.base, dweight: grads.base + p.weight, dbias: grads.base + p.bias, dout: dProjected.base,
                                   inp: pooledS.base, weight: student.parameters.base + p.weight, N: B, K: Hs, M: Ht)
                }
                meanPoolBackward(ds, dout: dPooledS.base, mask: tokenWeight.base, B: B, S: S, H: Hs)
            case .hiddenMSE, .hiddenCos:
                let t = teacherHidden[m.teacherLayer!]!.base, s = studentHidden[m.studentLayer!]!.base
                let ds = dHidden[m.studentLayer!]!.base
                var x = UnsafePointer(s), dx = ds
                if let p = projections[i] {
                    linearForward(projected.base, s, weight: student.parameters.base + p.weight, bias: student.parameters.base + p.bias,
                                  N: N, K: Hs, M: Ht)
                    x = UnsafePointer(projected.base); dx = dProjected.base
                    dx.update(repeating: 0, count: N * Ht)
                }
                guard local > 0 else { break }
                if m.kind == .hiddenMSE {
                    squaredErrorRows(s: x, t: t, ds: dx, weight: tokenWeight.base, N: N, H: Ht, scale: w / Float(tokens * Ht), lossOut: perRow.base)
                    loss = (0..<N).reduce(0.0) { $0 + perRow[$1] } / Double(tokens * Ht)
                } else {
                    cosineLossRows(s: x, t: t, ds: dx, weight: tokenWeight.base, N: N, H: Ht, scale: w / Float(tokens), lossOut: perRow.base)
                    loss = (0..<N).reduce(0.0) { $0 + perRow[$1] } / Double(tokens)
                }
                if let p = projections[i] {
                    linearBackward(dinp: ds, dweight: grads.base + p.weight, dbias: grads.base + p.bias, dout: dProjected.base,
                                   inp: s, weight: student.parameters.base + p.weight, N: N, K: Hs, M: Ht)
                }
            case .attentionKL, .attentionMSE:
                attentionMatch(m.kind == .attentionKL ? .kl : .squaredError,
                               student: studentActs.qkv(step: m.studentLayer! - 1), studentWidth: Hs, studentHeads: sc.numHeads,
                               teacher: teacherQKV[m.teacherLayer!]!.base, teacherWidth: Ht, teacherHeads: tc.numHeads,
                               mask: mask, B: B, S: S, weight: w, dqkv: dQKV[m.studentLayer!]!.base, scratch: scratch, lossOut: perRow.base,
                               totals: totals)
                loss = (0..<B).reduce(0.0) { $0 + perRow[$1] }
            case .relation:
                relationMatch(student: studentActs.qkv(step: m.studentLayer! - 1), studentWidth: Hs, teacher: teacherQKV[m.teacherLayer!]!.base,
                              teacherWidth: Ht, relationHeads: m.relationHeads ?? tc.numHeads, mask: mask, B: B, S: S, weight: w,
                              dqkv: dQKV[m.studentLayer!]!.base, scratch: scratch, lossOut: perRow.base, totals: totals)
                loss = (0..<B).reduce(0.0) { $0 + perRow[$1] }
            }
            values.append(loss)
        }
        var taps = BackwardTaps(layers: ParameterLayout(config: sc).steps.count)
        for (l, b) in dHidden { taps.hidden[l] = UnsafePointer(b.base) }
        for (l, b) in dQKV { taps.qkv[l - 1] = UnsafePointer(b.base) }
        return taps
    }
}
