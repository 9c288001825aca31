import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryEvaluation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "(Re)build a run's report.md and curves.svg from what its folder holds.",
        discussion: """
        Reads RUN_DIR/metrics.jsonl (training losses, evaluations, classification epochs, stage by \
        stage; a line that is not a metrics object is an error naming its number) and whatever of \
        RUN_DIR/teacher, student, student.safetensors.zst, student-int8.safetensors.zst and \
        baseline exists, and writes RUN_DIR/report.md: parameters and bytes on disk of each model \
        (fp32, int8, compressed), forward-pass speed, the last evaluation's metrics (a \
        classifier's best epoch), each stage's steps, tokens, time and last loss, and the recipe \
        recorded in the checkpoint; and RUN_DIR/curves.svg: the loss curves of each stage and the \
        dev scores per epoch. `distill run` writes both at the end (without the speed column). \
        The teacher is the run's fine-tuned one, else the one the checkpoint names (or --teacher). \
        Example:

          distill report runs/demo
        """)

    @Argument(help: "A run's output folder.")
    var runDirectory: String
    @Option(name: .long, help: "The teacher, when the checkpoint does not name it or it moved.")
    var teacher: String?
    @Flag(name: .customLong("no-timing"), help: "Leave out the speed column (no model is run).")
    var noTiming = false
    @Option(name: .long, help: "Timed forward passes per model (the median is reported).")
    var iterations = 5
    @Flag(name: .long, help: "Print the written paths as JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...10_000).contains(iterations) else { throw ValidationError("--iterations must be 1…10,000") }
    }

    func run() throws {
        threads.apply()
        var settings = RunFolderReport.Settings()
        settings.teacher = teacher
        settings.timing = noTiming ? nil : (8, 128, 1, iterations)
        let written = try RunFolderReport.write(runDirectory, settings: settings) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        if json {
            struct Output: Encodable { let report: String; let curves: String?; let metricLines: Int? }
            print(try jsonText(Output(report: written.report, curves: written.curves, metricLines: written.metrics?.lines)))
            return
        }
        print("wrote \(written.report)" + (written.curves.map { " and \($0)" } ?? ""))
    }
}
