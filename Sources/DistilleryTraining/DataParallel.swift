import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText

// Data-parallel distillation over MPI (`mpirun -np N distill run RECIPE.toml`).
//
// Every rank holds the teacher and the student and takes a contiguous share of each global
// batch (the recipe's batch_size), padded to the whole batch's length. Everything random is
// keyed by the global step and the sequence's row in the global batch (masks: MLMMasker's
// applyPerSequence; dropout: DropoutKeys.rowOffset), never by the rank. Each rank scales its
// losses by the whole batch's denominators (one small allreduce of the counts per step), so the
// ranks' gradients add up to what one process computes for the whole batch; GradientReducer
// sums them while the backward pass runs. Every rank then clips and applies the same AdamW step
// to identical sums. So 1, 2 or N ranks give the same losses up to the rounding of the
// reduction order, and a fixed rank count gives the same bits run to run.
//
// Rank 0 alone writes the output folder (metrics, evaluations, states, the student). A failure
// on one rank is agreed on by all (Cluster.together, the end-of-step reduction), so the job
// stops everywhere with one message naming the rank and the step.

/// The denominators of a batch's mean losses (DistillationStep's per-token and per-sequence
/// means), summed over all ranks' shares.
public struct LossCounts: Sendable, Equatable {
    /// Rows in the soft-target set (also the logit MSE's).
    public var softTargets = 0
    public var mlmTargets = 0
    /// Real (non-padding) tokens: the hidden-state losses' mean.
    public var tokens = 0
    public var sequences = 0
    /// Σ over sequences of (real length)²: the attention-map squared error's mean.
    public var squaredLengths = 0
    public init() {}

    /// A batch's counts, as DistillationStep.logitLosses and hiddenLosses count them.
    public init(batch: TokenBatch, labels: [Int32], settings s: LossSettings) {
        sequences = batch.B
        for b in 0..<batch.B {
            var length = 0
            for n in (b * batch.S)..<((b + 1) * batch.S) {
                let label = labels.isEmpty ? -100 : labels[n]
                if batch.attentionMask[n] != 0 { length += 1 }
                if s.needsStudentLogits {
                    if s.needsTeacherLogits && (s.restrictCEToMask ? label >= 0 : batch.attentionMask[n] != 0) { softTargets += 1 }
                    if label >= 0 { mlmTargets += 1 }
                }
            }
            tokens += length
            squaredLengths += length * length
        }
    }

    static let fields = 5
    var values: [Double] { [Double(softTargets), Double(mlmTargets), Double(tokens), Double(sequences), Double(squaredLengths)] }
    init(_ v: ArraySlice<Double>) {
        let v = Array(v)
        softTargets = Int(v[0]); mlmTargets = Int(v[1]); tokens = Int(v[2]); sequences = Int(v[3]); squaredLengths = Int(v[4])
    }

    /// The layer matches' denominators.
    var matchTotals: MatchTotals { MatchTotals(tokens: tokens, squaredLengths: squaredLengths) }
}

/// The rows of a global batch of `count` sequences that rank `rank` of `ranks` takes: a
/// contiguous slice, the slices' sizes differing by at most one.
public func dataParallelShare(of count: Int, rank: Int, ranks: Int) -> Range<Int> {
    Parallel.chunk(rank, of: ranks, count: count)
}

/// One rank's side of a data-parallel run: its shares, the step, the gradient reducer.
final class DataParallel {
    let cluster: Cluster
    let reducer: GradientReducer
    /// The user asked to stop (Ctrl-C), on this rank.
    let interrupt: (() -> Bool)?
    /// Some rank asked to stop at the end of the last step (so all stop together).
    private(set) var stopAgreed = false
    /// Communication figures of each step.
    private(set) var history: [GradientReducer.Stats] = []

    init(session: TrainingSession, cluster: Cluster, interrupt: (() -> Bool)?) {
        self.cluster = cluster
        self.interrupt = interrupt
        // The word table's two parts are summed apart when the tied decoder writes it densely.
        let split = session.recipe.loss.needsStudentLogits && session.student.config.hasMLMHead
        reducer = GradientReducer(layout: session.params.layout, gradients: session.params.gradients, splitWordTable: split)
        session.step.inputWordGradients = reducer.inputWordGradients?.base
    }

    /// The rows of the word table any rank's batch uses, as `GradientReducer.finish` takes them,
    /// from `used` (per id, > 0 where some rank used it).
    static func wordRows(_ used: ArraySlice<Double>) -> [Int32] {
        var rows: [Int32] = []
        for (i, u) in used.enumerated() where u > 0 { rows.append(Int32(i)) }
        return rows
    }

