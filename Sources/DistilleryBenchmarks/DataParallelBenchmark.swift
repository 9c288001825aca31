import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText
import DistilleryTraining

/// `distill bench distill --ranks N`: the distillation benchmark's training steps as one rank of
/// an mpirun job. Each rank takes its share of the 16 × 128 batch; per step it reports the bytes
/// of gradient summed, the time the sums were in flight, and how much of that the backward pass
/// hid (GradientReducer.Stats), and afterwards the time the same sum takes alone, with nothing
/// else running.
public struct DataParallelBenchmark: Codable, Sendable {
    public let name: String
    public let ranks: Int
    public let threadsPerRank: Int
    public let batch: Int
    public let sequence: Int
    public let buckets: Int
    public let secondsPerStep: Double
    /// Tokens of the global batch per second.
    public let tokensPerSecond: Double
    /// The whole gradient, plus the rows of the word table the batch's inputs used (summed
    /// apart, see GradientReducer).
    public let bytesPerStep: Int
    /// Medians over the timed steps.
    public let allreduceSeconds: Double
    public let exposedSeconds: Double
    public let hiddenFraction: Double
    /// One allreduce of the whole gradient buffer, on idle ranks (median).
    public let allreduceAloneSeconds: Double
    public let library: String

    public static func run(_ c: DistillBenchmark.Case, cluster: Cluster, B: Int = 16, S: Int = 128, steps: Int = 5,
                           warmup: Int = 1) throws -> DataParallelBenchmark {
        // The models, losses and batch DistillBenchmark.run uses.
        let setup = try DistillBenchmark.Setup(c, B: B, S: S)
        let params = setup.params, settings = setup.settings, optimizer = setup.optimizer
        let masked = setup.masked, labels = setup.labels, N = B * S
        let rows = dataParallelShare(of: B, rank: cluster.rank, ranks: cluster.size)
        let step = try DistillationStep(teacher: setup.teacher, params: params, settings: settings, maxB: max(1, rows.count), maxS: S)
        let whole = TokenBatch(B: B, S: S, inputIds: masked, attentionMask: [Float](repeating: 1, count: N),
                               tokenTypes: [Int32](repeating: 0, count: N))
        let counts = LossCounts(batch: whole, labels: labels, settings: settings)
        // This rank's rows.
        let span = (rows.lowerBound * S)..<(rows.upperBound * S)
        let batch = TokenBatch(B: rows.count, S: S, inputIds: Array(masked[span]), attentionMask: [Float](repeating: 1, count: span.count),
                               tokenTypes: [Int32](repeating: 0, count: span.count))
        let localLabels = Array(labels[span])

        let reducer = GradientReducer(layout: params.layout, gradients: params.gradients, splitWordTable: true)
        step.inputWordGradients = reducer.inputWordGradients?.base
        let wordRows = Array(Set(masked)).sorted()
        var iteration: UInt64 = 0
        var stats: [GradientReducer.Stats] = []
        try cluster.barrier()
        let times = try Timing.measure(warmup: warmup, iterations: steps) {
            let keys = DropoutKeys(seed: 9, iteration: iteration, rowOffset: rows.lowerBound)
            iteration += 1
            reducer.begin()
            if !rows.isEmpty {
                _ = try step.run(batch, labels: localLabels, dropout: keys, counts: counts, progress: { reducer.ready($0) })
            }
            stats.append(try reducer.finish(wordRows: wordRows))
            clipGradientNorm(reducer.output, count: params.layout.count, maxNorm: 5)
            optimizer.update(parameters: params.parameters, gradients: reducer.output, lr: 5e-4)
            params.student.refreshMatrices()
            params.gradients.zero()
        }
        let timed = Array(stats.suffix(steps))
        // The same sum with nothing else running (every rank starting together).
        var alone: [Double] = []
        for _ in 0...steps {
            try cluster.barrier()
            let t = Timing.now()
            reducer.begin()
            try reducer.finish(wordRows: wordRows)
            alone.append(Timing.now() - t)
        }
        alone.removeFirst()
        func median(_ x: [Double]) -> Double { x.sorted()[x.count / 2] }
        return DataParallelBenchmark(
            name: c.rawValue, ranks: cluster.size, threadsPerRank: Parallel.threads, batch: B, sequence: S, buckets: reducer.buckets.count,
            secondsPerStep: times.median, tokensPerSecond: Double(N) / times.median, bytesPerStep: timed.last?.bytes ?? 0,
            allreduceSeconds: median(timed.map(\.busySeconds)), exposedSeconds: median(timed.map(\.exposedSeconds)),
            hiddenFraction: median(timed.map(\.hiddenFraction)), allreduceAloneSeconds: median(alone), library: cluster.library)
    }
}
