import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText
import DistilleryTraining
import DistilleryFormats

/// `distill bench distill`: training steps on random weights and random tokens, at the shapes
/// the distillation issue compares against PyTorch.
public struct DistillBenchmark: Codable, Sendable {
    public let name: String
    public let precision: String
    public let teacher: String
    public let student: String
    public let batch: Int
    public let sequence: Int
    public let secondsPerStep: Double
    public let tokensPerSecond: Double
    public let gflops: Double
    public let peakRSSBytes: Int
    public let teacherParameters: Int
    public let studentParameters: Int
    /// With --cache K: the same step reading the teacher's outputs from a teacher cache (top K
    /// soft targets, last hidden state in bf16), timed alternately with the step above on the
    /// same statically masked batch.
    public var topK: Int? = nil
    public var cachedSecondsPerStep: Double? = nil
    public var cachedTokensPerSecond: Double? = nil

    public enum Case: String, CaseIterable, Sendable {
        case a, b, c
        public var description: String {
            switch self {
            case .a: return "all-MiniLM-L6-v2 shape (6 × 384, V = 30,522) → 3 layers × 384"
            case .b: return "bert-base shape (12 × 768) → 6 layers × 768"
            case .c: return "all-MiniLM-L6-v2 shape → ALBERT E = 128, H = 384, 6 layers all shared"
            }
        }
    }

    /// What every distillation benchmark times for case `c`: the preset teacher (random weights,
    /// dropout 0.1), the student built from it, DistilBERT's three losses, AdamW, and one batch
    /// of random tokens [B×S] with 15% masked.
    public struct Setup {
        public let teacher: EncoderModel
        public let params: TrainableParameters
        public let settings: LossSettings
        public let optimizer: AdamW
        /// [B×S] input ids, the same with masks, and the MLM labels (−100 where not masked).
        public let ids: [Int32]
        public let masked: [Int32]
        public let labels: [Int32]

        public init(_ c: Case, B: Int, S: Int) throws {
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
            teacher = EncoderModel(config: tc)
            teacher.initializeRandomly(seed: 1)
            let student = try StudentBuilder.build(spec, teacher: teacher, seed: 2)
            params = TrainableParameters(model: student, projectTo: nil)
            var settings = LossSettings()
            settings.temperature = 2; settings.alphaCE = 5; settings.alphaMLM = 2; settings.alphaCos = 1
            self.settings = settings
            optimizer = AdamW(layout: params.layout, settings: AdamWSettings(beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0),
                              rule: .biasesAndNorms)
            var rng = SplitMix64(seed: 3)
            let N = B * S, V = tc.vocabSize
            let ids = (0..<N).map { i in i % S == 0 ? Int32(101) : i % S == S - 1 ? Int32(102) : Int32(1000 + Int(rng.next() % UInt64(V - 1000))) }
            var labels = [Int32](repeating: -100, count: N)
            var masked = ids
            for i in 0..<N where i % S != 0 && i % S != S - 1 && rng.nextFloat() < 0.15 { labels[i] = ids[i]; masked[i] = 103 }
            self.ids = ids
            self.masked = masked
            self.labels = labels
        }
    }

