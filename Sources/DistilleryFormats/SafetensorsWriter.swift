import Foundation
import DistilleryTensor

/// One tensor to write: its bytes must stay valid for the duration of the write.
public struct TensorPayload {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer

    public init(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }
}

public enum SafetensorsWriteError: Error, CustomStringConvertible, Equatable {
    case sizeMismatch(tensor: String, shape: [Int], dtype: DType, bytes: Int)
    case duplicateName(String)
    case reservedName(String)

    public var description: String {
        switch self {
        case let .sizeMismatch(t, s, d, b):
            return "tensor '\(t)': shape \(s) of \(d.rawValue) does not match its \(b) bytes"
        case let .duplicateName(n): return "tensor '\(n)' is given twice"
        case let .reservedName(n): return "'\(n)' is reserved for metadata and cannot name a tensor"
        }
    }
}

/// Where each tensor goes in a safetensors file, and the header bytes. Deterministic: tensors
/// are ordered by element size (largest first, which keeps every tensor aligned to its element
/// size) then by name; metadata keys are sorted; the header is padded with spaces to a
/// multiple of 8 bytes, as the reference writer does.
public struct SafetensorsLayout {
    /// The 8-byte little-endian length followed by the JSON header.
    public let header: [UInt8]
    /// Indices into the payload list, in data order.
    public let order: [Int]
    /// Byte offset of each payload (by payload index) within the data section.
    public let offsets: [Int]
    public let dataSize: Int

    public init(tensors: [(name: String, dtype: DType, shape: [Int], byteCount: Int)],
                metadata: [String: String]) throws {
        var seen = Set<String>()
        for t in tensors {
            if t.name == "__metadata__" { throw SafetensorsWriteError.reservedName(t.name) }
            if !seen.insert(t.name).inserted { throw SafetensorsWriteError.duplicateName(t.name) }
            let expected = t.shape.reduce(1, *) * t.dtype.size
            if expected != t.byteCount {
                throw SafetensorsWriteError.sizeMismatch(tensor: t.name, shape: t.shape, dtype: t.dtype, bytes: t.byteCount)
            }
        }
        let order = tensors.indices.sorted {
            let a = tensors[$0], b = tensors[$1]
            return a.dtype.size != b.dtype.size ? a.dtype.size > b.dtype.size : a.name < b.name
        }
        var offsets = [Int](repeating: 0, count: tensors.count)
        var members: [(String, HeaderJSON)] = []
        if !metadata.isEmpty {
            members.append(("__metadata__", .object(metadata.keys.sorted().map { ($0, .string(metadata[$0]!)) })))
        }
        var at = 0
        for i in order {
            let t = tensors[i]
            offsets[i] = at
            members.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .unsigned(UInt64($0)) })),
                ("data_offsets", .array([.unsigned(UInt64(at)), .unsigned(UInt64(at + t.byteCount))])),
            ])))
            at += t.byteCount
        }
        var json = Array(HeaderJSON.object(members).serialized.utf8)
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var h = [UInt8]()
        h.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { h.append(contentsOf: $0) }
        h.append(contentsOf: json)
        header = h
        self.order = order
        self.offsets = offsets
        dataSize = at
    }
}

public enum Safetensors {
    /// Writes a safetensors file atomically (temporary file, fsync, rename).
    public static func write(_ tensors: [TensorPayload], metadata: [String: String] = [:], to path: String) throws {
        let layout = try SafetensorsLayout(tensors: tensors.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) },
                                           metadata: metadata)
        let w = try AtomicFileWriter(path: path)
        try w.write(layout.header)
        for i in layout.order { try w.write(tensors[i].bytes) }
        try w.commit()
    }
}

/// Owned tensor data for building files from Swift arrays (tests, small outputs).
public struct OwnedTensor {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let data: [UInt8]

    public init(name: String, dtype: DType, shape: [Int], data: [UInt8]) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.data = data
    }

    public init(name: String, shape: [Int], floats: [Float]) {
        self.init(name: name, dtype: .F32, shape: shape, data: floats.withUnsafeBytes { Array($0) })
    }

    public init(name: String, shape: [Int], int64s: [Int64]) {
        self.init(name: name, dtype: .I64, shape: shape, data: int64s.map { $0.littleEndian }.withUnsafeBytes { Array($0) })
    }
}

extension Safetensors {
    public static func write(_ tensors: [OwnedTensor], metadata: [String: String] = [:], to path: String) throws {
        try withPayloads(tensors) { try write($0, metadata: metadata, to: path) }
    }

    /// Gives `body` payload views of owned tensors.
    public static func withPayloads<R>(_ tensors: [OwnedTensor], _ body: ([TensorPayload]) throws -> R) rethrows -> R {
        func go(_ i: Int, _ acc: [TensorPayload]) throws -> R {
            if i == tensors.count { return try body(acc) }
            return try tensors[i].data.withUnsafeBytes { raw in
                try go(i + 1, acc + [TensorPayload(name: tensors[i].name, dtype: tensors[i].dtype, shape: tensors[i].shape, bytes: raw)])
            }
        }
        return try go(0, [])
    }
}
