import ArgumentParser
import Dispatch
import Foundation
import DistilleryTensor
import Synchronization
import DistilleryTraining
import DistilleryRecipes
import DistilleryEvaluation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a distillation recipe (TOML): teacher → student.",
        discussion: """
        Writes into the recipe's output folder: data/ (tokenized text), metrics.jsonl (one line per \
        step and per evaluation), state.safetensors.zst (the whole training state, saved every \
        [checkpoint] every steps), and at the end student/ (a Hugging Face folder) and \
        student.safetensors.zst, then report.md and curves.svg (see distill report). Ctrl-C saves the \
        state and exits; --resume continues bit for bit.
        """)

    @Argument(help: "The recipe, e.g. recipes/demo.toml.")
    var recipe: String
    @Flag(name: .long, help: "Continue from the output folder's saved state.")
    var resume = false
    @Flag(name: .long, help: "Start again in an output folder that holds a previous run (its state, metrics and student are deleted).")
    var overwrite = false
    @Option(name: .long, help: "Stop after this many steps (state saved; resume later).")
    var stopAfter: Int?
    @Flag(name: .long, help: "Print the final summary as JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if resume && overwrite { throw ValidationError("--resume continues the run in the output folder; --overwrite replaces it: give one") }
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after must be at least 1") }
    }

    func run() throws {
        // Started by mpirun: this process is one rank of a data-parallel job (MPI starts before
        // --threads applies, which then overrides each rank's share of the cores); rank 0 prints.
        if let cluster = try Cluster.startIfLaunched() {
            cluster.runCommand { try train(quiet: !cluster.isRoot) }
        }
        let code = try train(quiet: false)
        if code != 0 { throw ExitCode(code) }
    }

    /// Runs the recipe; the exit status.
    func train(quiet: Bool) throws -> Int32 {
        threads.apply()
        let r = try RecipeParser.load(recipe)
        let plan = try RecipePlan(r)
        if !quiet { log(plan.summary) }
        let stop = Interrupt.install()
        let display = TrainingDisplay("distil")
        let summary = try Trainer(recipe: r).run(resume: resume, overwrite: overwrite, stopAfterSteps: stopAfter,
                                                 interrupt: { stop.requested }, events: quiet ? { _ in } : display.show)
        display.finish()
        if quiet { return summary.interrupted ? 130 : 0 }
        if json { print(try jsonText(summary)) } else if summary.interrupted || summary.steps < summary.totalSteps {
            print("stopped at step \(summary.steps) of \(summary.totalSteps); state saved in \(r.output)/state.safetensors.zst (continue with --resume)")
        }
        // Interrupted by Ctrl-C: the state is saved; exit as a signalled program does.
        if summary.interrupted { return 130 }
        if json || summary.steps < summary.totalSteps { return 0 }
        if let task = summary.task {
            print(taskSummaryText(task, summary))
            return 0
        }
        print("""
        done: \(summary.steps) steps, \(grouped(summary.tokens)) tokens in \(formatDuration(summary.seconds)) (\(grouped(Int(summary.tokensPerSecond))) tokens/s)
        student: \(grouped(summary.studentParameters)) parameters (teacher \(grouped(summary.teacherParameters)), \(fixed(Double(summary.studentParameters) / Double(max(1, summary.teacherParameters)), 2))×)
          \(summary.studentFolder ?? "")  (Hugging Face folder)
          \(summary.studentCheckpoint ?? "")  (compact checkpoint)
        """ + (summary.evaluation.map { "\nheld-out: " + evalLine($0) } ?? ""))
        return 0
    }
}

/// The losses a step reports: the total and each one that is on.
func stepLosses(_ s: StepReport) -> String {
    var parts = ["loss \(fixed(s.losses.total, 4))"]
    for (name, v) in s.losses.named where name != "loss_total" && v != 0 {
        parts.append("\(name.dropFirst(5)) \(fixed(v, 4))")
    }
    for (name, v) in s.scheduled.sorted(by: { $0.key < $1.key }) {
        parts.append("\(name == "temperature" ? "T" : name) \(fixed(v, 2))")
    }
    return parts.joined(separator: "  ")
}

func evalLine(_ e: EvalReport) -> String {
    var parts: [String] = []
    if let a = e.mlmAccuracy { parts.append("MLM accuracy \(fixed(a * 100, 2))%") }
    if let l = e.mlmLoss { parts.append("MLM loss \(fixed(l, 4))") }
    if let a = e.top1Agreement { parts.append("top-1 agreement \(fixed(a * 100, 2))%") }
    if let k = e.kl { parts.append("KL \(fixed(k, 4))") }
    if let c = e.hiddenCosine { parts.append("hidden cosine \(fixed(c, 4))") }
    if let c = e.sentenceCosine { parts.append("sentence cosine \(fixed(c, 4))") }
    return parts.isEmpty ? "(nothing to measure)" : parts.joined(separator: ", ") + "  (\(grouped(e.sequences)) sequences)"
}

