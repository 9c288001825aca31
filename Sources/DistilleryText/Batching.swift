import DistilleryTensor

/// Where training is in the data: epoch and batch index within it. Saved in checkpoints.
public struct DataPosition: Sendable, Equatable, Codable {
    public var epoch: Int
    public var batch: Int
    public init(epoch: Int = 0, batch: Int = 0) { self.epoch = epoch; self.batch = batch }
}

/// How an epoch's examples are cut into batches.
public enum BatchOrder: String, Sendable, Codable, CaseIterable {
    /// Shuffle, sort pools of 50 batches by length, cut, shuffle the batches: batches of
    /// similar lengths, so little padding (the default).
    case bucketed
    /// Shuffle and cut: what a PyTorch DataLoader(shuffle=True) gives, for runs that should
    /// follow a reference script's data order.
    case shuffled
}

/// The batches of each epoch, in `order`: every example once per epoch, deterministic in
/// (seed, epoch).
public struct EpochBatches: Sendable {
    public let lengths: [Int]
    public let batchSize: Int
    public let seed: UInt64
    public let order: BatchOrder
    public let poolBatches: Int

    public init(lengths: [Int], batchSize: Int, seed: UInt64, order: BatchOrder = .bucketed, poolBatches: Int = 50) {
        precondition(batchSize > 0)
        self.lengths = lengths; self.batchSize = batchSize; self.seed = seed; self.order = order; self.poolBatches = poolBatches
    }

    /// Batches of one epoch (the last may be smaller).
    public func epoch(_ e: Int) -> [[Int]] {
        var rng = SplitMix64(seed: streamKey(seed, 0xBA7C, UInt64(e)))
        var shuffled = Array(lengths.indices)
        shuffled.shuffle(using: &rng)
        if order == .shuffled {
            return stride(from: 0, to: shuffled.count, by: batchSize).map { Array(shuffled[$0..<min(shuffled.count, $0 + batchSize)]) }
        }
        var batches: [[Int]] = []
        let pool = batchSize * poolBatches
        var start = 0
        while start < shuffled.count {
            let chunk = shuffled[start..<min(shuffled.count, start + pool)].sorted { (lengths[$0], $0) < (lengths[$1], $1) }
            var i = 0
            while i < chunk.count {
                batches.append(Array(chunk[(chunk.startIndex + i)..<min(chunk.endIndex, chunk.startIndex + i + batchSize)]))
                i += batchSize
            }
            start += pool
        }
        batches.shuffle(using: &rng)
        return batches
    }
}

/// Indices 0 ..< count ordered by length (shortest first, ties in index order) and cut into
/// batches of `batchSize`, the last one smaller if it must: sequences of similar lengths share
/// a batch, so a batch pads little, and the cut is the same every time. For passes over a fixed
/// set of sequences (evaluation, a teacher cache, a probe's embeddings), not training epochs.
/// A caller that runs a model over them takes them longest first (`.reversed()`): the first
/// batch then sizes the model's workspace, which shortest first would grow batch after batch.
public func lengthOrderedBatches(count: Int, batchSize: Int, length: (Int) -> Int) -> [[Int]] {
    precondition(count >= 0 && batchSize > 0)
    let order = (0..<count).sorted { (length($0), $0) < (length($1), $1) }
    return stride(from: 0, to: count, by: batchSize).map { Array(order[$0..<min(count, $0 + batchSize)]) }
}

extension TokenDataset {
    /// The sequences `indices`, padded with `padId` to the longest: ids and mask, [B×S] each.
    public func collate(_ indices: [Int], padId: Int32) -> (B: Int, S: Int, ids: [Int32], mask: [Float]) {
        let S = indices.map { length($0) }.max() ?? 0
        var ids = [Int32](repeating: padId, count: indices.count * S)
        var mask = [Float](repeating: 0, count: indices.count * S)
        ids.withUnsafeMutableBufferPointer { p in
            for (b, i) in indices.enumerated() {
                copy(i, into: p.baseAddress! + b * S)
                for k in 0..<length(i) { mask[b * S + k] = 1 }
            }
        }
        return (indices.count, S, ids, mask)
    }
}