    /// This rank's rows of micro-batch `g`, padded to the whole batch's length and masked as
    /// the whole batch is (with a teacher cache: as stored, with the teacher's outputs); nil when the batch has fewer sequences than there are ranks and this
    /// rank has none.
    typealias Share = (batch: TokenBatch, labels: [Int32], firstRow: Int, indices: [Int])
    func share(_ s: TrainingSession, micro g: Int) throws -> Share? {
        let all = s.batchIndices(micro: g)
        let rows = dataParallelShare(of: all.count, rank: cluster.rank, ranks: cluster.size)
        guard !rows.isEmpty else { return nil }
        let S = all.map(s.train.length).max() ?? 0
        if let cached = s.cached {
            let mine = Array(all[rows])
            let (batch, labels) = try cached.load(mine, lengths: s.train.length, padId: s.tokenizer.padId, tokenTypes: s.teacher.config.hasTokenTypes, padTo: S)
            return (batch, labels, rows.lowerBound, mine)
        }
        let mine = all[rows]
        var ids = [Int32](repeating: s.tokenizer.padId, count: mine.count * S)
        var mask = [Float](repeating: 0, count: mine.count * S)
        ids.withUnsafeMutableBufferPointer { p in
            for (b, i) in mine.enumerated() {
                s.train.copy(i, into: p.baseAddress! + b * S)
                for k in 0..<s.train.length(i) { mask[b * S + k] = 1 }
            }
        }
        let masked = s.masker.applyPerSequence(TokenBatchView(inputIds: ids, attentionMask: mask), S: S,
                                               key: streamKey(s.recipe.seed, 0x4D41_534B, UInt64(g)), firstRow: rows.lowerBound)
        let batch = TokenBatch(B: mine.count, S: S, inputIds: masked.inputIds, attentionMask: mask,
                               tokenTypes: s.teacher.config.hasTokenTypes ? [Int32](repeating: 0, count: mine.count * S) : nil)
        return (batch, masked.labels, rows.lowerBound, Array(mine))
    }

