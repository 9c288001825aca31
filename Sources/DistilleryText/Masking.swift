import Foundation
import DistilleryTensor

/// Masked-language-model targets as the DistilBERT distiller draws them: a share of the
/// non-special tokens is selected (optionally weighted by count^-smoothing, optionally whole
/// words), and each selected token becomes [MASK], stays, or becomes a random token.
///
/// Draws come from a counter-based stream keyed by the caller (the trainer uses the seed and
/// the step), so every serving of a sequence gets fresh masks and a resumed run gets the
/// same ones.
public struct MaskingPolicy: Sendable, Equatable, Codable {
    public var probability: Float = 0.15
    /// Of the selected tokens: share replaced by [MASK], share replaced by a random token (the
    /// rest keep their token).
    public var maskShare: Float = 0.8
    public var randomShare: Float = 0.1
    /// 0 selects uniformly; the distiller's `mlm_smoothing` 0.7 favours rare tokens.
    public var smoothing: Float = 0
    public var wholeWord = false
    public init() {}
}

public struct MaskedBatch: Sendable {
    /// Input ids with the replacements made [B×S].
    public var inputIds: [Int32]
    /// The original id at selected positions, −100 elsewhere [B×S].
    public var labels: [Int32]
    public var targetCount: Int
}

public struct MLMMasker: Sendable {
    public let policy: MaskingPolicy
    public let vocabularySize: Int
    public let maskId: Int32
    /// Ids never selected ([CLS], [SEP], [PAD], [MASK], [UNK]).
    let special: [Bool]
    /// Ids that continue a word ("##…"), for whole-word masking.
    let continuation: [Bool]
    /// Selection weight per id (count^-smoothing), or empty for uniform.
    let weight: [Float]

    public init(policy: MaskingPolicy, tokenizer: BertTokenizer, tokenCounts: [Int]? = nil) {
        self.policy = policy
        let v = tokenizer.vocabulary
        vocabularySize = v.count
        maskId = tokenizer.maskId
        var special = [Bool](repeating: false, count: v.count)
        for id in tokenizer.specialIds { special[Int(id)] = true }
        self.special = special
        continuation = v.tokens.map { $0.utf8.starts(with: "##".utf8) }
        if policy.smoothing > 0, let counts = tokenCounts {
            weight = counts.map { Float(pow(Double(max($0, 1)), -Double(policy.smoothing))) }
        } else {
            weight = []
        }
    }

    /// Masks a batch. `key` identifies this serving (e.g. streamKey(seed, step)).
    public func apply(_ batch: TokenBatchView, key: UInt64) -> MaskedBatch {
        var ids = batch.inputIds
        var labels = [Int32](repeating: -100, count: ids.count)
        let n = mask(&ids, &labels, positions: 0..<ids.count, attentionMask: batch.attentionMask, key: key)
        return MaskedBatch(inputIds: ids, labels: labels, targetCount: n)
    }

    /// Masks each sequence (row of S positions) of a batch on its own, row b keyed by
    /// streamKey(key, firstRow + b) and its positions counted within the row: a sequence gets
    /// the same masks whatever batch, padding or share of a batch it is served in (the trainer
    /// passes the sequence's index in the step's whole batch, so data-parallel ranks mask their
    /// rows as one process masks the whole batch).
    public func applyPerSequence(_ batch: TokenBatchView, S: Int, key: UInt64, firstRow: Int = 0) -> MaskedBatch {
        var ids = batch.inputIds
        var labels = [Int32](repeating: -100, count: ids.count)
        var n = 0
        if S > 0 {
            for b in 0..<(ids.count / S) {
                n += mask(&ids, &labels, positions: (b * S)..<((b + 1) * S), attentionMask: batch.attentionMask,
                          key: streamKey(key, UInt64(firstRow + b)))
            }
        }
        return MaskedBatch(inputIds: ids, labels: labels, targetCount: n)
    }

    /// Selects and replaces targets among `positions` (draws indexed from the range's start).
    /// Returns how many were selected.
    func mask(_ ids: inout [Int32], _ labels: inout [Int32], positions: Range<Int>, attentionMask: [Float], key: UInt64) -> Int {
        let base = positions.lowerBound
        // Candidates: real, non-special tokens.
        var candidates: [Int] = []
        candidates.reserveCapacity(positions.count)
        for i in positions where attentionMask[i] != 0 && !special[Int(ids[i])] { candidates.append(i) }
        let want = Int((Float(candidates.count) * policy.probability).rounded())
        if want == 0 { return 0 }
        let selectKey = streamKey(key, 1), replaceKey = streamKey(key, 2), randomKey = streamKey(key, 3)

        // Efraimidis–Spirakis: keep the `want` largest of log(u) / w (u itself when uniform).
        func priority(_ i: Int) -> Double {
            let u = max(Double(uniform(selectKey, i - base)), 1e-12)
            return weight.isEmpty ? u : log(u) / Double(weight[Int(ids[i])])
        }
        var chosen: [Int] = []
        if policy.wholeWord {
            // Words: a non-continuation candidate and the continuation candidates after it.
            var words: [[Int]] = []
            for i in candidates {
                if continuation[Int(ids[i])], let last = words.last?.last, last == i - 1 { words[words.count - 1].append(i) } else { words.append([i]) }
            }
            let p = words.map { priority($0[0]) }
            let order = words.indices.sorted { p[$0] > p[$1] }
            for w in order {
                if chosen.count + words[w].count > want { continue }
                chosen += words[w]
                if chosen.count == want { break }
            }
        } else {
            let p = candidates.map(priority)
            chosen = candidates.indices.sorted { p[$0] > p[$1] }.prefix(want).map { candidates[$0] }
        }
        for i in chosen {
            labels[i] = ids[i]
            let r = uniform(replaceKey, i - base)
            if r < policy.maskShare {
                ids[i] = maskId
            } else if r < policy.maskShare + policy.randomShare {
                ids[i] = Int32(Int(uniform(randomKey, i - base) * Float(vocabularySize)) % vocabularySize)
            }
        }
        return chosen.count
    }
}

/// The parts of a batch masking needs.
public struct TokenBatchView: Sendable {
    public var inputIds: [Int32]
    public var attentionMask: [Float]
    public init(inputIds: [Int32], attentionMask: [Float]) { self.inputIds = inputIds; self.attentionMask = attentionMask }
}

