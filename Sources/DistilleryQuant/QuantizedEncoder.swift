import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels

/// An encoder whose matrices are int8 (per output channel, or per row for embedding tables)
/// and whose linear layers run as int8 × int8 → int32 products on activations quantized per
/// token at run time. LayerNorms, biases, GELU, attention products and residuals stay fp32.
/// The MLM decoder reuses the int8 word table (its rows are the decoder's output channels).
public final class QuantizedEncoder: EncoderRunner {
    public let config: EncoderConfig
    public let layout: ParameterLayout
    public let kernel: Int8Kernel

    /// A matrix: int8 rows with scales (packed for the kernels), or fp32 [rows×cols].
    enum Matrix {
        case int8(PackedInt8Weights)
        case fp32(FloatBuffer, rows: Int, cols: Int)
    }
    struct Linear {
        let w: Matrix; let bias: FloatBuffer?; let N: Int; let K: Int
        /// Activations quantized in two int8 passes (the second over the residual).
        var twoPass = false
    }
    struct Norm { let weight: FloatBuffer; let bias: FloatBuffer }
    struct Attention { let qkv: Linear; let out: Linear; let norm: Norm }
    struct FFN { let input: Linear; let output: Linear; let norm: Norm }

    let word: Matrix, position: Matrix, tokenType: Matrix?
    let embNorm: Norm
    let projection: Linear?
    let attention: [Attention]
    let ffn: [FFN]
    let pooler: Linear?
    let headTransform: Linear?, headNorm: Norm?, headBias: FloatBuffer?
    /// Bytes of weights held (int8 packs, scales and fp32 tensors).
    public let weightBytes: Int

    /// What one slot holds.
    public enum SlotData {
        case int8(q: [Int8], scales: [Float], smoothing: [Float]?)
        case fp32([Float])

        /// The values as fp32: W = diag(scale) · q · diag(1 / smoothing).
        func dequantized(cols: Int) -> [Float] {
            switch self {
            case .fp32(let v): return v
            case let .int8(q, s, sm):
                return q.indices.map { i in Float(q[i]) * s[i / cols] / (sm?[i % cols] ?? 1) }
            }
        }
    }

