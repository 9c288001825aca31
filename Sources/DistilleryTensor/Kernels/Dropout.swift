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
    let scale = 1 / (1 - p)
    let x = SendablePointer(x)
    Parallel.forEachChunk(count, minPerChunk: 8192) { _, range in
        for i in range {
            x.p[i] = uniform(key, offset + i) >= p ? x.p[i] * scale : 0
        }
    }
}

/// Dropout of elements offset ..< offset + count of a stream, stored at x[0 ..< count]
/// (one block of a larger tensor, processed on the calling thread).
@inlinable
public func dropoutBlock(_ x: UnsafeMutablePointer<Float>, count: Int, offset: Int, p: Float, key: UInt64) {
    let scale = 1 / (1 - p)
    for i in 0..<count { x[i] = uniform(key, offset + i) >= p ? x[i] * scale : 0 }
}