    public static func run(_ c: Case, precision: WeightFormat = .fp32, B: Int = 16, S: Int = 128, steps: Int = 5,
                           warmup: Int = 1, cacheTopK: Int? = nil) throws -> DistillBenchmark {
        let setup = try Setup(c, B: B, S: S)
        let teacher = setup.teacher, params = setup.params, settings = setup.settings, optimizer = setup.optimizer
        let tc = teacher.config, ids = setup.ids, labels = setup.labels, V = tc.vocabSize, student = params.student
        if precision == .bf16 {
            teacher.convertMatricesToBF16()
            params.student.convertMatricesToBF16()
        }
        let step = try DistillationStep(teacher: teacher, params: params, settings: settings, maxB: B, maxS: S)
        let N = B * S
        let batch = TokenBatch(B: B, S: S, inputIds: setup.masked, attentionMask: [Float](repeating: 1, count: N),
                               tokenTypes: [Int32](repeating: 0, count: N))
        var iteration: UInt64 = 0
        func train(_ batch: TokenBatch, _ labels: [Int32], _ cached: CachedTeacherBatch?) throws {
            let keys = DropoutKeys(seed: 9, iteration: iteration)
            iteration += 1
            _ = try step.run(batch, labels: labels, dropout: keys, cached: cached)
            var clock = PhaseClock()
            clipGradientNorm(params.gradients, count: params.layout.count, maxNorm: 5)
            clock.lap("clip")
            optimizer.update(parameters: params.parameters, gradients: params.gradients, lr: 5e-4)
            params.student.refreshMatrices()
            clock.lap("AdamW")
            params.gradients.zero()
            clock.lap("zero gradients")
            clock.report()
        }
        var times: [Double] = [], cachedTimes: [Double] = []
        if let k = cacheTopK {
            // The same B sequences, masked once; the cache built from them, then steps without
            // and with it alternately (the machine's load falls on both alike).
            let vocabulary = (0..<V).map { i in [0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"][i] ?? "tok\(i)" }
            let tokenizer = try BertTokenizer.from(vocabularyText: vocabulary.joined(separator: "\n"), configText: nil, origin: "bench")
            var policy = MaskingPolicy()
            policy.probability = 0.15
            let masking = StaticMasking(masker: MLMMasker(policy: policy, tokenizer: tokenizer), seed: 3)
            let sequences = CacheSequences(count: B, length: { _ in S }, ids: { b in Array(ids[(b * S)..<((b + 1) * S)]) })
            var header = TeacherCacheHeader(teacher: "bench", data: "bench", vocabularySize: V, maxSequenceLength: S, sequences: B, tokens: N,
                                            masking: masking.description, topK: k, softTargetRows: "all", tailTemperature: Double(settings.temperature), teacherWidth: tc.hiddenSize,
                                            precision: "bf16", lastHidden: true, hiddenLayers: [], qkvLayers: [],
                                            tailSamples: TeacherCacheSpec().tailSamples)
            header.dataPath = "bench"
            let path = NSTemporaryDirectory() + "/distill-bench-cache-\(getpid()).dtc"
            defer { try? FileManager.default.removeItem(atPath: path) }
            _ = try TeacherCacheBuilder.build(teacher: teacher, sequences: sequences, header: header, masking: masking, padId: 0, batchSize: B, to: path)
            let cached = CachedTeacherBatch(reader: try TeacherCacheReader(path: path), maxB: B)
            let (staticBatch, staticLabels) = try cached.load(Array(0..<B), lengths: { _ in S }, padId: 0, tokenTypes: true)
            for _ in 0..<warmup { try train(staticBatch, staticLabels, nil) }
            for _ in 0..<warmup { let (b, l) = try cached.load(Array(0..<B), lengths: { _ in S }, padId: 0, tokenTypes: true); try train(b, l, cached) }
            for _ in 0..<steps {
                var t = Timing.now()
                try train(staticBatch, staticLabels, nil)
                times.append(Timing.now() - t)
                t = Timing.now()
                let (b, l) = try cached.load(Array(0..<B), lengths: { _ in S }, padId: 0, tokenTypes: true)
                try train(b, l, cached)
                cachedTimes.append(Timing.now() - t)
            }
        } else {
            times = try Timing.measure(warmup: warmup, iterations: steps) { try train(batch, labels, nil) }
        }
        let sec = times.median
        let sc = student.config
        // Teacher: encoder and logits forward. Student: the same forward, backward ≈ twice it.
        func head(_ c: EncoderConfig) -> Double { 2 * Double(N) * Double(c.hiddenSize * c.headWidth) + 2 * Double(N) * Double(c.headWidth * V) }
        let flops = tc.forwardFLOPs(B: B, S: S) + head(tc) + 3 * (sc.forwardFLOPs(B: B, S: S) + head(sc))
        var result = DistillBenchmark(name: c.rawValue, precision: precision.rawValue, teacher: c.description.components(separatedBy: " → ")[0],
                                student: c.description.components(separatedBy: " → ").last ?? "", batch: B, sequence: S,
                                secondsPerStep: sec, tokensPerSecond: Double(N) / sec, gflops: flops / sec / 1e9,
                                peakRSSBytes: Timing.peakRSS(), teacherParameters: teacher.layout.count,
                                studentParameters: student.layout.count)
        if !cachedTimes.isEmpty {
            let c = cachedTimes.sorted()[cachedTimes.count / 2]
            result.topK = cacheTopK; result.cachedSecondsPerStep = c; result.cachedTokensPerSecond = Double(N) / c
        }
        return result
    }
}
