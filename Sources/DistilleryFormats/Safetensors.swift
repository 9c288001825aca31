import Foundation
import DistilleryTensor

/// Why a safetensors file cannot be read. Each malformation has its own case, naming the file
/// and, where there is one, the tensor.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case fileTooSmall(path: String, size: Int)
    case headerTooLarge(path: String, declared: UInt64, cap: Int)
    case headerPastEnd(path: String, declared: UInt64, fileSize: Int)
    case headerNotUTF8(path: String)
    case headerNotAnObject(path: String)
    case invalidHeaderJSON(path: String, reason: String)
    case invalidTensorEntry(path: String, tensor: String, reason: String)
    case invalidMetadata(path: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case shapeOverflow(path: String, tensor: String, shape: [UInt64])
    case reversedOffsets(path: String, tensor: String, begin: UInt64, end: UInt64)
    case sizeMismatch(path: String, tensor: String, dtype: DType, shape: [Int], expectedBytes: Int, actualBytes: Int)
    case overlappingTensors(path: String, tensor: String, previous: String)
    case gapBeforeTensor(path: String, tensor: String, expectedBegin: Int, begin: Int)
    case tensorOutOfBounds(path: String, tensor: String, end: UInt64, dataSize: Int)
    case trailingBytes(path: String, used: Int, dataSize: Int)
    case missingTensor(path: String, tensor: String)
    case wrongDType(path: String, tensor: String, dtype: DType, expected: String)
    case wrongShape(path: String, tensor: String, shape: [Int], expected: [Int])

    public var description: String {
        switch self {
        case let .fileTooSmall(p, s):
            return "\(p): not a safetensors file: \(s) bytes, fewer than the 8-byte header length"
        case let .headerTooLarge(p, d, cap):
            return "\(p): safetensors header length \(d) exceeds the \(cap)-byte cap"
        case let .headerPastEnd(p, d, f):
            return "\(p): safetensors header length \(d) runs past the end of the \(f)-byte file"
        case let .headerNotUTF8(p):
            return "\(p): safetensors header is not valid UTF-8"
        case let .headerNotAnObject(p):
            return "\(p): safetensors header does not start with '{'"
        case let .invalidHeaderJSON(p, r):
            return "\(p): safetensors header is not valid JSON: \(r)"
        case let .invalidTensorEntry(p, t, r):
            return "\(p): tensor '\(t)': \(r)"
        case let .invalidMetadata(p, r):
            return "\(p): __metadata__ \(r)"
        case let .unknownDType(p, t, d):
            return "\(p): tensor '\(t)' has unknown dtype '\(d)' (known: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .shapeOverflow(p, t, s):
            return "\(p): tensor '\(t)': shape \(s) overflows"
        case let .reversedOffsets(p, t, b, e):
            return "\(p): tensor '\(t)': data_offsets [\(b), \(e)] end before they begin"
        case let .sizeMismatch(p, t, d, s, e, a):
            return "\(p): tensor '\(t)': shape \(s) of \(d.rawValue) needs \(e) bytes but data_offsets span \(a)"
        case let .overlappingTensors(p, t, prev):
            return "\(p): tensor '\(t)' overlaps tensor '\(prev)'"
        case let .gapBeforeTensor(p, t, e, b):
            return "\(p): tensor '\(t)' begins at byte \(b) of the data, expected \(e) (tensors must be contiguous)"
        case let .tensorOutOfBounds(p, t, e, d):
            return "\(p): tensor '\(t)' ends at byte \(e), past the \(d)-byte data section"
        case let .trailingBytes(p, u, d):
            return "\(p): \(d - u) bytes after the last tensor (data section \(d) bytes, tensors use \(u))"
        case let .missingTensor(p, t):
            return "\(p): no tensor named '\(t)'"
        case let .wrongDType(p, t, d, e):
            return "\(p): tensor '\(t)' is \(d.rawValue), expected \(e)"
        case let .wrongShape(p, t, s, e):
            return "\(p): tensor '\(t)' has shape \(s), expected \(e)"
        }
    }
}

/// One tensor's entry in a safetensors header. `offset` is relative to the data section.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let offset: Int
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A parsed and validated safetensors header.
public struct SafetensorsHeader: Sendable {
    /// The reference implementation's cap on the JSON header (100 MB).
    public static let maxHeaderSize = 100_000_000

    /// Tensors in data order.
    public let tensors: [TensorInfo]
    public let metadata: [String: String]
    /// 8 + the JSON length: where the data section starts in the file.
    public let dataStart: Int
    public let dataSize: Int
    private let index: [String: Int]

