import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText
import DistilleryQuant

/// What a recipe will do, worked out before any weight is loaded, and the checks that let a
/// run fail at once rather than hours in: `distill validate` and `distill run` both make them.
public struct RecipeCheck: Sendable {
    public let teacher: EncoderConfig
    public let student: EncoderConfig
    /// Prepared token files the recipe names, with the longest sequence each holds.
    public let preparedFiles: [(path: String, longest: Int)]

    public enum Problem: Error, CustomStringConvertible, Equatable {
        case sequenceLength(path: String, maxSeqLen: Int, model: String, positions: Int)
        case preparedTooLong(path: String, file: String, longest: Int, maxSeqLen: Int)
        case noVocabulary(path: String, teacher: String)
        case vocabularyLarger(path: String, teacher: String, tokens: Int, embeddings: Int)
        case noClassifier(path: String, teacher: String)
        case student(path: String, teacher: String, reason: String)

        public var description: String {
            switch self {
            case let .student(p, t, r): return "\(p): [student]: \(r) (teacher \(t))"
            case let .sequenceLength(p, l, m, n):
                return "\(p): max_seq_len = \(l) is longer than the \(n) positions the \(m) has; lower max_seq_len in [data]"
            case let .preparedTooLong(p, f, longest, l):
                return "\(p): \(f) holds sequences of up to \(longest) tokens but max_seq_len = \(l); prepare it again with --max-seq-len \(l) or raise max_seq_len"
            case let .noVocabulary(p, t):
                return "\(p): the teacher \(t) comes without a vocabulary (a folder needs vocab.txt; a checkpoint records it); training needs one to read the text"
            case let .noClassifier(p, t):
                return "\(p): the teacher \(t) has no sequence-classification head: add [teacher.finetune] to fine-tune it on the task first, or give a fine-tuned classifier"
            case let .vocabularyLarger(p, t, n, e):
                return "\(p): the teacher \(t)'s vocabulary has \(n) tokens but its embedding table only \(e) rows"
            }
        }
    }

    public init(_ r: Recipe) throws {
        let described = try ModelStore.describe(r.teacher, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        var teacher = described.config
        // The stages before distillation give the teacher the head it is distilled through.
        if r.fitHead != nil { teacher.hasMLMHead = true }
        if let task = r.task {
            if task.teacherFineTune != nil {
                let labels = try LabelledData.load(task.spec.train, label: task.spec.label, text: task.spec.text, pair: task.spec.pair).labels
                teacher.numLabels = labels.count
                teacher.labels = labels
                teacher.hasPooler = true
            } else if !teacher.hasClassifier {
                throw Problem.noClassifier(path: r.path, teacher: r.teacher)
            } else {
                _ = try TaskData.trainingData(task.spec, classifier: teacher)
            }
        }
        self.teacher = teacher
        do { student = try r.studentConfig(teacher: teacher) } catch let e as StudentError {
            throw Problem.student(path: r.path, teacher: r.teacher, reason: "\(e)")
        }
        try DistillationStep.check(r.loss, teacher: teacher, student: student, projection: r.projection)
        let S = r.task?.spec.maxSequenceLength ?? r.data.maxSequenceLength
        for (what, c) in [("teacher", teacher), ("student", student)] where S > c.maxPositions {
            if r.task != nil { continue }  // task text is cut to the models' positions
            throw Problem.sequenceLength(path: r.path, maxSeqLen: S, model: what, positions: c.maxPositions)
        }
        guard let vocabularyText = described.tokenizer.vocabulary else { throw Problem.noVocabulary(path: r.path, teacher: r.teacher) }
        let tokenizer = try BertTokenizer.from(vocabularyText: vocabularyText, configText: described.tokenizer.config, origin: r.teacher)
        if tokenizer.vocabulary.count > teacher.vocabSize {
            throw Problem.vocabularyLarger(path: r.path, teacher: r.teacher, tokens: tokenizer.vocabulary.count, embeddings: teacher.vocabSize)
        }
        // Prepared data: validated as training will read it, against the teacher's vocabulary.
        var prepared: [(String, Int)] = []
        for f in r.data.train + r.data.heldout where f.hasSuffix(".tok") {
            let d = try TokenDataset(path: f)
            try d.checkVocabulary(tokenizer.vocabulary)
            let longest = (0..<d.count).reduce(0) { max($0, d.length($1)) }
            if longest > S { throw Problem.preparedTooLong(path: r.path, file: f, longest: longest, maxSeqLen: S) }
            prepared.append((f, longest))
        }
        preparedFiles = prepared
        // Memory: both models' weights, the student's gradients and Adam moments, and a batch's
        // activations, before anything is allocated.
        let B = r.training.batchSize
        try MemoryBudget.check(MemoryBudget.sum([teacher.parameterBytes, MemoryBudget.product(student.parameterBytes ?? Int.max, 4)]),
                               for: "the teacher, the student, its gradients and Adam moments")
        try EncoderActivations.checkFits(config: teacher, maxB: B, maxS: S, training: false)
        try EncoderActivations.checkFits(config: student, maxB: B, maxS: S, training: true)
        if r.loss.needsStudentLogits {
            try MemoryBudget.check(MemoryBudget.product(min(512, B * S), student.vocabSize, 2 * 4),
                                   for: "the logits of 512 rows × \(student.vocabSize) tokens")
        }
    }
}
