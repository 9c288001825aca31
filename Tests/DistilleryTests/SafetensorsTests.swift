import XCTest
import DistilleryFormats

/// The reader validates as the reference implementation does; each malformation is its own error.
final class SafetensorsTests: XCTestCase {
    let dir = Fixtures.temporaryDirectory

    /// Writes 8-byte length + header + data to a file and opens it.
    func open(header: String, data: [UInt8], declaredLength: UInt64? = nil, name: String = #function) throws -> SafetensorsFile {
        try open(headerBytes: Array(header.utf8), data: data, declaredLength: declaredLength, name: name)
    }

    func open(headerBytes h: [UInt8], data: [UInt8], declaredLength: UInt64? = nil, name: String = #function) throws -> SafetensorsFile {
        var bytes = [UInt8]()
        withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: h)
        bytes.append(contentsOf: data)
        let path = dir + "/" + name.filter { $0.isLetter } + ".safetensors"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try SafetensorsFile(path: path)
    }

    func expectError(_ expected: (SafetensorsError) -> Bool, _ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected an error", file: file, line: line)
        } catch let e as SafetensorsError {
            XCTAssertTrue(expected(e), "unexpected error: \(e)", file: file, line: line)
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
    }

    func testRoundTripAllDtypesBitExact() throws {
        let path = dir + "/roundtrip.safetensors"
        var tensors: [OwnedTensor] = []
        for (i, d) in DType.allCases.enumerated() {
            let n = 3 + i
            tensors.append(OwnedTensor(name: "t.\(d.rawValue)", dtype: d, shape: [n], data: (0..<(n * d.size)).map { UInt8(($0 * 37 + i) & 255) }))
        }
        tensors.append(OwnedTensor(name: "scalar", shape: [], floats: [3.5]))
        tensors.append(OwnedTensor(name: "empty", shape: [0, 4], floats: []))
        try Safetensors.write(tensors, metadata: ["format": "pt", "note": "a \"quoted\" value"], to: path)
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(f.metadata["note"], "a \"quoted\" value")
        for t in tensors {
            let info = try f.require(t.name)
            XCTAssertEqual(info.dtype, t.dtype)
            XCTAssertEqual(info.shape, t.shape)
            XCTAssertEqual(Array(f.bytes(info)), t.data, t.name)
        }
        // Deterministic: the same tensors in another order give the same bytes.
        let path2 = dir + "/roundtrip2.safetensors"
        try Safetensors.write(tensors.reversed(), metadata: ["note": "a \"quoted\" value", "format": "pt"], to: path2)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), try Data(contentsOf: URL(fileURLWithPath: path2)))
        XCTAssertEqual((8 + f.header.dataStart - 8) % 8, 0, "header padded to 8 bytes")
    }

    func testTruncatedFile() throws {
        let path = dir + "/short.safetensors"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        expectError({ if case .fileTooSmall = $0 { return true }; return false }) { try SafetensorsFile(path: path) }
        // A valid file cut short loses the end of its data.
        expectError({ if case .tensorOutOfBounds = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0])
        }
    }

    func testHeaderLengthPastTheEnd() {
        expectError({ if case .headerPastEnd = $0 { return true }; return false }) {
            try self.open(header: "{}", data: [], declaredLength: 1000)
        }
    }

    func testHeaderOverTheCap() {
        expectError({ if case .headerTooLarge = $0 { return true }; return false }) {
            try self.open(header: "{}", data: [], declaredLength: 100_000_001)
        }
    }

    func testOverlappingOffsets() {
        expectError({ if case .overlappingTensors = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                          data: [UInt8](repeating: 0, count: 12))
        }
    }

    func testGapBetweenTensors() {
        expectError({ if case .gapBeforeTensor = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                          data: [UInt8](repeating: 0, count: 12))
        }
    }

    func testOutOfBoundsOffsets() {
        expectError({ if case .tensorOutOfBounds = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 8))
        }
    }

    func testUnknownDType() {
        expectError({ if case .unknownDType(_, "a", "F128") = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 16))
        }
    }

    func testShapeSizeMismatch() {
        expectError({ if case .sizeMismatch(_, "a", .F32, [3], 12, 8) = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        }
    }

    func testTrailingBytes() {
        expectError({ if case .trailingBytes = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 9))
        }
    }

    func testReversedOffsetsAndOverflow() {
        expectError({ if case .reversedOffsets = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, data: [UInt8](repeating: 0, count: 4))
        }
        expectError({ if case .shapeOverflow = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#, data: [])
        }
    }

    func testBadHeaders() {
        expectError({ if case .headerNotAnObject = $0 { return true }; return false }) { try self.open(header: "[1]", data: []) }
        expectError({ if case .invalidHeaderJSON = $0 { return true }; return false }) { try self.open(header: "{\"a\":", data: []) }
        expectError({ if case .headerNotUTF8 = $0 { return true }; return false }) {
            try self.open(headerBytes: [0x7B, 0xFF, 0x7D], data: [])
        }
        expectError({ if case .invalidTensorEntry = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        }
        expectError({ if case .invalidTensorEntry = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        }
        expectError({ if case .invalidHeaderJSON = $0 { return true }; return false }) {
            try self.open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        }
        expectError({ if case .invalidMetadata = $0 { return true }; return false }) {
            try self.open(header: #"{"__metadata__":{"k":1}}"#, data: [])
        }
    }

    /// Random corruption of a real file never crashes the reader: it either reads or throws.
    func testMutatedFilesNeverCrash() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-bert-mlm/reference.safetensors")))
        var rng = SystemRandomNumberGenerator()
        var errors = 0
        for i in 0..<300 {
            var bytes = [UInt8](original.prefix(600))
            if i % 3 == 0 { bytes = [UInt8](original) }
            for _ in 0..<(1 + i % 5) {
                let at = Int.random(in: 0..<min(bytes.count, 600), using: &rng)
                bytes[at] = UInt8.random(in: 0...255, using: &rng)
            }
            let path = dir + "/mutated.safetensors"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do { _ = try SafetensorsFile(path: path) } catch is SafetensorsError { errors += 1 }
        }
        XCTAssertGreaterThan(errors, 100)
    }
}
