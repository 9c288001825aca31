import Foundation

/// Heap storage aligned to 64 bytes (one cache line, one AVX-512 register), owned by a class so
/// that buffers can be shared by reference between a model, its optimizer and worker threads.
/// Elements are trivial (Float, Int32, Int8, …): no initialisation or deinitialisation is needed.
public final class AlignedBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Element>
    /// How the memory was obtained (and is released).
    private enum Origin { case heap, mapped(bytes: Int), borrowed }
    private let origin: Origin

    /// Large buffers are mapped from the kernel: their pages are zero until first written and
    /// cost no memory until then (an int8 model never touches the fp32 slots of its matrices).
    static var mapThreshold: Int { 1 << 20 }

    /// Allocates `count` elements, zero-filled.
    public init(count: Int) {
        precondition(count >= 0, "AlignedBuffer: negative count")
        self.count = count
        let (product, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        precondition(!overflow && product <= Int.max - 4096, "AlignedBuffer: \(count) elements overflow the address space")
        let bytes = max(64, (product + 63) & ~63)
        if bytes >= Self.mapThreshold {
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else {
                // Out of memory is not recoverable for a numeric buffer; callers that size
                // buffers from files check the sizes before allocating (see MemoryBudget).
                preconditionFailure("AlignedBuffer: cannot map \(bytes) bytes")
            }
            origin = .mapped(bytes: bytes)
            base = p.bindMemory(to: Element.self, capacity: max(count, 1))
            return
        }
        guard let raw = aligned_alloc(64, bytes) else {
            preconditionFailure("AlignedBuffer: cannot allocate \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        origin = .heap
        base = raw.bindMemory(to: Element.self, capacity: max(count, 1))
    }

    /// A view of memory owned elsewhere (scratch), valid while the owner lives.
    public init(borrowing base: UnsafeMutablePointer<Element>, count: Int) {
        self.base = base; self.count = count; origin = .borrowed
    }

    /// Copies `values` into a new buffer.
    public convenience init(_ values: [Element]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: values.count) }
        }
    }

    deinit {
        switch origin {
        case .heap: free(base)
        case .mapped(let bytes): munmap(base, bytes)
        case .borrowed: break
        }
    }

    public var buffer: UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(start: base, count: count)
    }

    public subscript(i: Int) -> Element {
        get { precondition(i >= 0 && i < count); return base[i] }
        set { precondition(i >= 0 && i < count); base[i] = newValue }
    }

    /// Sets every element to zero (large buffers on all cores: gradients are cleared each step).
    public func zero() {
        let bytes = count * MemoryLayout<Element>.stride
        guard bytes >= 1 << 22 else { memset(base, 0, bytes); return }
        let raw = SendablePointer(UnsafeMutableRawPointer(base).assumingMemoryBound(to: UInt8.self))
        Parallel.forEachChunk(bytes, minPerChunk: 1 << 20) { _, r in _ = memset(raw.p + r.lowerBound, 0, r.count) }
    }

    public func copy(from other: AlignedBuffer<Element>) {
        precondition(other.count == count, "AlignedBuffer.copy: \(other.count) != \(count)")
        base.update(from: other.base, count: count)
    }

    public func toArray() -> [Element] { Array(buffer) }

    /// The raw bytes, for writers (little-endian hosts only; see `Platform`).
    public var rawBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: count * MemoryLayout<Element>.stride)
    }
}

public typealias FloatBuffer = AlignedBuffer<Float>

/// A pointer that may cross into worker threads. The kernels that use it partition the
/// memory between threads themselves; this wrapper only tells the compiler so.
public struct SendablePointer<T>: @unchecked Sendable {
    public let p: UnsafeMutablePointer<T>
    @inlinable public init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}