    public func info(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }
    public var names: [String] { tensors.map(\.name) }

    /// Reads the 8-byte length and returns it, validated against the cap and the file size.
    public static func headerLength(_ prefix: UnsafeRawBufferPointer, fileSize: Int, path: String) throws -> Int {
        guard prefix.count >= 8, fileSize >= 8 else { throw SafetensorsError.fileTooSmall(path: path, size: fileSize) }
        let n = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        if n > UInt64(maxHeaderSize) { throw SafetensorsError.headerTooLarge(path: path, declared: n, cap: maxHeaderSize) }
        if n > UInt64(fileSize - 8) { throw SafetensorsError.headerPastEnd(path: path, declared: n, fileSize: fileSize) }
        return Int(n)
    }

    /// Parses and validates `json` (the header's JSON bytes) for a file of `fileSize` bytes.
    /// Checks, as the reference does: UTF-8, a JSON object, known dtypes, shape × dtype size =
    /// byte length (with overflow checks), tensors contiguous from 0 without overlap, every
    /// tensor inside the file, and no trailing bytes.
    public init(json: UnsafeRawBufferPointer, fileSize: Int, path: String) throws {
        let headerLength = json.count
        dataStart = 8 + headerLength
        dataSize = fileSize - dataStart
        guard String(validating: json, as: UTF8.self) != nil else { throw SafetensorsError.headerNotUTF8(path: path) }
        guard json.first == UInt8(ascii: "{") else { throw SafetensorsError.headerNotAnObject(path: path) }
        let parsed: HeaderJSON
        do { parsed = try HeaderJSON.parse(json) } catch {
            throw SafetensorsError.invalidHeaderJSON(path: path, reason: "\(error)")
        }
        guard let members = parsed.objectValue else { throw SafetensorsError.headerNotAnObject(path: path) }

        var meta: [String: String] = [:]
        var raw: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard let m = value.objectValue else {
                    throw SafetensorsError.invalidMetadata(path: path, reason: "is not an object of strings")
                }
                for (k, v) in m {
                    guard let s = v.stringValue else {
                        throw SafetensorsError.invalidMetadata(path: path, reason: "value of '\(k)' is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            guard value.objectValue != nil else {
                throw SafetensorsError.invalidTensorEntry(path: path, tensor: name, reason: "entry is not an object")
            }
            guard let dtypeName = value["dtype"]?.stringValue else {
                throw SafetensorsError.invalidTensorEntry(path: path, tensor: name, reason: "missing or non-string 'dtype'")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw SafetensorsError.unknownDType(path: path, tensor: name, dtype: dtypeName)
            }
            guard let shapeRaw = value["shape"]?.arrayValue, let shape64 = Self.unsignedIntegers(shapeRaw) else {
                throw SafetensorsError.invalidTensorEntry(path: path, tensor: name, reason: "'shape' must be a list of non-negative integers")
            }
            guard let offRaw = value["data_offsets"]?.arrayValue, let offs = Self.unsignedIntegers(offRaw), offs.count == 2 else {
                throw SafetensorsError.invalidTensorEntry(path: path, tensor: name, reason: "'data_offsets' must be two non-negative integers")
            }
            if offs[1] < offs[0] {
                throw SafetensorsError.reversedOffsets(path: path, tensor: name, begin: offs[0], end: offs[1])
            }
            var elements: UInt64 = 1
            for d in shape64 {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                if o || p > UInt64(Int.max) { throw SafetensorsError.shapeOverflow(path: path, tensor: name, shape: shape64) }
                elements = p
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: UInt64(dtype.size))
            if o || bytes > UInt64(Int.max) { throw SafetensorsError.shapeOverflow(path: path, tensor: name, shape: shape64) }
            if offs[1] > UInt64(max(0, fileSize - dataStart)) {
                throw SafetensorsError.tensorOutOfBounds(path: path, tensor: name, end: offs[1], dataSize: dataSize)
            }
            let shape = shape64.map { Int($0) }
            let span = Int(offs[1] - offs[0])
            if Int(bytes) != span {
                throw SafetensorsError.sizeMismatch(path: path, tensor: name, dtype: dtype, shape: shape,
                                                    expectedBytes: Int(bytes), actualBytes: span)
            }
            raw.append((name, dtype, shape, Int(offs[0]), Int(offs[1])))
        }
        raw.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var next = 0
        var previous = ""
        var infos: [TensorInfo] = []
        infos.reserveCapacity(raw.count)
        for t in raw {
            if t.begin < next { throw SafetensorsError.overlappingTensors(path: path, tensor: t.name, previous: previous) }
            if t.begin > next {
                throw SafetensorsError.gapBeforeTensor(path: path, tensor: t.name, expectedBegin: next, begin: t.begin)
            }
            next = t.end
            previous = t.name
            infos.append(TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, offset: t.begin, byteCount: t.end - t.begin))
        }
        if next != dataSize { throw SafetensorsError.trailingBytes(path: path, used: next, dataSize: dataSize) }
        tensors = infos
        metadata = meta
        var idx: [String: Int] = [:]
        for (i, t) in infos.enumerated() { idx[t.name] = i }
        index = idx
    }

