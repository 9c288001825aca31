// Embedding gather: the sum of word, position and (optional) token-type rows.
//
//   out[N×C], N = B·S tokens:  out[n] = wte[ids[n]] + wpe[n mod S] + wtt[types[n]]
//   wte[V×C], wpe[P×C], wtt[T×C]
//
// Backward scatters dout back into the tables. Rows of a table are hit by many tokens, so the
// work is split by channel, not by token: each thread owns a band of columns of every table,
// no two threads touch the same float, and the sum order is fixed.

public func embeddingForward(_ out: UnsafeMutablePointer<Float>,
                             ids: UnsafePointer<Int32>, types: UnsafePointer<Int32>?,
                             wte: UnsafePointer<Float>, wpe: UnsafePointer<Float>,
                             wtt: UnsafePointer<Float>?,
                             B: Int, S: Int, C: Int) {
    let out = SendablePointer(out)
    Parallel.forEachChunk(B * S, minPerChunk: 64) { _, rows in
        for n in rows {
            let o = out.p + n * C
            let w = wte + Int(ids[n]) * C
            let p = wpe + (n % S) * C
            if let wtt, let types {
                let t = wtt + Int(types[n]) * C
                for c in 0..<C { o[c] = w[c] + p[c] + t[c] }
            } else {
                for c in 0..<C { o[c] = w[c] + p[c] }
            }
        }
    }
}

public func embeddingBackward(dwte: UnsafeMutablePointer<Float>, dwpe: UnsafeMutablePointer<Float>,
                              dwtt: UnsafeMutablePointer<Float>?,
                              dout: UnsafePointer<Float>,
                              ids: UnsafePointer<Int32>, types: UnsafePointer<Int32>?,
                              B: Int, S: Int, C: Int) {
    let dwte = SendablePointer(dwte), dwpe = SendablePointer(dwpe)
    let dwtt = dwtt.map { SendablePointer($0) }
    Parallel.forEachChunk(C, minPerChunk: 16) { _, cols in
        for n in 0..<(B * S) {
            let d = dout + n * C
            let w = dwte.p + Int(ids[n]) * C
            let p = dwpe.p + (n % S) * C
            for c in cols { w[c] += d[c]; p[c] += d[c] }
            if let dwtt, let types {
                let t = dwtt.p + Int(types[n]) * C
                for c in cols { t[c] += d[c] }
            }
        }
    }
}
