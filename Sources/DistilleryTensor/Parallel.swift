import Dispatch
import Foundation
import CBLAS

/// Thread configuration shared by our own loops and OpenBLAS.
///
/// Element-wise work is split into one contiguous chunk per thread, the same chunks every time
/// for the same thread count, so any per-thread partial sums are reduced in a fixed order and
/// results are bit-for-bit reproducible run to run.
public enum Parallel {
    nonisolated(unsafe) private static var _threads: Int = {
        if let s = ProcessInfo.processInfo.environment["DISTILL_THREADS"], let n = Int(s), n > 0 {
            openblas_set_num_threads(Int32(n))
            return n
        }
        let n = max(1, ProcessInfo.processInfo.activeProcessorCount)
        openblas_set_num_threads(Int32(n))
        return n
    }()

    /// Threads used by parallel loops and by OpenBLAS.
    public static var threads: Int { _threads }

    /// Sets the thread count for our loops and OpenBLAS. Call before starting work.
    public static func setThreads(_ n: Int) {
        let n = max(1, n)
        _threads = n
        openblas_set_num_threads(Int32(n))
    }

    /// The contiguous range of `0..<count` that chunk `index` of `chunks` covers.
    @inlinable
    public static func chunk(_ index: Int, of chunks: Int, count: Int) -> Range<Int> {
        let per = count / chunks, extra = count % chunks
        let lo = index * per + min(index, extra)
        return lo..<(lo + per + (index < extra ? 1 : 0))
    }

    /// How many chunks to use for `count` items when each chunk should hold at least
    /// `minPerChunk` of them (below that, threading costs more than it saves).
    @inlinable
    public static func chunkCount(_ count: Int, minPerChunk: Int) -> Int {
        max(1, min(threads, count / max(1, minPerChunk)))
    }

    /// Runs `body(chunkIndex, range)` over `0..<count` split into contiguous chunks.
    /// `body` must only write memory that belongs to its range (or to its chunk index).
    @inlinable
    public static func forEachChunk(_ count: Int, minPerChunk: Int = 1,
                                    _ body: (Int, Range<Int>) -> Void) {
        let chunks = chunkCount(count, minPerChunk: minPerChunk)
        if chunks == 1 {
            body(0, 0..<count)
            return
        }
        // Chunks write disjoint memory (the contract above), which the compiler cannot see.
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            body(c, chunk(c, of: chunks, count: count))
        }
    }
}
