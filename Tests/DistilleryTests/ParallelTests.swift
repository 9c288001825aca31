import XCTest
import Foundation
import DistilleryTensor
import CDNNL

final class ParallelTests: XCTestCase {
    /// Chunks cut finer than the threads still cover every index once, and a scratch slot is
    /// never used by two chunks at the same time (the slot is the running thread's).
    func testChunksWithScratchUseOneSlotAThread() {
        let count = 997, slots = Parallel.threads
        let lock = NSLock()
        var busy = [Bool](repeating: false, count: slots), seen = [Int](repeating: 0, count: count)
        var clashes = 0, badSlots = 0
        for perThread in [1, 3, 8] {
            for i in seen.indices { seen[i] = 0 }
            Parallel.forEachChunkWithScratch(count, slots: slots, perThread: perThread) { slot, range in
                lock.lock()
                if !(0..<slots).contains(slot) { badSlots += 1; lock.unlock(); return }
                if busy[slot] { clashes += 1 }
                busy[slot] = true
                for i in range { seen[i] += 1 }
                lock.unlock()
                usleep(200)  // hold the slot while other chunks start
                lock.lock(); busy[slot] = false; lock.unlock()
            }
            XCTAssertEqual(badSlots, 0, "perThread \(perThread)")
            XCTAssertEqual(clashes, 0, "perThread \(perThread)")
            XCTAssertEqual(seen, [Int](repeating: 1, count: count), "perThread \(perThread)")
        }
        // Fewer scratch blocks than threads: chunk indices, at most `slots` chunks.
        if Parallel.threads > 1 {
            var used = Set<Int>()
            for i in seen.indices { seen[i] = 0 }
            Parallel.forEachChunkWithScratch(count, slots: 1, perThread: 8) { slot, range in
                lock.lock(); used.insert(slot); for i in range { seen[i] += 1 }; lock.unlock()
            }
            XCTAssertEqual(used, [0])
            XCTAssertEqual(seen, [Int](repeating: 1, count: count))
        }
    }

    /// A parallel loop runs on as many threads as it has chunks (up to the thread count),
    /// whichever pool serves it: oneDNN's OpenMP team where oneDNN multiplies, threads of our
    /// own otherwise. (A pool that could not start would leave every loop on the caller.)
    func testLoopsRunOnSeveralThreads() throws {
        guard Parallel.threads > 1 else { throw XCTSkip("one thread here") }
        let lock = NSLock(), n = Parallel.threads
        var threads = Set<UInt>(), started = 0
        Parallel.forEachChunk(n, minPerChunk: 1) { _, _ in
            lock.lock(); started += 1; threads.insert(UInt(bitPattern: Int(bitPattern: pthread_self()))); lock.unlock()
            // Every chunk waits until all have started (a caller running them one after another
            // would wait out the 5 s and show one thread).
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                lock.lock(); let all = started == n; lock.unlock()
                if all { break }
                usleep(100)
            }
        }
        XCTAssertEqual(threads.count, n, MachineReport.current().threadPool)
        let wantTeam = GEMMBackend.current == .onednn && ProcessInfo.processInfo.environment["DISTILL_POOL"] != "own"
        XCTAssertEqual(MachineReport.current().threadPool, wantTeam ? "openmp" : "distill")
    }

    /// oneDNN declines a product asked for inside a loop on its own team (it would run, split
    /// for the whole team, on one thread); the callers' fallbacks run it instead.
    func testProductsInsideTheTeamAreDeclined() throws {
        guard Parallel.usesOneDNNTeam, Parallel.threads > 1 else { throw XCTSkip("loops do not run on oneDNN's team here") }
        let M = 32, N = 48, K = 64
        let a = [Float](repeating: 1, count: M * K), b = [Float](repeating: 2, count: K * N)
        func product() -> Int32 {
            var c = [Float](repeating: 0, count: M * N)
            return distill_dnnl_matmul(Int32(DISTILL_DNNL_F32), M, N, K, a, K, 1, b, N, 1, nil, &c, N, 0)
        }
        XCTAssertEqual(product(), 0, "outside a loop")
        let lock = NSLock()
        var inside = [Int32]()
        Parallel.forEachChunk(Parallel.threads, minPerChunk: 1) { _, _ in
            let rc = product()
            lock.lock(); inside.append(rc); lock.unlock()
        }
        XCTAssertEqual(inside.count, Parallel.threads)
        XCTAssertTrue(inside.allSatisfy { $0 != 0 }, "\(inside)")
    }
}