    /// One optimizer step over the global batch: this rank's micro-batch shares, the gradient
    /// sums, clipping and AdamW on every rank alike. Returns what a single process would.
    func step(_ s: TrainingSession) throws -> (losses: LossValues, gradNorm: Double, lr: Float, tokens: Int) {
        let r = s.recipe, accumulation = r.training.accumulation, number = s.current + 1
        cluster.setNotice("stopped by mpirun during step \(number) of \(s.totalSteps) because another rank ended (mpirun names it); "
                          + "\(r.output)/state.safetensors.zst keeps the last saved state (written atomically)")
        // A share that cannot be read (a damaged cache record) fails this rank's step, which
        // still takes part in every sum below, so that all ranks stop together.
        var failure: String?
        let shares = (0..<accumulation).map { micro -> Share? in
            do { return try share(s, micro: s.current * accumulation + micro) } catch {
                failure = failure ?? "\(error)"
                return nil
            }
        }
        // The whole batch's denominators, for every micro-batch at once.
        var counts = shares.flatMap { $0.map { LossCounts(batch: $0.batch, labels: $0.labels, settings: r.loss) } ?? LossCounts() }
            .flatMap(\.values)
        // And which word-table rows the ranks' inputs use (a split word table sums only those).
        if reducer.inputWordGradients != nil {
            var used = [Double](repeating: 0, count: s.student.config.vocabSize)
            for share in shares { for id in share?.batch.inputIds ?? [] { used[Int(id)] = 1 } }
            counts += used
        }
        try cluster.sum(&counts)
        let wordRows = reducer.inputWordGradients == nil ? [] : Self.wordRows(counts[(LossCounts.fields * accumulation)...])

        reducer.begin()
        var losses = LossValues(), tokens = 0
        for micro in 0..<accumulation where failure == nil {
            guard let share = shares[micro] else { continue }
            let g = s.current * accumulation + micro
            let keys = r.training.dropout
                ? DropoutKeys(seed: streamKey(r.seed, 0x4452_4F50), iteration: UInt64(g), rowOffset: share.firstRow) : nil
            // Gradients become final during the last micro-batch's backward pass.
            let reducer = self.reducer
            let progress: ((BackwardProgress) -> Void)? = micro == accumulation - 1 ? { reducer.ready($0) } : nil
            do {
                // The cache's buffers hold the share read last: with several micro-batches each is read again.
                if let cached = s.cached, accumulation > 1 {
                    _ = try cached.load(share.indices, lengths: s.train.length, padId: s.tokenizer.padId, tokenTypes: s.teacher.config.hasTokenTypes,
                                        padTo: share.batch.S)
                }
                let v = try s.step.run(share.batch, labels: share.labels, gradScale: 1 / Float(accumulation), dropout: keys,
                                       counts: LossCounts(counts[(LossCounts.fields * micro)..<(LossCounts.fields * (micro + 1))]), progress: progress,
                                       cached: s.cached)
                if let bad = v.named.first(where: { !$0.1.isFinite }) {
                    failure = DistillationError.nonFinite(step: number, loss: bad.0).description
                }
                losses.add(v, weight: 1 / Double(accumulation))
                tokens += share.batch.tokenCount
            } catch {
                failure = "\(error)"
            }
        }
        // Whatever happened here, this rank takes part in the sums, so no rank waits in vain.
        let stats = try reducer.finish(wordRows: wordRows)
        history.append(stats)

        // Every rank's loss sums, tokens and flags (failed, wants to stop), then each layer
        // match's loss, in rank order (a rank without rows reports zeros).
        let matchCount = s.step.resolvedMatches.count
        let matchValues = losses.matches + [Double](repeating: 0, count: max(0, matchCount - losses.matches.count))
        let mine = [losses.total, losses.ce, losses.mlm, losses.cos, losses.mse, losses.hidden, losses.soft, losses.hard,
                    losses.ceMaskedOnly, Double(tokens), failure == nil ? 0 : 1, interrupt?() == true ? 1 : 0] + matchValues.prefix(matchCount)
        let all = try cluster.gather(mine)
        if let first = all.firstIndex(where: { $0[10] != 0 }) {
            let message = try cluster.broadcast(failure ?? "", root: first)
            let host = try cluster.broadcast(cluster.host, root: first)
            throw RankFailure(rank: first, ranks: cluster.size, host: host, stage: "training step \(number)", message: message)
        }
        var total = [Double](repeating: 0, count: 10)
        for v in all { for i in 0..<10 { total[i] += v[i] } }
        stopAgreed = all.contains { $0[11] != 0 }
        var sum = LossValues()
        (sum.total, sum.ce, sum.mlm, sum.cos, sum.mse, sum.hidden, sum.soft, sum.hard, sum.ceMaskedOnly) =
            (total[0], total[1], total[2], total[3], total[4], total[5], total[6], total[7], total[8])
        sum.matches = (0..<matchCount).map { i in all.reduce(0.0) { $0 + $1[12 + i] } }

        // Identical sums on every rank: the same norm, clipping and update everywhere.
        let gradients = reducer.output
        let norm = clipGradientNorm(gradients, count: s.params.layout.count, maxNorm: r.optimizer.clip)
        if !norm.isFinite {  // the same sums on every rank: all stop here together
            throw RankFailure(rank: nil, ranks: cluster.size, host: cluster.host, stage: "training step \(number)",
                              message: DistillationError.nonFinite(step: number, loss: "gradient norm (summed over all ranks)").description)
        }
        let lr = s.schedule.rate(at: s.current)
        s.optimizer.update(parameters: s.params.parameters, gradients: gradients, lr: lr)
        s.student.refreshMatrices()
        s.params.gradients.zero()
        s.current += 1
        return (sum, norm, lr, Int(total[9]))
    }

    /// Mean communication figures over the steps so far (the first, warming up, left out when
    /// there are others).
    var summary: GradientReducer.Stats {
        let steps = history.count > 1 ? Array(history.dropFirst()) : history
        var s = GradientReducer.Stats()
        guard !steps.isEmpty else { return s }
        s.bytes = steps[0].bytes
        s.busySeconds = steps.map(\.busySeconds).reduce(0, +) / Double(steps.count)
        s.exposedSeconds = steps.map(\.exposedSeconds).reduce(0, +) / Double(steps.count)
        return s
    }
}

