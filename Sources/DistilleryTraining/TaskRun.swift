import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryQuant
import DistilleryEvaluation

/// What a [task] recipe produced, stage by stage, each scored on the dev set.
public struct TaskRunSummary: Codable, Sendable {
    public var labels: [String] = []
    /// The teacher on the dev set (after fine-tuning, when the recipe fine-tunes it).
    public var teacher: ClassificationReport?
    public var teacherFineTune: TaskSummary?
    /// Where the fine-tuned teacher is (when the recipe fine-tunes one).
    public var teacherFolder: String?
    public var student: TaskSummary?
    /// The same student trained on the labels alone.
    public var baseline: TaskSummary?
    /// The student's int8 checkpoint, loaded back and scored.
    public var int8: ClassificationReport?
    public var int8Checkpoint: String?
    public var int8Bytes: Int?
}

/// Runs a [task] recipe's stages in order: fine-tune the teacher (or take the classifier as it
/// is), build the student from it and distil, train the baseline, quantize. A stage whose
/// checkpoint a previous run left is reused with --resume.
final class TaskRun {
    let trainer: Trainer
    var recipe: Recipe { trainer.recipe }
    init(trainer: Trainer) { self.trainer = trainer }

    func checkpoint(_ name: String) -> String { recipe.output + "/\(name).safetensors.zst" }

    /// The stamp a fine-tuned teacher's folder records (nil when none).
    static func recordedStamp(folder: String) -> String? {
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: folder + "/config.json")),
              let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return nil }
        return o["distillery_stamp"] as? String
    }

    func run(resume: Bool, events: (TrainerEvent) -> Void) throws -> TrainingSummary {
        let r = recipe, task = r.task!
        let check = try RecipeCheck(r)
        var summary = TrainingSummary(), out = TaskRunSummary()
        events(.message("teacher \(r.teacher)"))
        // A pooler in the teacher's file starts the fine-tuned head (see addingClassifier).
        let loaded = try ModelStore.load(r.teacher, options: LoadOptions(dropPretrainingHeads: true, dropMLMHead: true))
        let tokenizer = try BertTokenizer.of(model: r.teacher, files: loaded.tokenizer)
        let data = try TaskData(task.spec, tokenizer: tokenizer,
                                maxPositions: min(check.teacher.maxPositions, check.student.maxPositions),
                                classifier: task.teacherFineTune == nil ? loaded.model.config : nil)
        out.labels = data.labels
        events(.message("task: \(grouped(data.train.count)) training and \(grouped(data.dev.count)) dev examples, labels \(data.labels.joined(separator: ", "))"))

        // 1. The teacher: a classifier as given, or fine-tuned on the labels here.
        var teacher = loaded.model
        if let fineTune = task.teacherFineTune {
            let folder = task.teacherOutput ?? r.output + "/teacher", stamp = task.teacherStamp(teacher: r.teacher, seed: r.seed)
            let reusable = FileManager.default.fileExists(atPath: folder + "/model.safetensors")
                && (Self.recordedStamp(folder: folder) == stamp || (resume && task.teacherOutput == nil))
            if reusable {
                events(.message("teacher: reusing the teacher fine-tuned on the same data with the same settings in \(folder)"))
                teacher = try ModelStore.load(folder, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true, dropMLMHead: true)).model
            } else {
                try HuggingFaceFolder.checkReplaceable(folder)
                let start = teacher.addingClassifier(labels: data.labels, seed: streamKey(r.seed, 0x5443_4C53))
                let t = try TaskTrainer(student: start, teacher: nil, tokenizer: tokenizer, tokenizerFiles: loaded.tokenizer, data: data,
                                        loss: .labelsOnly, training: fineTune, output: r.output,
                                        provenance: Provenance(source: r.path, teacher: r.teacher))
                t.destination = (folder, folder + ".safetensors.zst")
                t.notes = ["distillery_stamp": stamp]
                out.teacherFineTune = try t.run(name: "teacher", events: events)
                teacher = t.best!
            }
            out.teacherFolder = folder
        }
        out.teacher = try ClassificationEvaluator.evaluate(teacher, on: data.dev, padId: tokenizer.padId)
        events(.message("teacher on the dev set: accuracy \(fixed(out.teacher!.accuracy * 100, 2))%, macro-F1 \(fixed(out.teacher!.macroF1 * 100, 2))%"))

        // 2. The student, built from the classifier teacher and distilled.
        var initial = try StudentBuilder.build(r.student, teacher: teacher, seed: streamKey(r.seed, 0x5354))
        if let d = r.studentDropout {
            var c = initial.config
            c.hiddenDropout = d; c.attentionDropout = d
            initial = EncoderModel(config: c, parameters: initial.parameters)
        }
        summary.studentParameters = initial.layout.modelCount
        summary.teacherParameters = teacher.layout.modelCount
        events(.message("student \(grouped(summary.studentParameters)) parameters, teacher \(grouped(summary.teacherParameters))"))
        let baselineStart = task.baseline ? initial.copy() : nil
        let training = r.studentTaskTraining
        let studentTrainer = try TaskTrainer(student: initial, teacher: teacher, tokenizer: tokenizer, tokenizerFiles: loaded.tokenizer,
                                             data: data, loss: r.loss, training: training, output: r.output,
                                             provenance: Provenance(source: r.path, teacher: r.teacher))
        let student = try studentTrainer.run(name: "student", events: events)
        out.student = student
        summary.studentFolder = student.folder
        summary.studentCheckpoint = student.checkpoint
        summary.steps = student.epochs.last?.step ?? 0
        summary.totalSteps = summary.steps

        // 3. The baseline: the same student on the labels alone.
        if let start = baselineStart {
            let t = try TaskTrainer(student: start, teacher: nil, tokenizer: tokenizer, tokenizerFiles: loaded.tokenizer, data: data,
                                    loss: .labelsOnly, training: training, output: r.output,
                                    provenance: Provenance(source: r.path, teacher: nil))
            out.baseline = try t.run(name: "baseline", events: events)
        }

        // 4. The student in int8, written, read back and scored as a user would run it.
        if r.exportInt8, let best = studentTrainer.best {
            let path = checkpoint("student-int8")
            let stats = try Quantizer.save(best, tokenizer: loaded.tokenizer, to: path,
                                           provenance: Provenance(source: r.path, teacher: r.teacher, steps: summary.steps),
                                           recipe: r.text, level: r.checkpoints.level)
            let q = try ModelStore.open(path).model  // int8 products, as `distill eval` runs it (load would dequantize)
            out.int8 = try ClassificationEvaluator.evaluate(q, on: data.dev, padId: tokenizer.padId, reference: best)
            out.int8Checkpoint = path
            out.int8Bytes = stats.compressedBytes
            events(.message("int8 student on the dev set: accuracy \(fixed(out.int8!.accuracy * 100, 2))%, agrees with the fp32 student on \(fixed((out.int8!.agreement ?? 0) * 100, 2))%"))
        }
        summary.task = out
        return summary
    }
}
