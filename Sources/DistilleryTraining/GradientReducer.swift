import Foundation
import Glibc
import CMPI
import DistilleryTensor
import DistilleryModels

/// Where the backward pass is, for starting the reduction of gradients that are final.
public enum BackwardProgress: Sendable {
    /// The losses are done: the heads' and training-only slots' gradients are final.
    case heads
    /// Layer step k's backward is done (steps run from the last down to 0).
    case layer(Int)
}

/// Sums the gradient buffer over the ranks of a job while the backward pass goes on.
///
/// The buffer is cut into buckets along the parameter layout, each with the point of the
/// backward pass after which its gradient is final: the heads and training-only slots after
/// the losses, an attention or FFN block after the backward of the lowest layer step that runs
/// it (a block ALBERT shares receives a contribution from every step that uses it, so it is
/// final only after its earliest one), the embeddings (also written by the tied decoder) only
/// at the end. A bucket's nonblocking allreduce (MPI_Iallreduce, into a separate output buffer
/// so Open MPI may use its bandwidth-optimal algorithms) starts as soon as it is final; a
/// communication thread drives the outstanding ones (Open MPI progresses nonblocking
/// collectives only inside MPI calls), sleeping briefly between tests.
///
/// The word table is the largest tensor of a small student (30,522 × 384 floats, 70% of an
/// all-MiniLM-sized student) and the last to be final: the tied decoder writes all of it in the
/// losses, the input embeddings some rows at the very end. With `splitWordTable` the two parts
/// are summed apart: the decoder's dense part as soon as the losses are done (hidden behind the
/// whole encoder backward pass), the inputs' part, which the backward pass writes into
/// `inputWordGradients` instead, only over the rows some rank's batch used, at the end.
///
/// Every rank sums the same buckets in the same order with the same sizes, so the reduction
/// order, and the result, is fixed for a given rank count.
public final class GradientReducer: @unchecked Sendable {
    public struct Bucket: Sendable {
        public let range: Range<Int>
        /// Final after this layer step's backward; `Int.max`: after the losses; −1: at the end.
        public let after: Int
    }

    /// Per step: what was sent, and how much of the communication the backward pass hid.
    public struct Stats: Sendable, Codable {
        public var bytes = 0
        /// Wall time during which at least one bucket was being reduced.
        public var busySeconds = 0.0
        /// Wall time the trainer waited for the reductions after its backward pass.
        public var exposedSeconds = 0.0
        /// busy − exposed: communication that overlapped the backward pass.
        public var hiddenSeconds: Double { max(0, busySeconds - exposedSeconds) }
        public var hiddenFraction: Double { busySeconds > 0 ? hiddenSeconds / busySeconds : 0 }
        public init() {}
    }

    public let buckets: [Bucket]
    /// The word table's gradient from the inputs [V×E], zero outside the rows a step used (the
    /// backward pass adds into it; `finish` sums those rows and clears them).
    public let inputWordGradients: FloatBuffer?
    let word: (offset: Int, width: Int)?
    let packed: FloatBuffer
    public let input: FloatBuffer
    /// The sums, valid after `finish()`.
    public let output: FloatBuffer
    let count: Int
    /// Seconds between tests of outstanding reductions.
    let pollInterval: Double

    private let cond = NSCondition()
    private var queue: [Int] = []
    private var posted: [Bool]
    private var remaining = 0
    private var failed: String?
    private var intervals: [(Double, Double)] = []
    private var thread: Thread?

    /// Buckets for `layout` (the student's, with any training-only slots appended).
    public init(layout: ParameterLayout, gradients: FloatBuffer, splitWordTable: Bool = false, pollInterval: Double = 100e-6) {
        count = layout.count
        input = gradients
        output = FloatBuffer(count: layout.count)
        self.pollInterval = pollInterval
        let c = layout.config
        let split = splitWordTable && layout.embeddings != nil
        word = split ? (layout.embeddings.word, c.embeddingSize) : nil
        inputWordGradients = split ? FloatBuffer(count: c.vocabSize * c.embeddingSize) : nil
        packed = FloatBuffer(count: split ? c.vocabSize * c.embeddingSize : 0)
        buckets = Self.buckets(layout, wordWithHeads: split)
        posted = [Bool](repeating: true, count: buckets.count)
        // The thread lives as long as the process (one reducer per run).
        let t = Thread { self.communicate() }
        t.name = "distill-allreduce"
        thread = t
        t.start()
    }

    /// Consecutive slots final at the same point, one bucket each.
    static func buckets(_ layout: ParameterLayout, wordWithHeads: Bool = false) -> [Bucket] {
        var firstUse: [String: Int] = [:]
        for (k, s) in layout.steps.enumerated() {
            firstUse["attention.\(s.attention).", default: k] = min(firstUse["attention.\(s.attention).", default: k], k)
            firstUse["ffn.\(s.ffn).", default: k] = min(firstUse["ffn.\(s.ffn).", default: k], k)
        }
        func after(_ name: String) -> Int {
            if name == "embeddings.word" && wordWithHeads { return Int.max }
            if name.hasPrefix("embeddings.") { return -1 }
            for prefix in ["attention.", "ffn."] where name.hasPrefix(prefix) {
                let block = prefix + name.dropFirst(prefix.count).prefix { $0 != "." } + "."
                return firstUse[block] ?? -1
            }
            return Int.max
        }
        var out: [Bucket] = []
        for slot in layout.slots {
            let a = after(slot.name)
            if let last = out.last, last.after == a, last.range.upperBound == slot.offset {
                out[out.count - 1] = Bucket(range: last.range.lowerBound..<slot.range.upperBound, after: a)
            } else {
                out.append(Bucket(range: slot.range, after: a))
            }
        }
        return out
    }

