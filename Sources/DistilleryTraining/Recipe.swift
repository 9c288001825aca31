import Foundation
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryText

/// A distillation run: what a TOML recipe describes (DistilleryRecipes parses and validates the
/// file). Paths are absolute, resolved against the recipe's folder.
public struct Recipe: Sendable {
    public var path: String
    public var text: String
    public var name: String
    public var output: String
    public var seed: UInt64

    public var teacher: String
    public var student: StudentSpec
    /// Dropout (hidden and attention) for the student, overriding what it inherits.
    public var studentDropout: Float?
    public var data: DataSpec
    public var loss: LossSettings
    /// A learned student→teacher projection for the hidden-state losses.
    public var projection: Bool
    public var optimizer: OptimizerSpec
    public var training: TrainingSpec
    public var evaluation: EvaluationSpec
    public var checkpoints: CheckpointSpec
    /// A sequence-classification recipe ([task]): the student learns a labelled task from a
    /// classifier teacher instead of text.
    public var task: TaskRecipe?
    /// [teacher.fit_head]: first fit an MLM head on the frozen teacher (one shipped without).
    public var fitHead: HeadFitSettings?
    /// [teacher.cache]: the teacher runs once over the training data into a cache file, which
    /// every epoch reads instead (masks drawn once per sequence: static masking).
    public var teacherCache: TeacherCacheSpec?
    /// [export] int8: also write the student as an int8 checkpoint and score it.
    public var exportInt8 = false

    /// The student configuration a spec gives for this teacher, with the recipe's dropout.
    public func studentConfig(teacher: EncoderConfig) throws -> EncoderConfig {
        var c = try StudentBuilder.plannedConfig(student, teacher: teacher)
        if let d = studentDropout { c.hiddenDropout = d; c.attentionDropout = d }
        return c
    }

    public init(path: String, text: String, name: String, output: String, seed: UInt64, teacher: String,
                student: StudentSpec, data: DataSpec, loss: LossSettings, projection: Bool, optimizer: OptimizerSpec,
                training: TrainingSpec, evaluation: EvaluationSpec, checkpoints: CheckpointSpec) {
        self.path = path; self.text = text; self.name = name; self.output = output; self.seed = seed
        self.teacher = teacher; self.student = student; self.data = data; self.loss = loss; self.projection = projection
        studentDropout = nil
        self.optimizer = optimizer; self.training = training; self.evaluation = evaluation; self.checkpoints = checkpoints
    }
}

public struct DataSpec: Sendable, Equatable {
    /// Text files (tokenized into the output folder on first use) or prepared .tok files.
    public var train: [String]
    public var heldout: [String]
    public var maxSequenceLength = 128
    /// What a sequence holds: packed lines, a line, or a sentence (text files only).
    public var sequences: SequenceUnit = .packed
    public var masking = MaskingPolicy()
    public init(train: [String], heldout: [String]) { self.train = train; self.heldout = heldout }
}

public struct OptimizerSpec: Sendable, Equatable {
    public var lr: Float = 5e-4
    public var adamw = AdamWSettings(beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.0)
    public var decay: DecayRule = .biasesAndNorms
    /// Warm-up as a share of all steps, or as a step count.
    public var warmupFraction: Double = 0.05
    public var warmupSteps: Int?
    /// Clip the global gradient norm to this (nil: no clipping).
    public var clip: Float? = 5
    public init() {}
}

public struct TrainingSpec: Sendable, Equatable {
    public var steps: Int?
    public var epochs: Int?
    public var batchSize = 32
    public var accumulation = 1
    /// Apply the student's configured dropout while training.
    public var dropout = true
    /// How the matrix products run: fp32, or bf16 operands with fp32 accumulation, fp32 master
    /// weights, Adam moments, LayerNorm, softmax and losses (PyTorch autocast's split).
    public var precision = WeightFormat.fp32
    /// How each epoch is cut into batches.
    public var batches = BatchOrder.bucketed
    public init() {}
}

public struct EvaluationSpec: Sendable, Equatable {
    /// Evaluate on held-out data every this many steps (0: only at the end).
    public var every = 100
    /// Held-out batches per evaluation.
    public var batches = 20
    public init() {}
}

public struct CheckpointSpec: Sendable, Equatable {
    /// Save the whole training state every this many steps (0: only at the end).
    public var every = 200
    /// zstd level of the final student checkpoint.
    public var level = CheckpointFormat.defaultLevel
    public init() {}
}

/// What a [task] recipe trains on and which stages run: the teacher fine-tuned on the labels
/// (when it has no classifier yet), the student distilled from it, optionally the same student
/// trained on the labels alone (the baseline a distilled student must beat).
public struct TaskRecipe: Sendable, Equatable {
    public var spec: TaskSpec
    /// [teacher.finetune]: how the teacher is fine-tuned first.
    public var teacherFineTune: TaskTraining?
    /// Where the fine-tuned teacher is kept (default OUTPUT/teacher); recipes naming the same
    /// folder share one fine-tuning (reused while the teacher, data and settings are the same).
    public var teacherOutput: String?
    public var baseline = false
    public init(spec: TaskSpec) { self.spec = spec }
}

extension Recipe {
    /// The student's task training: [training] epochs, batch size, dropout and precision,
    /// [optimizer], the recipe's seed.
    public var studentTaskTraining: TaskTraining {
        var t = TaskTraining()
        t.epochs = training.epochs ?? 3
        t.batchSize = training.batchSize
        t.optimizer = optimizer
        t.seed = seed
        t.dropout = training.dropout
        t.precision = training.precision
        t.batches = training.batches
        return t
    }
}

extension TaskRecipe {
    /// What decides the fine-tuned teacher: the same stamp means the same teacher.
    public func teacherStamp(teacher: String, seed: UInt64) -> String {
        let f = teacherFineTune ?? TaskTraining()
        return "teacher \(teacher); train \(spec.train); dev \(spec.dev); columns \(spec.label) \(spec.text) \(spec.pair.map { "\($0)" } ?? "-"); "
            + "max_seq_len \(spec.maxSequenceLength); epochs \(f.epochs); lr \(f.optimizer.lr); batch \(f.batchSize); "
            + "warmup \(f.optimizer.warmupFraction); weight_decay \(f.optimizer.adamw.weightDecay); dropout \(f.dropout); "
            + "patience \(spec.patience.map(String.init) ?? "-"); seed \(seed)"
            + (f.batches == .bucketed ? "" : "; batches \(f.batches.rawValue)") + "; head: the file's pooler"
    }
}
