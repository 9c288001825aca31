import DistilleryTensor

/// An encoder: its configuration, its parameter layout and the contiguous parameter buffer.
public final class EncoderModel: @unchecked Sendable {
    public let config: EncoderConfig
    public let layout: ParameterLayout
    /// [≥ layout.count]: a trainer may append training-only slots after the model's own.
    public let parameters: FloatBuffer

    public init(config: EncoderConfig, parameters: FloatBuffer? = nil) {
        self.config = config
        layout = ParameterLayout(config: config)
        if let parameters {
            precondition(parameters.count >= layout.count, "parameter buffer smaller than the layout")
            self.parameters = parameters
        } else {
            self.parameters = FloatBuffer(count: layout.count)
        }
    }

    /// Pointer to the parameter at `offset` (an offset from the layout's slot structs).
    @inlinable public func p(_ offset: Int) -> UnsafeMutablePointer<Float> { parameters.base + offset }

    /// The values of one named slot.
    public func values(_ name: String) -> [Float]? {
        guard let s = layout.slot(name) else { return nil }
        return Array(UnsafeBufferPointer(start: parameters.base + s.offset, count: s.count))
    }

    /// A copy with its own parameter buffer.
    public func copy() -> EncoderModel {
        let m = EncoderModel(config: config)
        m.parameters.base.update(from: parameters.base, count: layout.count)
        return m
    }

    /// BERT's initialisation (normal(0, 0.02) weights, zero biases, unit LayerNorm weights),
    /// drawn from `seed`.
    public func initializeRandomly(seed: UInt64, std: Float = 0.02) {
        var rng = SplitMix64(seed: seed)
        for s in layout.slots {
            let p = parameters.base + s.offset
            if s.name.hasSuffix("norm.weight") {
                for i in 0..<s.count { p[i] = 1 }
            } else if s.shape.count == 1 {
                for i in 0..<s.count { p[i] = 0 }
            } else {
                for i in 0..<s.count { p[i] = rng.nextGaussian() * std }
            }
        }
    }
}

/// Token inputs for one batch: B sequences of S positions (padded).
public struct TokenBatch: Sendable, Equatable {
    public let B: Int
    public let S: Int
    public var inputIds: [Int32]          // [B×S]
    public var attentionMask: [Float]     // [B×S]  1 real, 0 padding
    public var tokenTypes: [Int32]?       // [B×S]

    public init(B: Int, S: Int, inputIds: [Int32], attentionMask: [Float], tokenTypes: [Int32]? = nil) {
        precondition(inputIds.count == B * S && attentionMask.count == B * S)
        precondition(tokenTypes.map { $0.count == B * S } ?? true)
        self.B = B; self.S = S; self.inputIds = inputIds
        self.attentionMask = attentionMask; self.tokenTypes = tokenTypes
    }

    public var tokenCount: Int { attentionMask.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }
}

public enum InputError: Error, CustomStringConvertible, Equatable {
    case tokenOutOfRange(name: String, index: Int, value: Int, limit: Int)
    case sequenceTooLong(length: Int, maxPositions: Int)
    case shape(name: String, reason: String)

    public var description: String {
        switch self {
        case let .tokenOutOfRange(n, i, v, l): return "\(n)[\(i)] = \(v) is outside 0..<\(l)"
        case let .sequenceTooLong(s, p): return "sequence length \(s) exceeds the model's \(p) positions"
        case let .shape(n, r): return "\(n): \(r)"
        }
    }
}

extension EncoderModel {
    /// Checks token ids, types and length against the model before any kernel indexes tables.
    public func validate(_ batch: TokenBatch) throws {
        if batch.S > config.maxPositions { throw InputError.sequenceTooLong(length: batch.S, maxPositions: config.maxPositions) }
        for (i, t) in batch.inputIds.enumerated() where t < 0 || Int(t) >= config.vocabSize {
            throw InputError.tokenOutOfRange(name: "input_ids", index: i, value: Int(t), limit: config.vocabSize)
        }
        if let types = batch.tokenTypes {
            let limit = max(config.typeVocabSize, 1)
            for (i, t) in types.enumerated() where t < 0 || Int(t) >= limit {
                if config.typeVocabSize == 0 && t == 0 { continue }
                throw InputError.tokenOutOfRange(name: "token_type_ids", index: i, value: Int(t), limit: limit)
            }
        }
    }
}