extension Trainer {
    /// `Trainer.run` as one rank of an mpirun job: the same stages, agreed on by all ranks.
    func runDataParallel(_ cluster: Cluster, resume: Bool, overwrite: Bool, stopAfterSteps: Int?, interrupt: (() -> Bool)?,
                         events: (TrainerEvent) -> Void) throws -> TrainingSummary {
        let start = Timing.now()
        let root = cluster.isRoot
        func say(_ e: TrainerEvent) { if root { events(e) } }
        if recipe.task != nil { throw ClusterError.unsupported("[task] recipes (classification)") }
        if recipe.fitHead != nil {
            throw ClusterError.unsupported("[teacher.fit_head] (fit the head first with distill fit-head, and name its folder as the teacher)")
        }
        // The same recipe on every rank, before anything is read or written.
        let hash = stableHash(recipe.text)
        let hashes = try cluster.gather([Double(hash >> 32), Double(hash & 0xFFFF_FFFF)])
        let differing = (0..<cluster.size).filter { hashes[$0] != hashes[0] }
        if !differing.isEmpty { throw ClusterError.recipeMismatch(ranks: differing) }

        try cluster.together("preparing the output folder") {
            if root { try prepareOutput(resume: resume, overwrite: overwrite, events: say) } else {
                // Its own copy of the tokenized data when the hosts share no folder.
                try FileManager.default.createFolder(recipe.output + "/data")
            }
        }
        // [teacher.cache]: rank 0 builds the cache when it is missing while the others wait, so
        // that ranks sharing its folder open that one file; a rank whose host does not see it
        // builds its own copy (the same records) when its session opens.
        if recipe.teacherCache != nil {
            try cluster.together("building the teacher cache") {
                if root { _ = try buildTeacherCache(topK: nil, path: nil, overwrite: false, events: say) }
            }
        }
        // Rank 0 restores the state; the others build the student and receive rank 0's below.
        let session = try cluster.together("loading the teacher, the data and the student") {
            try TrainingSession(trainer: self, resume: resume && root, events: say)
        }
        // The same data, teacher and student everywhere (paths may name different files on
        // different hosts).
        var tokens = 0
        for i in 0..<session.train.count { tokens += session.train.length(i) }
        let facts = [Double(session.train.count), Double(tokens), Double(session.teacher.layout.count), Double(session.params.layout.count)]
        let all = try cluster.gather(facts)
        for (i, what) in ["the training data (sequences)", "the training data (tokens)", "the teacher", "the student's layout"].enumerated() {
            let differing = (0..<cluster.size).filter { all[$0][i] != all[0][i] }
            if !differing.isEmpty { throw ClusterError.dataMismatch(ranks: differing, what: what) }
        }

        // Every rank starts from rank 0's parameters (and, resuming, its optimizer state).
        var position = [Double(session.current), Double(session.optimizer.step)]
        try cluster.broadcast(&position)
        session.current = Int(position[0])
        session.optimizer.step = Int(position[1])
        let n = session.params.layout.count
        try cluster.broadcast(session.params.parameters.base, count: n)
        if resume {
            try cluster.broadcast(session.optimizer.m.base, count: n)
            try cluster.broadcast(session.optimizer.v.base, count: n)
        }
        session.student.refreshMatrices()
        let B = recipe.training.batchSize
        let dp = DataParallel(session: session, cluster: cluster, interrupt: interrupt)
        session.dataParallel = dp
        let per = dataParallelShare(of: B, rank: 0, ranks: cluster.size).count
        say(.message("""
            data-parallel: \(cluster.size) ranks (\(cluster.library)), \(Parallel.threads) thread\(Parallel.threads == 1 ? "" : "s") each; \
            each step's \(B) sequences split \(per)\(B % cluster.size == 0 ? "" : " or \(per - 1)") per rank; \
            gradients summed in \(dp.reducer.buckets.count) buckets, \(fixed(Double(n * 4) / 1e6, 1)) MB a step
            """))

        if session.current == 0 { try cluster.together("evaluating the student") { try session.evaluate(events: say) } }
        var summary = try session.train(stopAfterSteps: stopAfterSteps, interrupt: { dp.stopAgreed }, events: say)
        try cluster.together("saving the state") { try session.saveState(events: say) }
        if session.current >= session.totalSteps {
            summary.evaluation = try cluster.together("evaluating the student") { try session.evaluate(events: say, final: true) }
            let written: (String?, String?) = try cluster.together("writing the student") {
                guard root else { return (nil, nil) }
                let (folder, checkpoint) = try session.exportStudent()
                return (folder, checkpoint)
            }
            (summary.studentFolder, summary.studentCheckpoint) = written
        }
        let c = dp.summary
        if c.busySeconds > 0 {
            say(.message("""
                allreduce: \(fixed(Double(c.bytes) / 1e6, 1)) MB a step, \(fixed(c.busySeconds * 1000, 1)) ms in flight, \
                \(fixed(c.hiddenFraction * 100, 0))% of it hidden behind the backward pass (\(fixed(c.exposedSeconds * 1000, 1)) ms waited)
                """))
        }
        summary.seconds = Timing.now() - start
        return summary
    }
}

/// What resuming a state saved by `saved` processes on `now` does.
func resumeNote(saved: Int, now: Int, batch: Int) -> String {
    func procs(_ n: Int) -> String { n == 1 ? "a single process" : "\(n) processes" }
    return "resuming a state saved by \(procs(saved)) on \(procs(now)): each step still takes the global batch of \(batch) sequences "
        + "in the same order, with the same masks and dropout, so training continues as it would have; only the order in which "
        + "gradients are summed changes (differences in the last bits, not bit for bit)"
}

/// FNV-1a: the same on every host (Swift's Hasher is seeded per process).
func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}
