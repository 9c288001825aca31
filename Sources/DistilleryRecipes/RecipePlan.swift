import Foundation
import DistilleryModels
import DistilleryFormats
import DistilleryTensor
import DistilleryTraining

/// What a recipe will do, worked out without loading weights: the teacher's and the
/// student's configurations. Building it checks that the losses fit the models.
public struct RecipePlan: Sendable {
    public let recipe: Recipe
    public let teacher: EncoderConfig
    public let student: EncoderConfig

    public init(_ recipe: Recipe) throws {
        self.recipe = recipe
        do {
            let check = try RecipeCheck(recipe)
            teacher = check.teacher
            student = check.student
            if recipe.teacherCache != nil, let e = TeacherCacheError.unsupported(recipe.loss, recipe: recipe.path) { throw e }
        } catch let e as DistillationError {
            let line = (try? TOML.parse(recipe.text))?["loss"]?.table?.line
            throw RecipeError.badValue(path: recipe.path, key: "loss", line: line, reason: "\(e)")
        }
    }

    /// A short human summary.
    public var summary: String {
        func describe(_ c: EncoderConfig) -> String {
            var s = "\(c.family.rawValue), \(c.numLayers) layers × \(c.hiddenSize)"
            if c.embeddingSize != c.hiddenSize { s += ", E = \(c.embeddingSize)" }
            switch c.sharing {
            case let .groups(g, _) where g < c.numLayers: s += ", \(g) shared group\(g == 1 ? "" : "s")"
            case .attention: s += ", attention shared"
            case .ffn: s += ", FFN shared"
            default: break
            }
            s += c.hasMLMHead ? ", MLM head" : ", no MLM head"
            return s + " — \(ParameterLayout(config: c).count) parameters"
        }
        var s = "teacher: \(describe(teacher))\nstudent: \(describe(student))\nprecision: \(recipe.training.precision.rawValue)"
        if let c = recipe.teacherCache, let path = recipe.teacherCachePath {
            s += "\nteacher cache: \(path), top \(c.topK) soft targets (the tail \(c.tailSamples > 0 ? "on \(c.tailSamples) draws" : "spread evenly")), hidden states in \(c.precision.rawValue); masking is static (each sequence masked once, when the cache is built)"
        } else {
            s += "\nmasking: dynamic (fresh masks every time a sequence is served)"
        }
        return s
    }
}
