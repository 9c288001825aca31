import Foundation
import DistilleryTensor
import DistilleryFormats

/// Write and read speed of the checkpoint format on given tensors (for `distill bench checkpoint`).
public struct CheckpointBenchmark: Codable, Sendable {
    public let level: Int
    public let byteShuffle: Bool
    public let rawBytes: Int
    public let compressedBytes: Int
    public let ratio: Double
    public let writeMBps: Double
    public let readMBps: Double

    /// Writes the tensors to `path` `runs` times and reads them back fully (every frame
    /// decompressed and checksummed); reports median speeds in MB of raw data per second.
    public static func measure(_ tensors: [TensorPayload], metadata: [String: String], path: String,
                               level: Int, byteShuffle: Bool, runs: Int) throws -> CheckpointBenchmark {
        var writes: [Double] = [], reads: [Double] = []
        var stats: CheckpointWriteStats?
        for _ in 0..<max(1, runs) {
            var t = Timing.now()
            stats = try CheckpointWriter.write(tensors, metadata: metadata, to: path, level: level, byteShuffle: byteShuffle)
            writes.append(Timing.now() - t)
            t = Timing.now()
            let c = try Checkpoint(path: path)
            _ = try c.decompressAll()
            reads.append(Timing.now() - t)
        }
        let raw = Double(stats!.rawBytes) / 1e6
        return CheckpointBenchmark(level: level, byteShuffle: byteShuffle, rawBytes: stats!.rawBytes, compressedBytes: stats!.compressedBytes,
                                   ratio: stats!.ratio, writeMBps: raw / writes.median, readMBps: raw / reads.median)
    }
}
