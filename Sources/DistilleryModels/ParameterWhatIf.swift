import Foundation
import DistilleryTensor

/// Changes to a model's shape, to size a student before building it (`distill params --like`).
public struct ShapeChanges: Codable, Sendable, Equatable {
    public var layers: Int?
    public var decoderLayers: Int?
    public var hidden: Int?
    public var heads: Int?
    public var intermediate: Int?
    public var embedding: Int?
    public var vocab: Int?
    public var positions: Int?
    /// Cross-layer sharing by name (`LayerSharing.studentChoices`: all, attention, ffn, none).
    public var share: String?

    public init(layers: Int? = nil, decoderLayers: Int? = nil, hidden: Int? = nil, heads: Int? = nil, intermediate: Int? = nil,
                embedding: Int? = nil, vocab: Int? = nil, positions: Int? = nil, share: String? = nil) {
        self.layers = layers; self.decoderLayers = decoderLayers; self.hidden = hidden; self.heads = heads
        self.intermediate = intermediate; self.embedding = embedding; self.vocab = vocab; self.positions = positions
        self.share = share
    }

    /// The options, as the command line spells them, with their values and the dimension each sets.
    public var options: [(option: String, value: Int?, field: ModelShape.Field)] {
        [("--layers", layers, .layers), ("--decoder-layers", decoderLayers, .decoderLayers), ("--hidden", hidden, .hidden),
         ("--heads", heads, .heads), ("--intermediate", intermediate, .intermediate), ("--embedding", embedding, .embedding),
         ("--vocab", vocab, .vocab), ("--positions", positions, .positions)]
    }

    public var isEmpty: Bool { options.allSatisfy { $0.value == nil } && share == nil }

    /// "layers 6, hidden 384, share all".
    public var summary: String {
        let parts = options.compactMap { o in o.value.map { "\(o.option.dropFirst(2)) \($0)" } } + (share.map { ["share \($0)"] } ?? [])
        return parts.joined(separator: ", ")
    }
}

extension ModelShape {
    /// This shape with `changes` applied, and notes on what followed from them. The class stays
    /// (a base model keeps its pooler, an MLM model its head). When --hidden changes and --heads
    /// or --intermediate are not given, the head width and the FFN ratio are kept. --embedding and
    /// --share make a BERT or DistilBERT ALBERT-style (factorized embeddings and shared layers are
    /// ALBERT's, as `builder = "albert"` builds them); other families without those features
    /// refuse them.
    public func applying(_ changes: ShapeChanges) throws -> (shape: ModelShape, notes: [String]) {
        for (option, value, field) in changes.options {
            guard let v = value else { continue }
            let r = Self.limits[field]!
            if !r.contains(v) {
                throw ParameterCountError.badOption(option: option, reason: "must be \(grouped(r.lowerBound))…\(grouped(r.upperBound)), got \(v)")
            }
        }
        var sharing: LayerSharing?
        if let name = changes.share {
            guard let s = LayerSharing(studentChoice: name) else {
                throw ParameterCountError.badOption(option: "--share", reason: "'\(name)' is not a sharing; choose "
                                                 + LayerSharing.studentChoices.map(\.name).joined(separator: ", "))
            }
            sharing = s
        }
        var s = self
        var notes: [String] = []
        let factorizing: Set<Family> = [.albert, .electra, .deberta, .debertaV2]
        let wantsEmbedding = changes.embedding.map { $0 != (changes.hidden ?? hiddenSize) } ?? false
        if sharing != nil && family != .albert || wantsEmbedding && !factorizing.contains(family) {
            let option = sharing != nil && family != .albert ? "--share" : "--embedding"
            guard family == .bert || family == .distilbert else {
                let what = option == "--share" ? "cross-layer sharing is counted for ALBERT-style encoders"
                    : "\(family.title) has no factorized embeddings (ALBERT, ELECTRA and DeBERTa have)"
                throw ParameterCountError.badOption(option: option, reason: "\(what); \(option) applies to BERT and DistilBERT too, "
                                                 + "which become ALBERT-style")
            }
            s.family = .albert
            s.pooler = hasPooler
            notes.append("ALBERT-style \(family.title): factorized embeddings (with ALBERT's E→H projection) and cross-layer "
                         + "sharing are ALBERT features, as builder = \"albert\" builds them"
                         + (sharing == nil ? "; layers unshared (add --share all for ALBERT's sharing)" : ""))
        }
        let oldH = hiddenSize
        if let h = changes.hidden, h != oldH {
            s.hiddenSize = h
            if changes.embedding == nil && embeddingSize == oldH && family != .albert { s.embeddingSize = h }
            if changes.heads == nil && headDim == nil {
                let width = oldH / heads
                if oldH % heads == 0 && h % width == 0 {
                    s.heads = h / width
                    if s.heads != heads { notes.append("heads \(s.heads): the head width \(width) kept (give --heads to choose)") }
                } else if family != .gpt3 {
                    throw ParameterCountError.badOption(option: "--hidden", reason: "the original's head width (\(oldH) / \(heads) heads) "
                                                     + "does not divide \(h); give --heads")
                }
            }
            if changes.intermediate == nil {
                s.intermediateSize = max(1, intermediateSize * h / oldH)
                if family == .bart { s.decoderIntermediateSize = max(1, decoderIntermediateSize * h / oldH) }
                notes.append("\(family.key(.intermediate)) \(s.intermediateSize): the FFN ratio \(fixedRatio(intermediateSize, oldH)) kept "
                             + (family == .xlm || family == .openaiGPT ? "(fixed in \(family.title))" : "(give --intermediate to choose)"))
            }
        }
        if let v = changes.layers {
            s.layers = v
            if family.isSeq2Seq && changes.decoderLayers == nil { s.decoderLayers = v }
        }
        if let v = changes.decoderLayers {
            guard family.isSeq2Seq else {
                throw ParameterCountError.badOption(option: "--decoder-layers", reason: "\(family.title) has no separate decoder; use --layers")
            }
            s.decoderLayers = v
        }
        if let v = changes.heads { s.heads = v }
        if let v = changes.intermediate {
            guard family != .xlm && family != .openaiGPT else {
                throw ParameterCountError.badOption(option: "--intermediate", reason: "\(family.title)'s FFN is 4 × hidden, with no setting of its own")
            }
            s.intermediateSize = v
            if family == .bart { s.decoderIntermediateSize = v }
        }
        if let v = changes.embedding { s.embeddingSize = v }
        if let v = changes.vocab { s.vocabSize = v }
        if let v = changes.positions {
            guard s.family != .t5 && s.family != .xlnet else {
                throw ParameterCountError.badOption(option: "--positions", reason: "\(family.title) has no position table (its positions are relative)")
            }
            s.positions = v
        }
        if let sharing { s.sharing = sharing }
        try s.validate(source: "what-if")
        return (s, notes)
    }

    private func fixedRatio(_ a: Int, _ b: Int) -> String {
        a % b == 0 ? "\(a / b)" : String(format: "%.3g", Double(a) / Double(b))
    }
}