    /// `twoPass` names the layer inputs quantized in two passes (see QuantizationScheme);
    /// `origin` (the file) names where the weights came from in errors.
    public init(config c: EncoderConfig, kernel: Int8Kernel = .best, twoPass: Set<QuantizationScheme.Input> = [],
                origin: String = "the quantized model", fetch: (ParameterSlot) throws -> SlotData) throws {
        config = c
        layout = ParameterLayout(config: c)
        self.kernel = kernel
        var bytes = 0
        let L = layout
        func data(_ offset: Int) throws -> (SlotData, ParameterSlot) {
            let slot = L.slots.first { $0.offset == offset }!
            return (try fetch(slot), slot)
        }
        func vector(_ offset: Int) throws -> FloatBuffer {
            let (d, slot) = try data(offset)
            guard case .fp32(let v) = d else {
                let names = HuggingFaceNames(layout: L)
                let hf = names.pairs.first { $0.ours == slot.name }.map { names.prefixed($0.hf, withHead: c.hasMLMHead) } ?? slot.name
                throw SafetensorsError.wrongDType(path: origin, tensor: hf, dtype: .I8,
                                                  expected: "F32 (only matrices are stored as int8)")
            }
            bytes += v.count * 4
            return FloatBuffer(v)
        }
        func matrix(_ offset: Int) throws -> Matrix {
            let (d, slot) = try data(offset)
            switch d {
            case let .int8(q, s, sm):
                let p = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
                    PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: slot.shape[0], K: slot.shape[1], smoothing: sm)
                } }
                bytes += q.count + s.count * 4 + (sm?.count ?? 0) * 4
                return .int8(p)
            case .fp32(let v):
                bytes += v.count * 4
                return .fp32(FloatBuffer(v), rows: slot.shape[0], cols: slot.shape[1])
            }
        }
        /// Q, K and V are three slots side by side; one [3H×H] matrix for the kernels: int8
        /// when all three are int8 with the same smoothing (they read the same input), fp32
        /// otherwise (int8 parts dequantized).
        func qkvMatrix(_ a: AttentionSlots) throws -> Matrix {
            let H = c.hiddenSize
            let parts = try (0..<3).map { try data(a.qkvWeight + $0 * H * H).0 }
            if case let .int8(_, _, smoothing) = parts[0],
               parts.allSatisfy({ if case let .int8(_, _, sm) = $0 { return sm == smoothing } else { return false } }) {
                var q: [Int8] = [], s: [Float] = []
                for case let .int8(pq, ps, _) in parts { q += pq; s += ps }
                bytes += q.count + s.count * 4 + (smoothing?.count ?? 0) * 4
                return .int8(q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer {
                    PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: 3 * H, K: H, smoothing: smoothing)
                } })
            }
            let all = parts.flatMap { $0.dequantized(cols: H) }
            bytes += all.count * 4
            return .fp32(FloatBuffer(all), rows: 3 * H, cols: H)
        }
        let e = L.embeddings!
        let H = c.hiddenSize, I = c.intermediateSize, E = c.embeddingSize
        word = try matrix(e.word)
        position = try matrix(e.position)
        tokenType = try e.tokenType.map { try matrix($0) }
        embNorm = Norm(weight: try vector(e.normWeight), bias: try vector(e.normBias))
        projection = try e.projectionWeight.map { Linear(w: try matrix($0), bias: try vector(e.projectionBias!), N: H, K: E) }
        attention = try L.attention.map { a in
            Attention(qkv: Linear(w: try qkvMatrix(a), bias: FloatBuffer(try (0..<3).flatMap { i -> [Float] in try vector(a.qkvBias + i * H).toArray() }),
                                  N: 3 * H, K: H, twoPass: twoPass.contains(.qkv)),
                      out: Linear(w: try matrix(a.outputWeight), bias: try vector(a.outputBias), N: H, K: H,
                                  twoPass: twoPass.contains(.attentionOutput)),
                      norm: Norm(weight: try vector(a.normWeight), bias: try vector(a.normBias)))
        }
        ffn = try L.ffn.map { f in
            FFN(input: Linear(w: try matrix(f.inputWeight), bias: try vector(f.inputBias), N: I, K: H, twoPass: twoPass.contains(.ffnInput)),
                output: Linear(w: try matrix(f.outputWeight), bias: try vector(f.outputBias), N: H, K: I, twoPass: twoPass.contains(.ffnOutput)),
                norm: Norm(weight: try vector(f.normWeight), bias: try vector(f.normBias)))
        }
        pooler = try L.pooler.map { Linear(w: try matrix($0.weight), bias: try vector($0.bias), N: H, K: H) }
        if let h = L.head {
            headTransform = Linear(w: try matrix(h.transformWeight), bias: try vector(h.transformBias), N: c.headWidth, K: H,
                                   twoPass: twoPass.contains(.headTransform))
            headNorm = Norm(weight: try vector(h.normWeight), bias: try vector(h.normBias))
            headBias = try vector(h.bias)
        } else {
            headTransform = nil; headNorm = nil; headBias = nil
        }
        weightBytes = bytes
    }

    /// Quantizes an fp32 model in memory, exactly as `Quantizer.save` writes it.
    public convenience init(quantizing model: EncoderModel, scheme: QuantizationScheme = QuantizationScheme(),
                            kernel: Int8Kernel = .best) throws {
        let quantized = Quantizer.quantizedSlots(model, keep: scheme.keptFP32)
        let smoothing = Smoothing.selfCalibrated(model, inputs: Set(scheme.smoothedInputs))
        try self.init(config: model.config, kernel: kernel, twoPass: Set(scheme.twoPassInputs)) { slot in
            if quantized.contains(slot.name) {
                let (q, s, sm) = Quantizer.quantize(model, slot, smoothing: smoothing[slot.name])
                return .int8(q: q, scales: s, smoothing: sm)
            }
            return .fp32(Array(UnsafeBufferPointer(start: model.p(slot.offset), count: slot.count)))
        }
    }

    /// Reads a quantized checkpoint (I8 matrices with NAME.scale and NAME.smooth, the rest F32),
    /// checked like any model file: every tensor present, shaped as the config says, and used.
    public static func load(_ path: String, kernel: Int8Kernel = .best, options: LoadOptions = LoadOptions()) throws -> (QuantizedEncoder, Checkpoint) {
        let c = try Checkpoint(path: path)
        return (try load(c, kernel: kernel, options: options), c)
    }

    /// The same, from an opened checkpoint.
    public static func load(_ c: Checkpoint, kernel: Int8Kernel = .best, options: LoadOptions = LoadOptions()) throws -> QuantizedEncoder {
        let path = c.path
        let config = try ModelCheckpoint.config(of: c)
        try config.validate()
        let scheme = try QuantizationScheme.read(c.metadata, path: path) ?? QuantizationScheme()
        let image = try SafetensorsImage(try c.decompressAll(), path: path)
        let resolved = try HuggingFaceFolder.resolve(config, from: image, options: options)
        let encoder = try QuantizedEncoder(config: resolved.config, kernel: kernel, twoPass: Set(scheme.twoPassInputs), origin: path) { slot in
            switch resolved.stored[slot.name]! {
            case .float(let info):
                return .fp32(try image.floats(info.name))
            case let .int8(info, scale, smooth):
                return .int8(q: try image.withBytes(info) { Array($0.bindMemory(to: Int8.self)) },
                             scales: try image.floats(scale.name), smoothing: try smooth.map { try image.floats($0.name) })
            }
        }
        return encoder
    }

    // MARK: forward

    /// Buffers for batches up to maxB × maxS.
    final class Workspace {
        let maxB: Int, maxS: Int
        let emb: FloatBuffer, embNorm: FloatBuffer       // [N×E]
        let hiddenA: FloatBuffer, hiddenB: FloatBuffer   // [N×H]
        let qkv: FloatBuffer                             // [N×3H]
        let ctx: FloatBuffer, tmp: FloatBuffer, res: FloatBuffer, ln1: FloatBuffer  // [N×H]
        let ffn: FloatBuffer                             // [N×I]
        let head: FloatBuffer, headOut: FloatBuffer      // [N×Ht]
        let attention: FloatBuffer                       // [threads × 3·S·S]
        let quantized: QuantizedActivations              // [N×max(E,H,I)]
        let residual: QuantizedActivations               // [N×max(E,H,I)]
        let residualScratch: FloatBuffer                 // [N×max(E,H,I)]
        let row: FloatBuffer                             // [E] embedding row
        let ids: AlignedBuffer<Int32>, types: AlignedBuffer<Int32>, mask: FloatBuffer

        init(_ c: EncoderConfig, maxB: Int, maxS: Int) {
            self.maxB = maxB; self.maxS = maxS
            let N = maxB * maxS, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize, Ht = c.headWidth
            emb = FloatBuffer(count: N * E); embNorm = FloatBuffer(count: N * E)
            hiddenA = FloatBuffer(count: N * H); hiddenB = FloatBuffer(count: N * H)
            qkv = FloatBuffer(count: N * 3 * H)
            ctx = FloatBuffer(count: N * H); tmp = FloatBuffer(count: N * H); res = FloatBuffer(count: N * H); ln1 = FloatBuffer(count: N * H)
            ffn = FloatBuffer(count: N * I)
            head = FloatBuffer(count: N * Ht); headOut = FloatBuffer(count: N * Ht)
            attention = FloatBuffer(count: AttentionScratch.count(slots: Parallel.threads, S: maxS))
            quantized = QuantizedActivations(maxRows: max(N, 1), K: max(E, H, I))
            residual = QuantizedActivations(maxRows: max(N, 1), K: max(E, H, I))
            residualScratch = FloatBuffer(count: max(N, 1) * max(E, H, I))
            row = FloatBuffer(count: E)
            ids = AlignedBuffer<Int32>(count: N); types = AlignedBuffer<Int32>(count: N); mask = FloatBuffer(count: N)
        }
    }
    private var workspace: Workspace?

    func linear(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ l: Linear, M: Int, ws: Workspace) {
        switch l.w {
        case .int8(let p):
            let c = p.inverseSmoothing.map { UnsafePointer($0.base) }
            ws.quantized.quantize(x, M: M, K: l.K, columnScale: c)
            int8Linear(y, ws.quantized, M: M, p, bias: l.bias.map { UnsafePointer($0.base) }, kernel: kernel)
            if l.twoPass {
                ws.residual.quantizeResidual(of: x, M: M, K: l.K, columnScale: c, source: ws.quantized, scratch: ws.residualScratch.base)
                int8Linear(y, ws.residual, M: M, p, bias: nil, kernel: kernel, accumulate: true)
            }
        case let .fp32(w, _, _):
            linearForward(y, x, weight: w.base, bias: l.bias.map { UnsafePointer($0.base) }, N: M, K: l.K, M: l.N)
        }
    }

    func gather(_ m: Matrix, row r: Int, into out: UnsafeMutablePointer<Float>, cols: Int) {
        switch m {
        case .int8(let p): p.row(r, into: out)
        case let .fp32(w, _, _): out.update(from: w.base + r * cols, count: cols)
        }
    }

    /// Runs the encoder; returns the last hidden state [N×H] (valid until the next call).
    /// `onHiddenState(i, h)` receives every reported hidden state.
    @discardableResult
    public func forward(_ batch: TokenBatch, onHiddenState: ((Int, UnsafePointer<Float>) -> Void)? = nil) throws -> UnsafeMutablePointer<Float> {
        let c = config
        if workspace == nil || workspace!.maxB < batch.B || workspace!.maxS < batch.S {
            workspace = Workspace(c, maxB: batch.B, maxS: batch.S)
        }
        let ws = workspace!
        let B = batch.B, S = batch.S, N = B * S, H = c.hiddenSize, E = c.embeddingSize
        let eps = c.layerNormEps
        if S > c.maxPositions { throw InputError.sequenceTooLong(length: S, maxPositions: c.maxPositions) }
        for (i, t) in batch.inputIds.enumerated() where t < 0 || Int(t) >= c.vocabSize {
            throw InputError.tokenOutOfRange(name: "input_ids", index: i, value: Int(t), limit: c.vocabSize)
        }
        batch.attentionMask.withUnsafeBufferPointer { ws.mask.base.update(from: $0.baseAddress!, count: N) }

        // Embeddings: dequantized rows summed, LayerNorm, projection.
        let row = ws.row.base
        for n in 0..<N {
            let o = ws.emb.base + n * E
            gather(word, row: Int(batch.inputIds[n]), into: o, cols: E)
            gather(position, row: n % S, into: row, cols: E)
            for k in 0..<E { o[k] += row[k] }
            if let tokenType {
                let t = batch.tokenTypes.map { Int($0[n]) } ?? 0
                guard t >= 0 && t < c.typeVocabSize else { throw InputError.tokenOutOfRange(name: "token_type_ids", index: n, value: t, limit: c.typeVocabSize) }
                gather(tokenType, row: t, into: row, cols: E)
                for k in 0..<E { o[k] += row[k] }
            }
        }
        layerNormForward(ws.embNorm.base, mean: nil, rstd: nil, ws.emb.base, weight: embNorm.weight.base, bias: embNorm.bias.base, N: N, C: E, eps: eps)
        var x: UnsafeMutablePointer<Float>
        if let projection {
            linear(ws.hiddenB.base, ws.embNorm.base, projection, M: N, ws: ws)
            x = ws.hiddenB.base
        } else {
            x = ws.embNorm.base
        }
        onHiddenState?(0, x)

        let shape = AttentionShape(B: B, S: S, H: H, NH: c.numHeads)
        let scratch = AttentionScratch(base: ws.attention.base, slots: Parallel.threads)
        for (k, step) in layout.steps.enumerated() {
            let at = attention[step.attention], ff = ffn[step.ffn]
            let out = k % 2 == 0 ? ws.hiddenA.base : ws.hiddenB.base
            linear(ws.qkv.base, x, at.qkv, M: N, ws: ws)
            attentionForward(ctx: ws.ctx.base, qkv: ws.qkv.base, mask: ws.mask.base, shape, scratch: scratch)
            linear(ws.tmp.base, ws.ctx.base, at.out, M: N, ws: ws)
            residualForward(ws.res.base, x, ws.tmp.base, count: N * H)
            layerNormForward(ws.ln1.base, mean: nil, rstd: nil, ws.res.base, weight: at.norm.weight.base, bias: at.norm.bias.base, N: N, C: H, eps: eps)
            linear(ws.ffn.base, ws.ln1.base, Linear(w: ff.input.w, bias: nil, N: ff.input.N, K: ff.input.K, twoPass: ff.input.twoPass), M: N, ws: ws)
            activationForward(ws.ffn.base, pre: nil, ws.ffn.base, bias: ff.input.bias!.base, N: N, C: c.intermediateSize, c.activation)
            linear(ws.tmp.base, ws.ffn.base, ff.output, M: N, ws: ws)
            residualForward(ws.res.base, ws.ln1.base, ws.tmp.base, count: N * H)
            layerNormForward(out, mean: nil, rstd: nil, ws.res.base, weight: ff.norm.weight.base, bias: ff.norm.bias.base, N: N, C: H, eps: eps)
            x = out
            if (k + 1) % layout.stepsPerHiddenState == 0 { onHiddenState?((k + 1) / layout.stepsPerHiddenState, x) }
        }
        return x
    }

    /// Logits [rows×V] of the given rows of the last hidden state.
    func logits(_ last: UnsafeMutablePointer<Float>, rows: [Int], into out: UnsafeMutablePointer<Float>) {
        guard let t = headTransform, let norm = headNorm, let bias = headBias, let ws = workspace else { return }
        let Ht = config.headWidth, H = config.hiddenSize
        // Gather the rows, transform, then the tied decoder (the int8 word table).
        for (i, r) in rows.enumerated() { (ws.tmp.base + i * H).update(from: last + r * H, count: H) }
        let R = rows.count
        linear(ws.head.base, ws.tmp.base, Linear(w: t.w, bias: nil, N: t.N, K: t.K, twoPass: t.twoPass), M: R, ws: ws)
        activationForward(ws.head.base, pre: nil, ws.head.base, bias: t.bias!.base, N: R, C: Ht, config.activation)
        layerNormForward(ws.headOut.base, mean: nil, rstd: nil, ws.head.base, weight: norm.weight.base, bias: norm.bias.base, N: R, C: Ht, eps: config.layerNormEps)
        linear(out, ws.headOut.base, Linear(w: word, bias: bias, N: config.vocabSize, K: Ht), M: R, ws: ws)
    }

    public func encode(_ batch: TokenBatch, hidden: UnsafeMutablePointer<Float>, logitRows: [Int], logits: UnsafeMutablePointer<Float>?) throws {
        let last = try forward(batch)
        hidden.update(from: last, count: batch.B * batch.S * config.hiddenSize)
        if let logits, config.hasMLMHead, !logitRows.isEmpty {
            // Rows are processed in chunks small enough for the workspace.
            var start = 0
            while start < logitRows.count {
                let n = min(logitRows.count - start, workspace!.maxB * workspace!.maxS)
                self.logits(last, rows: Array(logitRows[start..<(start + n)]), into: logits + start * config.vocabSize)
                start += n
            }
        }
    }

    /// `distill forward`'s outputs: hidden_states.0…L and logits.
    public func referenceOutputs(_ batch: TokenBatch) throws -> [OwnedTensor] {
        let B = batch.B, S = batch.S, H = config.hiddenSize, N = B * S
        var out: [OwnedTensor] = []
        let last = try forward(batch) { i, h in
            out.append(OwnedTensor(name: "hidden_states.\(i)", shape: [B, S, H], floats: Array(UnsafeBufferPointer(start: h, count: N * H))))
        }
        if config.hasMLMHead {
            let l = FloatBuffer(count: N * config.vocabSize)
            // Logits of all rows, in chunks of the workspace size.
            var start = 0
            while start < N {
                let n = min(N - start, S)
                logits(last, rows: Array(start..<(start + n)), into: l.base + start * config.vocabSize)
                start += n
            }
            out.append(OwnedTensor(name: "logits", shape: [B, S, config.vocabSize], floats: l.toArray()))
        }
        return out
    }
}
