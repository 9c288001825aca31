import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryTraining
import DistilleryFormats
import DistilleryModels
import DistilleryQuant

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a checkpoint's or safetensors file's tensors, sizes, compression and metadata.")

    @Argument(help: "A .safetensors.zst checkpoint, a .safetensors file, or a model folder.")
    var file: String
    @Flag(name: .long, help: "Decompress every frame and verify its checksum.")
    var verify = false
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @Flag(name: .long, help: "Show long metadata values (vocabulary, recipe) in full.")
    var full = false

    func run() throws {
        let report = try InspectReport.make(path: file, verify: verify)
        print(json ? try jsonText(report) : report.text(full: full))
    }
}

struct InspectReport: Encodable {
    struct Tensor: Encodable { let name: String; let dtype: String; let shape: [Int]; let bytes: Int; let compressedBytes: Int? }
    let file: String
    let format: String
    let fileBytes: Int
    let rawBytes: Int
    let compressedBytes: Int?
    let ratio: Double?
    let frames: Int?
    let verified: Bool?
    let tensors: [Tensor]
    let parameters: Int
    let metadata: [String: String]

    static func make(path: String, verify: Bool) throws -> InspectReport {
        var isDir: ObjCBool = false
        var path = path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { path += "/model.safetensors" }
        if path.hasSuffix(".zst") {
            let c = try Checkpoint(path: path)
            if verify { try c.verify() }
            let tensors = c.tensors.map { Tensor(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.byteCount, compressedBytes: c.compressedSize(of: $0)) }
            return InspectReport(file: path, format: c.byteShuffled ? "checkpoint (zstd frames, byte-shuffled)" : "checkpoint (zstd frames)",
                                 fileBytes: c.fileSize, rawBytes: c.decompressedSize, compressedBytes: c.fileSize,
                                 ratio: Double(c.decompressedSize) / Double(max(1, c.fileSize)), frames: c.frames.count,
                                 verified: verify ? true : nil, tensors: tensors, parameters: parameterCount(c.tensors), metadata: c.metadata)
        }
        let f = try SafetensorsFile(path: path)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return InspectReport(file: path, format: "safetensors", fileBytes: size, rawBytes: size, compressedBytes: nil, ratio: nil,
                             frames: nil, verified: nil,
                             tensors: f.tensors.map { Tensor(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.byteCount, compressedBytes: nil) },
                             parameters: parameterCount(f.tensors), metadata: f.metadata)
    }

    /// Elements of weight tensors (floating point and encoded weights; not integer buffers, nor
    /// an encoding's companions such as int8 scales and smoothing factors).
    static func parameterCount(_ t: [TensorInfo]) -> Int {
        let codecs = ModelStore.codecs
        return t.filter { info in
            (info.dtype.isFloatingPoint || codecs.contains { $0.dtype == info.dtype })
                && !codecs.contains { $0.isCompanion(info.name) } && !HuggingFaceNames.isBuffer(info.name.split(separator: ".").suffix(2).joined(separator: "."))
        }.reduce(0) { $0 + $1.elementCount }
    }

    func text(full: Bool) -> String {
        var out = ["\(file)  [\(format)]"]
        var t = TextTable(compressedBytes == nil ? ["tensor", "dtype", "shape", "bytes"] : ["tensor", "dtype", "shape", "bytes", "compressed", "ratio"])
        for x in tensors {
            var row = [x.name, x.dtype, "[" + x.shape.map(String.init).joined(separator: ", ") + "]", grouped(x.bytes)]
            if let c = x.compressedBytes { row += [grouped(c), fixed(Double(x.bytes) / Double(max(1, c)), 2)] }
            t.add(row)
        }
        out.append(t.render())
        out.append("")
        out.append("tensors \(tensors.count), parameters \(grouped(parameters))")
        if let c = compressedBytes, let r = ratio, let fr = frames {
            out.append("raw \(grouped(rawBytes)) bytes → \(grouped(c)) bytes (\(fixed(r, 2))×) in \(fr) zstd frames\(verified == true ? ", every checksum verified" : "")")
        } else {
            out.append("file \(grouped(fileBytes)) bytes")
        }
        if !metadata.isEmpty {
            out.append("metadata:")
            for k in metadata.keys.sorted() {
                var v = metadata[k]!
                if !full && (v.count > 600 || v.contains("\n")) {
                    v = "\(v.split(separator: "\n").count) lines, \(grouped(v.utf8.count)) bytes (--full to show)"
                    if k == CheckpointKey.vocabulary { v = "vocab.txt, \(grouped(metadata[k]!.split(separator: "\n").count)) tokens" }
                }
                out.append("  \(k): \(v)")
            }
        }
        return out.joined(separator: "\n")
    }
}