/// The dev-set results of a task recipe's stages.
func taskSummaryText(_ t: TaskRunSummary, _ s: TrainingSummary) -> String {
    func pct(_ x: Double?) -> String { x.map { fixed($0 * 100, 2) + "%" } ?? "–" }
    var table = TextTable(["model", "dev accuracy", "macro-F1", "of the teacher", "where"])
    let teacherAccuracy = t.teacher?.accuracy ?? 0
    func share(_ x: Double?) -> String { x.map { teacherAccuracy > 0 ? fixed($0 / teacherAccuracy * 100, 1) + "%" : "" } ?? "" }
    table.add(["teacher" + (t.teacherFolder != nil ? " (fine-tuned)" : ""), pct(t.teacher?.accuracy), pct(t.teacher?.macroF1), "100%",
               t.teacherFolder ?? ""])
    if let st = t.student?.best {
        table.add(["student (distilled)", pct(st.accuracy), pct(st.macroF1), share(st.accuracy), s.studentFolder ?? ""])
    }
    if let q = t.int8 { table.add(["student int8", pct(q.accuracy), pct(q.macroF1), share(q.accuracy), t.int8Checkpoint ?? ""]) }
    if let b = t.baseline?.best {
        table.add(["student on labels alone", pct(b.accuracy), pct(b.macroF1), share(b.accuracy), t.baseline?.folder ?? ""])
    }
    return """
    done in \(formatDuration(s.seconds)): student \(grouped(s.studentParameters)) parameters (teacher \(grouped(s.teacherParameters)), \(fixed(Double(s.studentParameters) / Double(max(1, s.teacherParameters)), 2))×)
    \(table.render())
    """
}

func epochLine(_ e: EpochReport) -> String {
    var line = "epoch \(e.epoch): train loss \(fixed(e.trainLoss, 4)), dev accuracy \(fixed(e.dev.accuracy * 100, 2))%, macro-F1 \(fixed(e.dev.macroF1 * 100, 2))%"
    if let a = e.dev.agreement { line += ", agrees with the teacher on \(fixed(a * 100, 2))%" }
    return line + "  (\(grouped(e.dev.examples)) examples, \(formatDuration(e.seconds)))"
}

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Shows a trainer's events: a progress bar over the steps (a plain line every ten seconds
/// without a terminal), evaluations and epochs as lines.
final class TrainingDisplay {
    let label: String
    private var bar: ProgressBar
    private var lastLine = -1e9
    init(_ label: String) { self.label = label; bar = ProgressBar(label, total: 1) }

    func show(_ event: TrainerEvent) {
        switch event {
        case .message(let m):
            bar.finish()
            log(m)
        case let .preparing(file, done, total):
            bar.update(Double(done) / Double(max(1, total)), "tokenizing \(file) \(fixed(Double(done) / 1e6, 1)) MB")
        case .step(let s):
            let losses = stepLosses(s)
            // Each stage counts its steps from 1: its own bar (and ETA).
            if s.step == 1 { bar.finish(); bar = ProgressBar(label, total: 1) }
            bar.update(Double(s.step) / Double(s.totalSteps),
                       "step \(s.step)/\(s.totalSteps)  \(grouped(Int(s.tokensPerSecond))) tok/s  \(losses)  lr \(String(format: "%.2e", s.lr))")
            if s.step == 1 { lastLine = s.elapsed }
            if isatty(2) == 0, s.elapsed - lastLine >= 10 || s.step == s.totalSteps {
                lastLine = s.elapsed
                log("step \(s.step)/\(s.totalSteps)  \(losses)  \(grouped(Int(s.tokensPerSecond))) tok/s  ETA \(formatDuration(s.eta))")
            }
        case let .evaluation(step, e):
            bar.finish()
            log("eval @\(step): " + evalLine(e))
        case let .checkpoint(step, path):
            if isatty(2) == 0 { log("saved state at step \(step) → \(path)") }
        case .classification(let e):
            bar.finish()
            log(epochLine(e))
        }
    }

    func finish() { bar.finish() }
}

/// Ctrl-C: the first asks the trainer to save and stop after the current step; a second one
/// exits at once.
final class Interrupt: Sendable {
    private let flag = Atomic<Bool>(false)
    var requested: Bool { flag.load(ordering: .relaxed) }
    nonisolated(unsafe) private static var source: DispatchSourceSignal?

    static func install() -> Interrupt {
        let i = Interrupt()
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler {
            if i.flag.exchange(true, ordering: .relaxed) {
                log("\ninterrupted again: exiting without saving")
                exit(130)
            }
            log("\nstopping after this step and saving the state (Ctrl-C again to abort)")
        }
        s.resume()
        source = s
        return i
    }
}
