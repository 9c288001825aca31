import Foundation
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
                      QuantizeCommand.self, EvalCommand.self, ProbeCommand.self, CompareCommand.self, ReportCommand.self,
                      FinetuneCommand.self, FitHeadCommand.self, CacheTeacherCommand.self,
                      DebugStepCommand.self, BenchCommand.self, DoctorCommand.self]
    )

    public init() {}
}

extension Distill {
    /// Runs the command line: errors are printed as one line a user can act on and the exit
    /// status is non-zero (1 for failures, 64 for usage errors, 130 after Ctrl-C). Foundation's
    /// file errors are rewritten to name the file.
    public static func runMain() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: readable(error))
        }
    }

    static func readable(_ error: Error) -> Error {
        let e = error as NSError
        guard e.domain == NSCocoaErrorDomain || e.domain == NSPOSIXErrorDomain else { return error }
        let path = (e.userInfo[NSFilePathErrorKey] as? String) ?? (e.userInfo[NSURLErrorKey] as? URL)?.path ?? "a file"
        return FileError(path: path, operation: "use", reason: fileErrorReason(error, path: path))
    }
}