    /// JSON integers as UInt64; nil if any element is not a non-negative integer.
    private static func unsignedIntegers(_ values: [HeaderJSON]) -> [UInt64]? {
        var out: [UInt64] = []
        out.reserveCapacity(values.count)
        for v in values {
            guard let u = v.unsignedValue else { return nil }
            out.append(u)
        }
        return out
    }
}

/// A safetensors file, memory-mapped and validated on open.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let header: SafetensorsHeader
    private let file: MappedFile

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let all = file.bytes
        let n = try SafetensorsHeader.headerLength(UnsafeRawBufferPointer(rebasing: all.prefix(8)),
                                                   fileSize: file.size, path: path)
        header = try SafetensorsHeader(json: UnsafeRawBufferPointer(rebasing: all[8..<(8 + n)]),
                                       fileSize: file.size, path: path)
    }

    public var tensors: [TensorInfo] { header.tensors }
    public var metadata: [String: String] { header.metadata }
    public func info(_ name: String) -> TensorInfo? { header.info(name) }

    /// The raw little-endian bytes of a tensor.
    public func bytes(_ info: TensorInfo) -> UnsafeRawBufferPointer {
        let start = header.dataStart + info.offset
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + info.byteCount)])
    }

    public func require(_ name: String) throws -> TensorInfo {
        guard let i = header.info(name) else { throw SafetensorsError.missingTensor(path: path, tensor: name) }
        return i
    }
}

/// Typed views shared by every reader of tensors (plain files and compressed checkpoints).
public protocol TensorSource: AnyObject {
    var path: String { get }
    var tensors: [TensorInfo] { get }
    var metadata: [String: String] { get }
    func info(_ name: String) -> TensorInfo?
    /// Calls `body` with the tensor's raw little-endian bytes.
    func withBytes<R>(_ info: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
}

extension SafetensorsFile: TensorSource {
    public func withBytes<R>(_ info: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try body(bytes(info))
    }
}

extension TensorSource {
    public func require(_ name: String) throws -> TensorInfo {
        guard let i = info(name) else { throw SafetensorsError.missingTensor(path: path, tensor: name) }
        return i
    }

    /// Converts a floating-point tensor (F32, F16, BF16, F64) to Float into `out`.
    public func readFloats(_ info: TensorInfo, into out: UnsafeMutablePointer<Float>) throws {
        try withBytes(info) { raw in
            let n = info.elementCount
            switch info.dtype {
            case .F32:
                _ = memcpy(out, raw.baseAddress!, n * 4)
            case .F16:
                for i in 0..<n {
                    out[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                }
            case .BF16:
                for i in 0..<n {
                    let b = UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    out[i] = Float(bitPattern: b << 16)
                }
            case .F64:
                for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            default:
                throw SafetensorsError.wrongDType(path: path, tensor: info.name, dtype: info.dtype, expected: "F32, F16, BF16 or F64")
            }
        }
    }

    public func floats(_ name: String) throws -> [Float] {
        let i = try require(name)
        var out = [Float](repeating: 0, count: i.elementCount)
        try out.withUnsafeMutableBufferPointer { try readFloats(i, into: $0.baseAddress!) }
        return out
    }

    /// Integer tensors (I64, I32, I16, I8, U8, U16, U32, BOOL) as Int.
    public func integers(_ name: String) throws -> [Int] {
        let info = try require(name)
        return try withBytes(info) { raw in
            let n = info.elementCount
            switch info.dtype {
            case .I64: return (0..<n).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
            case .I32: return (0..<n).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            case .U32: return (0..<n).map { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            case .I16: return (0..<n).map { Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
            case .U16: return (0..<n).map { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
            case .I8: return (0..<n).map { Int(raw.load(fromByteOffset: $0, as: Int8.self)) }
            case .U8, .BOOL: return (0..<n).map { Int(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            default:
                throw SafetensorsError.wrongDType(path: path, tensor: name, dtype: info.dtype, expected: "an integer type")
            }
        }
    }
}
