import CKernels

// Inverted dropout with a counter-based mask.
//
//   x [count]:  x[i] = keep(i) ? x[i] / (1 − p) : 0,   keep(i) = uniform(key, i) ≥ p
//
// The backward pass applies exactly the same function to the incoming gradient (same key,
// same mask), so no mask is stored.

/// `offset` is where x[0] sits in the stream (a rank's rows of a larger batch draw the masks
/// those rows draw in the whole batch).
public func dropout(_ x: UnsafeMutablePointer<Float>, count: Int, p: Float, key: UInt64, offset: Int = 0) {
    if p <= 0 { return }
    let x = SendablePointer(x)
    Parallel.forEachChunk(count, minPerChunk: 8192) { _, range in
        dropoutBlock(x.p + range.lowerBound, count: range.count, offset: offset + range.lowerBound, p: p, key: key)
    }
}

/// Dropout of elements offset ..< offset + count of a stream, stored at x[0 ..< count]
/// (one block of a larger tensor, processed on the calling thread). CKernels draws the same
/// bits as `uniform(key, i)`, eight at a time: keep ⇔ uniform ≥ p ⇔ its 24-bit draw ≥ ⌈p·2²⁴⌉.
public func dropoutBlock(_ x: UnsafeMutablePointer<Float>, count: Int, offset: Int, p: Float, key: UInt64) {
    distill_dropout(x, count, offset, dropoutThreshold(p), 1 / (1 - p), key)
}

/// ⌈p·2²⁴⌉: the smallest 24-bit draw that `uniform` maps to a value ≥ p (p·2²⁴ is exact in Double).
func dropoutThreshold(_ p: Float) -> UInt64 {
    UInt64((Double(p) * 16_777_216).rounded(.up))
}
