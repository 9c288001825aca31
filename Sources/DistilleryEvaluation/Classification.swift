import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText

/// How well a classifier does on labelled examples.
public struct ClassificationReport: Codable, Sendable, Equatable {
    public var examples = 0
    public var accuracy = 0.0
    /// The mean over classes of F1 = 2·precision·recall / (precision + recall).
    public var macroF1 = 0.0
    /// Mean cross-entropy.
    public var loss = 0.0
    /// How often the predictions agree with a reference model's, when one is given.
    public var agreement: Double?
    public init() {}
}

public enum ClassificationEvaluator {
    /// Accuracy, macro-F1 and loss of `model` on `set`, in batches of `batchSize`; with a
    /// reference, how often their predictions agree.
    public static func evaluate(_ model: EncoderModel, on set: ClassificationSet, batchSize: Int = 32, padId: Int32,
                                reference: EncoderModel? = nil) throws -> ClassificationReport {
        let C = model.config.numLabels
        // Per class: right, predicted, actual (what macro-F1 needs; no C×C table).
        var hits = [Int](repeating: 0, count: C), predictedCount = hits, actualCount = hits
        var r = ClassificationReport(), agree = 0, lossSum = 0.0
        var start = 0
        while start < set.count {
            let idx = Array(start..<min(set.count, start + batchSize))
            let b = set.batch(idx, padId: padId, withTokenTypes: model.config.hasTokenTypes)
            let batch = TokenBatch(B: b.B, S: b.S, inputIds: b.inputIds, attentionMask: b.mask, tokenTypes: b.types)
            var logits = [Float](repeating: 0, count: b.B * C)
            try logits.withUnsafeMutableBufferPointer { try model.classify(batch, into: $0.baseAddress!) }
            var refLogits: [Float]?
            if let reference {
                let rb = TokenBatch(B: b.B, S: b.S, inputIds: b.inputIds, attentionMask: b.mask,
                                    tokenTypes: reference.config.hasTokenTypes ? set.batch(idx, padId: padId, withTokenTypes: true).types : nil)
                var l = [Float](repeating: 0, count: b.B * C)
                try l.withUnsafeMutableBufferPointer { try reference.classify(rb, into: $0.baseAddress!) }
                refLogits = l
            }
            for i in 0..<b.B {
                let row = logits[(i * C)..<((i + 1) * C)]
                guard row.allSatisfy(\.isFinite) else { throw InputError.nonFiniteOutput(name: "class logits") }
                let predicted = row.indices.max { row[$0] < row[$1] }! - i * C
                let label = Int(b.labels[i])
                guard label >= 0 && label < C else {
                    throw ClassificationError.labelOutOfRange(label: label, classes: C, line: set.data.examples[idx[i]].line, path: set.data.path)
                }
                actualCount[label] += 1
                predictedCount[predicted] += 1
                if predicted == label { hits[label] += 1 }
                let m = Double(row.max()!)
                let lse = m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
                lossSum += lse - Double(row[row.startIndex + label])
                if let refLogits {
                    let rr = refLogits[(i * C)..<((i + 1) * C)]
                    if rr.indices.max(by: { rr[$0] < rr[$1] })! - i * C == predicted { agree += 1 }
                }
            }
            start += batchSize
        }
        r.examples = set.count
        r.accuracy = Double(hits.reduce(0, +)) / Double(max(1, set.count))
        var f1 = 0.0
        for c in 0..<C {
            let tp = Double(hits[c]), predicted = Double(predictedCount[c]), actual = Double(actualCount[c])
            let p = predicted > 0 ? tp / predicted : 0, rec = actual > 0 ? tp / actual : 0
            f1 += p + rec > 0 ? 2 * p * rec / (p + rec) : 0
        }
        r.macroF1 = f1 / Double(C)
        r.loss = lossSum / Double(max(1, set.count))
        if reference != nil { r.agreement = Double(agree) / Double(max(1, set.count)) }
        return r
    }
}

public enum ClassificationError: Error, CustomStringConvertible, Equatable {
    case notAClassifier(model: String)
    case oneOutput(model: String)
    case labelsDiffer(model: String, labels: [String], reference: String, referenceLabels: [String])
    case labelOutOfRange(label: Int, classes: Int, line: Int, path: String)

    public var description: String {
        switch self {
        case let .notAClassifier(m):
            return "\(m) has no classification head (num_labels is 0): labelled data scores classifiers (distill finetune or a [task] recipe makes one)"
        case let .oneOutput(m):
            return "\(m) has one output (num_labels 1, a regression head): accuracy needs two classes or more"
        case let .labelsDiffer(m, l, r, rl):
            return "\(m) classifies into \(l.joined(separator: ", ")) but \(r) into \(rl.joined(separator: ", ")): their predictions cannot be compared"
        case let .labelOutOfRange(l, c, line, p):
            return "\(p):\(line): class \(l) of a model with \(c) classes (0…\(c - 1)): the data's labels are not the model's"
        }
    }
}

extension ClassificationEvaluator {
    /// Scores a classifier on a labelled file (TSV, or CSV by extension, with a header line):
    /// every label in the file must be one of the model's classes (id2label), named by line.
    /// With a reference classifier (the fp32 model an int8 one came from, or the teacher), also
    /// how often their predictions agree.
    public static func evaluate(_ model: EncoderModel, name: String, file: String, label: LabelledData.Column, text: LabelledData.Column,
                                pair: LabelledData.Column? = nil, tokenizer: BertTokenizer, maxSequenceLength: Int,
                                reference: (model: EncoderModel, name: String)? = nil, batchSize: Int = 32) throws -> ClassificationReport {
        guard model.config.numLabels > 0 else { throw ClassificationError.notAClassifier(model: name) }
        guard model.config.numLabels > 1 else { throw ClassificationError.oneOutput(model: name) }
        if let reference {
            guard reference.model.config.numLabels > 0 else { throw ClassificationError.notAClassifier(model: reference.name) }
            guard reference.model.config.labels == model.config.labels else {
                throw ClassificationError.labelsDiffer(model: name, labels: model.config.labels, reference: reference.name,
                                                       referenceLabels: reference.model.config.labels)
            }
        }
        let data = try LabelledData.load(file, label: label, text: text, pair: pair, classes: model.config.labels)
        let set = ClassificationSet(data, tokenizer: tokenizer, maxSequenceLength: maxSequenceLength)
        return try evaluate(model, on: set, batchSize: batchSize, padId: tokenizer.padId, reference: reference?.model)
    }
}
