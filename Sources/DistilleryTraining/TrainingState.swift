import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText

/// The whole state of a training run, saved as a checkpoint (kind "training-state"):
/// parameters (`param.<slot>`), Adam moments (`adam.m.<slot>`, `adam.v.<slot>`), and in the
/// metadata the step, the data position, the student configuration and the recipe text.
/// Dropout and masking draws are keyed by (seed, step), so nothing else is needed to continue
/// bit for bit.
public struct TrainingState: Sendable {
    public var step: Int
    public var optimizerStep: Int
    public var position: DataPosition
    public var studentConfig: EncoderConfig
    public var recipeText: String
    /// Processes of the data-parallel job that saved it (1: a single process).
    public var ranks: Int = 1

    enum Key {
        static let step = "distillery.step"
        static let optimizerStep = "distillery.optimizer_step"
        static let position = "distillery.data_position"
        static let hasProjection = "distillery.projection"
        static let ranks = "distillery.ranks"
    }

    public static func save(_ s: TrainingState, params: TrainableParameters, optimizer: AdamW, to path: String) throws {
        var payloads: [TensorPayload] = []
        for slot in params.layout.slots {
            func view(_ b: FloatBuffer) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: b.base + slot.offset, count: slot.count * 4) }
            payloads.append(TensorPayload(name: "param." + slot.name, dtype: .F32, shape: slot.shape, bytes: view(params.parameters)))
            payloads.append(TensorPayload(name: "adam.m." + slot.name, dtype: .F32, shape: slot.shape, bytes: view(optimizer.m)))
            payloads.append(TensorPayload(name: "adam.v." + slot.name, dtype: .F32, shape: slot.shape, bytes: view(optimizer.v)))
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let meta: [String: String] = [
            "format": "pt",
            CheckpointKey.formatVersion: CheckpointFormat.formatVersion,
            CheckpointKey.kind: "training-state",
            CheckpointKey.config: String(decoding: try enc.encode(s.studentConfig), as: UTF8.self),
            CheckpointKey.recipe: s.recipeText,
            Key.step: String(s.step),
            Key.optimizerStep: String(s.optimizerStep),
            Key.position: String(decoding: try enc.encode(s.position), as: UTF8.self),
            Key.hasProjection: params.projection == nil ? "false" : "true",
            Key.ranks: String(s.ranks),
        ]
        // Level 1: states are large, written often and read rarely.
        try CheckpointWriter.write(payloads, metadata: meta, to: path, level: 1)
    }

    /// Reads a state, restoring parameters and moments into buffers laid out like `layout`.
    public static func load(_ path: String) throws -> (state: TrainingState, checkpoint: Checkpoint) {
        let c = try Checkpoint(path: path)
        guard c.metadata[CheckpointKey.kind] == "training-state" else {
            throw ModelCheckpointError.unsupportedKind(path: path, kind: c.metadata[CheckpointKey.kind] ?? "model")
        }
        func need(_ k: String) throws -> String {
            guard let v = c.metadata[k] else { throw ModelCheckpointError.missingMetadata(path: path, key: k) }
            return v
        }
        guard let step = Int(try need(Key.step)), let ostep = Int(try need(Key.optimizerStep)) else {
            throw ModelCheckpointError.badMetadata(path: path, key: Key.step, reason: "not an integer")
        }
        let position: DataPosition
        do { position = try JSONDecoder().decode(DataPosition.self, from: Data(try need(Key.position).utf8)) } catch let e as DecodingError {
            throw ModelCheckpointError.badMetadata(path: path, key: Key.position, reason: describe(e))
        }
        let state = TrainingState(step: step, optimizerStep: ostep, position: position,
                                  studentConfig: try ModelCheckpoint.config(of: c), recipeText: try need(CheckpointKey.recipe),
                                  ranks: c.metadata[Key.ranks].flatMap(Int.init) ?? 1)
        return (state, c)
    }

    /// Copies parameters and moments from a state checkpoint into the run's buffers.
    public static func restore(from c: Checkpoint, params: TrainableParameters, optimizer: AdamW) throws {
        let image = try SafetensorsImage(try c.decompressAll(), path: c.path)
        for slot in params.layout.slots {
            for (prefix, buffer) in [("param.", params.parameters), ("adam.m.", optimizer.m), ("adam.v.", optimizer.v)] {
                let name = prefix + slot.name
                guard let info = image.info(name) else { throw ModelLoadError.missingTensor(file: c.path, tensor: name, expectedShape: slot.shape) }
                guard info.shape == slot.shape, info.dtype == .F32 else {
                    throw ModelLoadError.wrongShape(file: c.path, tensor: name, shape: info.shape, expected: slot.shape)
                }
                try image.readFloats(info, into: buffer.base + slot.offset)
            }
        }
    }
}
