import Foundation
import CBLAS
import CDNNL

/// Thread configuration: one pool of threads does all parallel work. OpenBLAS is kept
/// single-threaded and `sgemm` splits products across our threads, so BLAS worker threads
/// never spin against our element-wise loops on a small machine; where oneDNN runs the
/// products, the pool is oneDNN's OpenMP team (see `WorkerPool`).
///
/// Element-wise work is split into one contiguous chunk per thread, the same chunks every time
/// for the same thread count, so any per-thread partial sums are reduced in a fixed order and
/// results are bit-for-bit reproducible run to run.
public enum Parallel {
    nonisolated(unsafe) private static var _threads: Int = {
        openblas_set_num_threads(1)
        var n = max(1, ProcessInfo.processInfo.activeProcessorCount)
        if let s = ProcessInfo.processInfo.environment["DISTILL_THREADS"], let v = Int(s), (1...1024).contains(v) { n = v }
        if GEMMBackend.current == .onednn { distill_dnnl_set_threads(Int32(n)) }
        return n
    }()

    /// Threads used by parallel loops and matrix products.
    public static var threads: Int { _threads }

    /// Sets the thread count. Call before starting work.
    public static func setThreads(_ n: Int) {
        _threads = max(1, n)
        openblas_set_num_threads(1)
        if GEMMBackend.current == .onednn { distill_dnnl_set_threads(Int32(_threads)) }
    }

    /// The workers (threads − 1 of them; the caller is the last), made on first use and
    /// remade if the thread count grows.
    nonisolated(unsafe) private static var pool: WorkerPool?
    private static let poolLock = NSLock()
    private static func workers() -> WorkerPool {
        poolLock.lock(); defer { poolLock.unlock() }
        if let p = pool, p.workers >= threads - 1 { return p }
        let p = WorkerPool(workers: threads - 1, onTeam: usesOneDNNTeam)
        pool = p
        return p
    }

    /// Whether parallel loops run on oneDNN's OpenMP threads (see `WorkerPool`): where oneDNN
    /// multiplies, unless DISTILL_POOL=own asks for threads of our own (to compare the two).
    /// (A two-thread region first checks that the team runs and gets more than one thread:
    /// OMP_THREAD_LIMIT=1, say, would leave every loop on the caller.)
    public static let usesOneDNNTeam: Bool =
        GEMMBackend.current == .onednn && ProcessInfo.processInfo.environment["DISTILL_POOL"] != "own"
        && distill_dnnl_parallel(2, nil, nil) == 2

    static func markWorkerThread() { pthread_setspecific(regionKey, marker) }

    /// True while this thread runs a chunk of `forEachChunk`: nested parallel work (a matrix
    /// product inside a per-head loop, say) then runs serially on this thread.
    public static var isInsideParallelRegion: Bool { pthread_getspecific(regionKey) != nil }

    nonisolated(unsafe) private static let regionKey: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()
    nonisolated(unsafe) private static let marker = UnsafeMutableRawPointer(bitPattern: 1)

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
    public static func chunkCount(_ count: Int, minPerChunk: Int, perThread: Int = 1) -> Int {
        max(1, min(threads * max(1, perThread), count / max(1, minPerChunk)))
    }

    /// Runs `body(chunkIndex, range)` over `0..<count` split into contiguous chunks.
    /// `body` must only write memory that belongs to its range (or to its chunk index).
    /// At most `maxChunks` chunks are made (for callers with per-chunk scratch).
    ///
    /// `perThread` > 1 cuts more chunks than threads, which the threads take as they finish:
    /// for long loops whose chunks may run at different speeds (a product on a rented core
    /// that the host interrupts), so no thread waits long for another. The chunks still depend
    /// only on the thread count.
    public static func forEachChunk(_ count: Int, minPerChunk: Int = 1, maxChunks: Int = .max, perThread: Int = 1,
                                    _ body: @escaping (Int, Range<Int>) -> Void) {
        let chunks = min(chunkCount(count, minPerChunk: minPerChunk, perThread: perThread), max(1, maxChunks))
        if chunks == 1 || isInsideParallelRegion {
            body(0, 0..<count)
            return
        }
        // Chunks write disjoint memory (the contract above).
        let ran = perform(workers(), chunks: chunks, count: count) { c, _, range in body(c, range) }
        if !ran { body(0, 0..<count) }
    }

    /// body(chunk, thread, range) for each chunk on the pool; false if the pool was busy. Every
    /// chunk runs marked as inside the region (the caller's too), so nested loops stay serial.
    private static func perform(_ pool: WorkerPool, chunks: Int, count: Int,
                                _ body: @escaping (Int, Int, Range<Int>) -> Void) -> Bool {
        pool.perform(chunks: chunks) { c, thread in
            let outer = pthread_getspecific(regionKey)
            pthread_setspecific(regionKey, marker)
            body(c, thread, chunk(c, of: chunks, count: count))
            pthread_setspecific(regionKey, outer)
        }
    }

    /// `forEachChunk` for loops with per-thread scratch: `body(slot, range)` gets the index of
    /// the thread running the chunk (0 ..< slots), so `perThread` chunks a thread can share
    /// `slots` scratch blocks. With fewer slots than the pool has threads (the thread count
    /// changed after the scratch was made) it cuts at most `slots` chunks and passes chunk
    /// indices instead.
    public static func forEachChunkWithScratch(_ count: Int, slots: Int, perThread: Int,
                                               _ body: @escaping (Int, Range<Int>) -> Void) {
        let pool = threads > 1 && !isInsideParallelRegion ? workers() : nil
        guard let pool, pool.workers + 1 <= slots else {
            forEachChunk(count, maxChunks: slots, body)
            return
        }
        let chunks = chunkCount(count, minPerChunk: 1, perThread: perThread)
        if chunks == 1 { body(0, 0..<count); return }
        let ran = perform(pool, chunks: chunks, count: count) { _, thread, range in body(thread, range) }
        if !ran { body(0, 0..<count) }
    }
}
