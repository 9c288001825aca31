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
        let (preset, spec): (String, StudentSpec) = {
            switch c {
            case .a: return ("all-MiniLM-L6-v2", .layers(LayerSelection(layers: [0, 2, 4])))
            case .b: return ("bert-base-uncased", .layers(LayerSelection(layers: [0, 2, 4, 7, 9, 11])))
            case .c: return ("all-MiniLM-L6-v2", .albert(AlbertStudent(embeddingSize: 128, layers: 6, sharing: .all)))
            }
        }()
        guard var tc = Presets.encoder(preset, withHead: true) else {
            throw ModelLoadError.notAModel(path: preset, reason: "no such encoder preset")
        }
        tc.hiddenDropout = 0.1; tc.attentionDropout = 0.1
        let teacher = EncoderModel(config: tc)
        teacher.initializeRandomly(seed: 1)
        let student = try StudentBuilder.build(spec, teacher: teacher, seed: 2)
        let params = TrainableParameters(model: student, projectTo: nil)
        var settings = LossSettings()
        settings.temperature = 2; settings.alphaCE = 5; settings.alphaMLM = 2; settings.alphaCos = 1
        let rows = dataParallelShare(of: B, rank: cluster.rank, ranks: cluster.size)
        let step = try DistillationStep(teacher: teacher, params: params, settings: settings, maxB: max(1, rows.count), maxS: S)
        let optimizer = AdamW(layout: params.layout, settings: AdamWSettings(beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0),
                              rule: .biasesAndNorms)
        var rng = SplitMix64(seed: 3)
        let N = B * S, V = tc.vocabSize
        let ids = (0..<N).map { i in i % S == 0 ? Int32(101) : i % S == S - 1 ? Int32(102) : Int32(1000 + Int(rng.next() % UInt64(V - 1000))) }
        var labels = [Int32](repeating: -100, count: N)
        var masked = ids
        for i in 0..<N where i % S != 0 && i % S != S - 1 && rng.nextFloat() < 0.15 { labels[i] = ids[i]; masked[i] = 103 }
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