    /// Arms the reducer for a step: nothing is sent until `ready` or `finish`.
    public func begin() {
        cond.lock()
        posted = [Bool](repeating: false, count: buckets.count)
        remaining = buckets.count
        intervals.removeAll(keepingCapacity: true)
        failed = nil
        cond.unlock()
    }

    /// The backward pass reached `progress`: the buckets final from there on start.
    public func ready(_ progress: BackwardProgress) {
        let point: Int
        switch progress {
        case .heads: point = Int.max
        case .layer(let k): point = k
        }
        cond.lock()
        for (i, b) in buckets.enumerated() where !posted[i] && b.after == point {
            posted[i] = true
            queue.append(i)
        }
        cond.signal()
        cond.unlock()
    }

    /// Starts whatever is left and waits for every sum. `output` then holds them. With a split
    /// word table, `wordRows` are the rows any rank's batch used this step (the same list on
    /// every rank): their input gradients are summed and added to the decoder's part.
    @discardableResult
    public func finish(wordRows: [Int32] = []) throws -> Stats {
        let start = Timing.now()
        cond.lock()
        // In the order the backward pass makes them final (heads, then layers from the last,
        // then the embeddings): every rank must start its collectives in one order, and a rank
        // whose share of the batch was empty ran no backward pass at all.
        let left = buckets.indices.filter { !posted[$0] }.sorted { (buckets[$0].after, -$0) > (buckets[$1].after, -$1) }
        for i in left {
            posted[i] = true
            queue.append(i)
        }
        cond.signal()
        while remaining > 0 && failed == nil { cond.wait() }
        let failure = failed
        var s = Stats()
        s.bytes = count * 4
        cond.unlock()
        if let failure { throw ClusterError.mpiCall(failure) }
        // The communication thread is idle now: this thread may call MPI.
        if let word, let sparse = inputWordGradients, !wordRows.isEmpty {
            let E = word.width, t = Timing.now()
            for (u, row) in wordRows.enumerated() { (packed.base + u * E).update(from: sparse.base + Int(row) * E, count: E) }
            var request: distill_mpi_request?
            if distill_mpi_iallreduce_f32(packed.base, packed.base, wordRows.count * E, &request) != 0 || distill_mpi_wait(&request) != 0 {
                throw ClusterError.mpiCall("allreduce of the word embeddings' rows")
            }
            for (u, row) in wordRows.enumerated() {
                let dst = output.base + word.offset + Int(row) * E, src = packed.base + u * E
                for e in 0..<E { dst[e] += src[e] }
                (sparse.base + Int(row) * E).update(repeating: 0, count: E)
            }
            intervals.append((t, Timing.now()))
            s.bytes += wordRows.count * E * 4
        }
        s.exposedSeconds = Timing.now() - start
        s.busySeconds = Self.union(intervals)
        return s
    }

    /// Total length of a set of intervals.
    static func union(_ intervals: [(Double, Double)]) -> Double {
        var total = 0.0, end = -Double.infinity
        for (a, b) in intervals.sorted(by: { $0.0 < $1.0 }) {
            if a >= end { total += b - a; end = b } else if b > end { total += b - end; end = b }
        }
        return total
    }

    /// The communication thread: posts the queued buckets, tests the outstanding ones.
    private func communicate() {
        var inflight: [(bucket: Int, request: distill_mpi_request?, start: Double)] = []
        cond.lock()
        while true {
            while queue.isEmpty && inflight.isEmpty { cond.wait() }
            let toPost = queue
            queue.removeAll(keepingCapacity: true)
            cond.unlock()
            var error: String?
            for i in toPost {
                let r = buckets[i].range
                var request: distill_mpi_request?
                if distill_mpi_iallreduce_f32(input.base + r.lowerBound, output.base + r.lowerBound, r.count, &request) != 0 {
                    error = "allreduce of gradients \(r)"
                }
                inflight.append((i, request, Timing.now()))
            }
            var finished: [(Double, Double)] = []
            var k = 0
            while k < inflight.count {
                var done: Int32 = 0
                if distill_mpi_test(&inflight[k].request, &done) != 0 { error = "test of an allreduce"; done = 1 }
                if done != 0 {
                    finished.append((inflight[k].start, Timing.now()))
                    inflight.remove(at: k)
                } else {
                    k += 1
                }
            }
            cond.lock()
            intervals += finished
            remaining -= finished.count
            if let error { failed = error }
            if remaining == 0 || failed != nil { cond.broadcast() }
            if !inflight.isEmpty && queue.isEmpty {
                cond.unlock()
                var t = timespec(tv_sec: 0, tv_nsec: Int(pollInterval * 1e9))
                nanosleep(&t, nil)
                cond.lock()
            }
        }
    }
}
