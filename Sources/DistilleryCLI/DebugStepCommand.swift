import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryQuant
import DistilleryFormats
import DistilleryModels
import DistilleryTraining

struct DebugStepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-step",
        abstract: "One distillation step on a fixed batch: losses, every gradient, parameters after one AdamW step.",
        discussion: """
        BATCH.safetensors holds int64 input_ids (already masked), attention_mask, token_type_ids \
        and mlm_labels (−100: not a target), each [B, S]. STEP.json gives temperature, alpha_ce, \
        alpha_mlm, alpha_cos and adamw {lr, betas, eps, weight_decay, no_decay}. OUT.safetensors \
        receives loss_ce.all_tokens, loss_ce.masked_only, loss_mlm, loss_cos, loss_total, \
        grad.<Hugging Face name> and after_step.<Hugging Face name>. Dropout is off.
        """)

    @Option(name: .long, help: "Teacher model (folder or checkpoint).")
    var teacher: String
    @Option(name: .long, help: "Student model (folder or checkpoint).")
    var student: String
    @Option(name: .long, help: "The batch (safetensors).")
    var batch: String
    @Option(name: .long, help: "step.json with the loss and AdamW settings.")
    var step: String
    @Option(name: .long, help: "Output file (safetensors).")
    var out: String
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        let t = try ModelStore.load(teacher, options: LoadOptions(dropPooler: true, dropPretrainingHeads: true))
        let s = try ModelStore.load(student)
        let outputs = try DebugStep.run(teacher: t.model, student: s.model, batch: try SafetensorsFile(path: batch),
                                        settings: try StepSettings.load(step))
        try Safetensors.write(outputs, to: out)
        let total = outputs.first { $0.name == "loss_total" }.map { $0.data.withUnsafeBytes { $0.load(as: Float.self) } } ?? .nan
        print("loss_total \(total); wrote \(outputs.count) tensors to \(out)")
    }
}
