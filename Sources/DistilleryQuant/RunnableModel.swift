import Foundation
import DistilleryFormats
import DistilleryModels

/// A model a command was given, ready to run: a Hugging Face folder, a safetensors file or an
/// fp32 checkpoint runs on the fp32 encoder; an int8 checkpoint (one whose metadata records a
/// quantization scheme) on the int8 encoder.
public struct RunnableModel {
    public let runner: EncoderRunner
    /// The folder or file it came from.
    public let path: String
    public let tokenizer: TokenizerFiles
    public let metadata: [String: String]
    /// How an int8 checkpoint was quantized; nil for fp32.
    public let scheme: QuantizationScheme?
    /// "fp32", or "int8 (KERNEL)".
    public let precision: String

    public var config: EncoderConfig { runner.config }

    public static func open(_ path: String, options: LoadOptions = LoadOptions(), kernel: Int8Kernel = .best) throws -> RunnableModel {
        if path.hasSuffix(".zst"), FileManager.default.fileExists(atPath: path) {
            let c = try Checkpoint(path: path)
            if let scheme = try QuantizationScheme.read(c.metadata, path: path) {
                let encoder = try QuantizedEncoder.load(c, kernel: kernel, options: options)
                return RunnableModel(runner: encoder, path: path, tokenizer: ModelCheckpoint.tokenizer(of: c), metadata: c.metadata,
                                     scheme: scheme, precision: "int8 (\(kernel))")
            }
        }
        let loaded = try ModelStore.load(path, options: options)
        return RunnableModel(runner: EncoderSession(loaded.model), path: path, tokenizer: loaded.tokenizer,
                             metadata: loaded.metadata, scheme: nil, precision: "fp32")
    }
}
