import Foundation
import Synchronization
import CDNNL

/// Worker threads that wait for chunks of a parallel loop.
///
/// A parallel loop here is short (tens of microseconds to a few milliseconds) and there are
/// thousands of them per second in a forward pass; waking sleeping threads for each costs as
/// much as the work. Workers therefore spin for a short while after each job before going to
/// sleep, and the caller runs chunks itself too. One job at a time: a caller that finds the
/// pool busy (another thread's job) runs its loop serially.
///
/// Where oneDNN runs the matrix products, the pool has no threads of its own: its loops run on
/// oneDNN's OpenMP team (`distill_dnnl_parallel`), so the threads that multiply matrices are
/// the threads that run everything else, and a second set never spins or sleeps against them
/// for the same cores (with two sets, a forward pass at 1 × 128 spent a sixth of its time
/// switching threads).
final class WorkerPool: @unchecked Sendable {
    /// One parallel loop. Its counters live with it, so a worker that picks the job up late
    /// finds it finished and never touches a newer one.
    final class Job {
        /// body(chunk, thread): thread 0 is the caller, worker i is thread i + 1.
        let body: (Int, Int) -> Void
        let chunks: Int
        let next = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        init(body: @escaping (Int, Int) -> Void, chunks: Int) { self.body = body; self.chunks = chunks }

        func run(thread: Int) {
            while true {
                let c = next.add(1, ordering: .relaxed).oldValue
                if c >= chunks { return }
                body(c, thread)
                done.add(1, ordering: .releasing)
            }
        }
    }

    let workers: Int
    private let generation = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    /// The current job, handed over under `slot`.
    nonisolated(unsafe) private var job: Job?
    private let slot = NSLock()
    private let wake = NSCondition()
    /// Spin iterations before a worker sleeps (roughly 50 µs).
    private let spins = 20_000

    /// Whether loops run on oneDNN's OpenMP team instead of threads of the pool's own.
    let onTeam: Bool

    init(workers: Int, onTeam: Bool = false) {
        self.workers = workers
        self.onTeam = onTeam
        if onTeam { return }
        for i in 0..<workers {
            let t = Thread { [unowned self] in self.loop(thread: i + 1) }
            t.name = "distill-worker-\(i)"
            t.start()
        }
    }

    private func loop(thread: Int) {
        Parallel.markWorkerThread()
        var seen = 0
        while true {
            var g = generation.load(ordering: .acquiring)
            var n = 0
            while g == seen {
                n += 1
                if n > spins {
                    wake.lock()
                    _ = sleepers.add(1, ordering: .relaxed)
                    while generation.load(ordering: .acquiring) == seen { wake.wait() }
                    _ = sleepers.subtract(1, ordering: .relaxed)
                    wake.unlock()
                    n = 0
                }
                g = generation.load(ordering: .acquiring)
            }
            seen = g
            slot.lock()
            let j = job
            slot.unlock()
            j?.run(thread: thread)
        }
    }

    /// Runs body(0..<chunks, thread) on the workers and the calling thread (thread 0); false if
    /// the pool was busy.
    /// (The body escapes into the job, which a worker may release a moment after the last
    /// chunk is done.)
    func perform(chunks: Int, _ body: @escaping (Int, Int) -> Void) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        let j = Job(body: body, chunks: chunks)
        if onTeam {
            // The team's threads share the job's counter; the call returns when all are done.
            let ctx = Unmanaged.passUnretained(j).toOpaque()
            // Parallel.threads, the count oneDNN's products use too: a team that changes size
            // between a product and a loop makes libgomp end and start threads.
            let ran = withExtendedLifetime(j) {
                distill_dnnl_parallel(Int32(min(workers + 1, Parallel.threads)), { ctx, thread in
                    Unmanaged<Job>.fromOpaque(ctx!).takeUnretainedValue().run(thread: Int(thread))
                }, ctx) >= 1
            }
            busy.store(false, ordering: .releasing)
            return ran
        }
        slot.lock(); job = j; slot.unlock()
        generation.add(1, ordering: .releasing)
        if sleepers.load(ordering: .relaxed) > 0 {
            wake.lock(); wake.broadcast(); wake.unlock()
        }
        j.run(thread: 0)
        while j.done.load(ordering: .acquiring) < chunks { }
        slot.lock(); job = nil; slot.unlock()
        busy.store(false, ordering: .releasing)
        return true
    }
}
