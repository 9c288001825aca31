import DistilleryTensor

/// An encoder: its configuration, its parameter layout, the contiguous fp32 parameter buffer,
/// and each matrix as it is stored and multiplied (fp32 views of the buffer by default; bf16
/// copies or packed int8 when the model was loaded or converted so). One layer schedule
/// (`forward`, `backward`) serves every format.
public final class EncoderModel: @unchecked Sendable {
    public let config: EncoderConfig
    public let layout: ParameterLayout
    /// [≥ layout.count]: a trainer may append training-only slots after the model's own. Slots
    /// of matrices held only in another format (an int8 model) are never touched and cost no
    /// memory (see `AlignedBuffer`).
    public let parameters: FloatBuffer
    /// Each matrix of the schedule by the offset of its first slot (`layout.matrixSites`).
    public private(set) var matrices: [Int: WeightMatrix] = [:]
    /// False once a matrix is held only in a format other than fp32: the buffer then lacks it.
    public private(set) var hasFP32Weights = true
    /// Bumped when a matrix changes format (workspaces size their scratch by the formats).
    public private(set) var formatVersion = 0
    /// The workspace `encode` keeps between calls.
    var inference: EncoderActivations?
    var gathered: FloatBuffer?

    public init(config: EncoderConfig, parameters: FloatBuffer? = nil) {
        self.config = config
        layout = ParameterLayout(config: config)
        if let parameters {
            precondition(parameters.count >= layout.count, "parameter buffer smaller than the layout")
            self.parameters = parameters
        } else {
            self.parameters = FloatBuffer(count: layout.count)
        }
        for site in layout.matrixSites {
            matrices[site.offset] = FP32Matrix(self.parameters, offset: site.offset, rows: site.rows, cols: site.cols)
        }
    }

    /// Pointer to the parameter at `offset` (an offset from the layout's slot structs).
    @inlinable public func p(_ offset: Int) -> UnsafeMutablePointer<Float> { parameters.base + offset }

    /// The matrix whose first slot is at `offset`.
    @inline(__always) public func matrix(_ offset: Int) -> WeightMatrix { matrices[offset]! }

    /// Replaces how the matrix at `offset` is stored. `keepsFP32` says the fp32 buffer still
    /// holds its values (a bf16 copy made from them); otherwise the model has no fp32 form.
    public func setMatrix(_ m: WeightMatrix, at offset: Int, keepsFP32: Bool) {
        guard let site = layout.matrixSites.first(where: { $0.offset == offset }) else {
            preconditionFailure("no matrix starts at offset \(offset)")
        }
        precondition(m.rows == site.rows && m.cols == site.cols, "matrix \(site.slots.first ?? "") is \(site.rows)×\(site.cols), not \(m.rows)×\(m.cols)")
        matrices[offset] = m
        if !keepsFP32 { hasFP32Weights = false }
        formatVersion += 1
        inference = nil
    }

    /// The formats the matrices are in.
    public var formats: Set<WeightFormat> { Set(matrices.values.map(\.format)) }

    /// "fp32 (openblas)", "int8 (avx2)", or, with fp32 tables kept beside int8 layers, "int8 (avx2) + fp32".
    public var precision: String {
        let kinds = Set(matrices.values.map(\.precision))
        if kinds.count == 1 { return kinds.first! }
        // The quantized or converted format first.
        return kinds.sorted { a, b in a.hasPrefix("fp32") == b.hasPrefix("fp32") ? a < b : !a.hasPrefix("fp32") }.joined(separator: " + ")
    }

    /// Whether every matrix can be trained through.
    public var trainable: Bool { hasFP32Weights && matrices.values.allSatisfy(\.trainable) }

    /// Bytes the matrices hold in their formats plus the fp32 vectors.
    public var weightBytes: Int {
        let sites = layout.matrixSites
        let matrixFloats = sites.reduce(0) { $0 + $1.rows * $1.cols }
        return matrices.values.reduce(0) { $0 + $1.bytes } + (layout.modelCount - matrixFloats) * 4
    }

    /// Floats of scratch the matrices' products need for `rows` input rows; in training also
    /// their backward passes (but the word table's: the tied decoder's backward runs in chunks
    /// with scratch of its own).
    public func linearScratch(rows: Int, training: Bool = false) -> Int {
        let word = layout.embeddings.word
        return matrices.map { offset, m in
            max(m.scratchFloats(maxRows: rows), training && offset != word ? m.backwardScratchFloats(maxRows: rows) : 0)
        }.max() ?? 0
    }

    /// Stores every matrix as bf16, copied from (and refreshed from) the fp32 weights.
    public func convertMatricesToBF16() {
        for site in layout.matrixSites {
            guard let m = matrices[site.offset] as? FP32Matrix else { continue }
            setMatrix(BF16Matrix(master: m), at: site.offset, keepsFP32: true)
        }
    }

    /// Copies made from the fp32 master weights (bf16) are made again (after an optimizer step).
    public func refreshMatrices() { for m in matrices.values { m.refresh() } }

    /// The values of one named slot (nil when unknown or not held in fp32).
    public func values(_ name: String) -> [Float]? {
        guard let s = layout.slot(name), hasFP32Weights else { return nil }
        return Array(UnsafeBufferPointer(start: parameters.base + s.offset, count: s.count))
    }

    /// A copy with its own fp32 parameter buffer (matrices as fp32 views).
    public func copy() -> EncoderModel {
        precondition(hasFP32Weights, "copy() needs the fp32 weights")
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
    case nonFiniteOutput(name: String)

    public var description: String {
        switch self {
        case let .nonFiniteOutput(n): return "\(n) holds NaN or infinite values: the model overflows in float (weights far too large?)"
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
