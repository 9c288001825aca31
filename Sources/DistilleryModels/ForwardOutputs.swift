import Foundation
import DistilleryTensor
import DistilleryFormats

public enum BatchFileError: Error, CustomStringConvertible, Equatable {
    case missing(file: String, tensor: String)
    case badShape(file: String, tensor: String, shape: [Int], expected: String)

    public var description: String {
        switch self {
        case let .missing(f, t): return "\(f): the batch needs an integer tensor '\(t)' of shape [B, S]"
        case let .badShape(f, t, s, e): return "\(f): tensor '\(t)' has shape \(s), expected \(e)"
        }
    }
}

extension TokenBatch {
    /// Reads `input_ids`, `attention_mask` and optional `token_type_ids` (integer tensors of
    /// shape [B, S]) from a safetensors file, the layout of the reference fixtures.
    public static func read(from source: TensorSource) throws -> TokenBatch {
        guard let ids = source.info("input_ids") else { throw BatchFileError.missing(file: source.path, tensor: "input_ids") }
        guard ids.shape.count == 2, ids.shape[0] > 0, ids.shape[1] > 0 else {
            throw BatchFileError.badShape(file: source.path, tensor: "input_ids", shape: ids.shape, expected: "[B, S] with B, S > 0")
        }
        let B = ids.shape[0], S = ids.shape[1]
        func read(_ name: String) throws -> [Int]? {
            guard let i = source.info(name) else { return nil }
            if i.shape != [B, S] {
                throw BatchFileError.badShape(file: source.path, tensor: name, shape: i.shape, expected: "[\(B), \(S)] like input_ids")
            }
            return try source.integers(name)
        }
        let inputIds = try read("input_ids")!
        guard let mask = try read("attention_mask") else {
            throw BatchFileError.missing(file: source.path, tensor: "attention_mask")
        }
        let types = try read("token_type_ids")
        func int32(_ v: [Int], _ name: String) throws -> [Int32] {
            try v.enumerated().map { i, x in
                guard let y = Int32(exactly: x) else {
                    throw InputError.tokenOutOfRange(name: name, index: i, value: x, limit: Int(Int32.max))
                }
                return y
            }
        }
        // 1 = a token, 0 = padding; anything else is a mistake in the file (transformers would
        // read −1 as a large negative bias, not as 1).
        if let i = mask.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw InputError.tokenOutOfRange(name: "\(source.path): attention_mask", index: i, value: mask[i], limit: 2)
        }
        return TokenBatch(B: B, S: S, inputIds: try int32(inputIds, "\(source.path): input_ids"),
                          attentionMask: mask.map { Float($0) }, tokenTypes: try types.map { try int32($0, "\(source.path): token_type_ids") })
    }
}
