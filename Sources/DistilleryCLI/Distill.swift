import ArgumentParser
import DistilleryTensor

/// The `distill` command. Each subcommand lives in its own file and only parses arguments,
/// calls the library and prints; the work happens in the Distillery modules.
public struct Distill: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Make BERT-family encoders small and fast: distil, quantize, compress, compare.",
        discussion: """
        Models are Hugging Face folders (config.json + model.safetensors + vocab.txt) or Distillery \
        checkpoints (NAME.safetensors.zst); every command that takes a model accepts either.
        """,
        subcommands: [ForwardCommand.self, ParamsCommand.self, TokenizeCommand.self, PrepareCommand.self,
                      ConvertCommand.self, InspectCommand.self, RunCommand.self, ValidateCommand.self,
                      QuantizeCommand.self, EvalCommand.self, CompareCommand.self,
                      DebugStepCommand.self, BenchCommand.self, DoctorCommand.self]
    )

    public init() {}
}
