import DistilleryTensor
import DistilleryModels

/// Forward-pass speed of a model on one batch shape, as `distill compare` reports it.
public struct ForwardTiming: Codable, Sendable, Equatable {
    public let batch: Int
    public let sequence: Int
    public let medianMs: Double
    public let minMs: Double
    public let tokensPerSecond: Double

    /// Times `encode` (hidden states only, no MLM head) on random tokens: `warmup` untimed
    /// runs, then the median and minimum of `iterations`.
    public static func measure(_ model: EncoderModel, B: Int, S: Int, warmup: Int, iterations: Int) throws -> ForwardTiming {
        let batch = TokenBatch.random(B: B, S: S, config: model.config)
        let hidden = FloatBuffer(count: B * S * model.config.hiddenSize)
        let times = try Timing.measure(warmup: warmup, iterations: max(1, iterations)) {
            try model.encode(batch, hidden: hidden.base)
        }
        let median = times.median
        return ForwardTiming(batch: B, sequence: S, medianMs: median * 1e3, minMs: (times.min() ?? 0) * 1e3,
                             tokensPerSecond: Double(B * S) / median)
    }
}
