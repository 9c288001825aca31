import XCTest
import Foundation
import DistilleryTensor

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
}
