import Foundation

/// Heap storage aligned to 64 bytes (one cache line, one AVX-512 register), owned by a class so
/// that buffers can be shared by reference between a model, its optimizer and worker threads.
/// Elements are trivial (Float, Int32, Int8, …): no initialisation or deinitialisation is needed.
public final class AlignedBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Element>

    /// Allocates `count` elements, zero-filled.
    public init(count: Int) {
        precondition(count >= 0, "AlignedBuffer: negative count")
        self.count = count
        let bytes = max(64, (count * MemoryLayout<Element>.stride + 63) & ~63)
        guard let raw = aligned_alloc(64, bytes) else {
            // Out of memory is not recoverable for a numeric buffer.
            preconditionFailure("AlignedBuffer: cannot allocate \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        base = raw.bindMemory(to: Element.self, capacity: max(count, 1))
    }

    /// Copies `values` into a new buffer.
    public convenience init(_ values: [Element]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: values.count) }
        }
    }

    deinit { free(base) }

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
