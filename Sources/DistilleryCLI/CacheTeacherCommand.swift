import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryTraining
import DistilleryRecipes

struct CacheTeacherCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-teacher",
        abstract: "Run a recipe's teacher once over its training data and store what the losses read.",
        discussion: """
        Each training sequence is masked once (static masking, keyed by the recipe's seed and \
        the sequence) and the teacher's outputs for it are stored: the k largest logits of every \
        soft-target row with their token ids, the tail's probability on M draws from the other \
        tokens (--tail-samples; unbiased for the full loss), and the hidden states (or q|k|v) the cosine, hidden \
        and layer-match losses read. One zstd frame per sequence, checksummed; a cache built for \
        another teacher, other data, another k or M or other masking is refused when a run opens it. \
        distill run reads it when the recipe has [teacher.cache] (and builds it first when it is \
        missing).

        Example:
          distill cache-teacher recipes/minilm-general.toml --k 64
          distill cache-teacher recipes/minilm-general.toml --compare-k 8,64,512
        """)

    @Argument(help: "The recipe (TOML).")
    var recipe: String
    @Option(name: .long, help: "Soft targets kept per row (default: [teacher.cache] top_k, or 64).")
    var k: Int?
    @Option(name: .customLong("tail-samples"), help: ArgumentHelp("Draws from each row's tail (the tokens outside the top k) that carry its probability in the loss; 0 spreads it evenly (default: [teacher.cache] tail_samples, or 256).", valueName: "M"))
    var tailSamples: Int?
    @Option(name: .long, help: "The cache file (default: [teacher.cache] path, or OUTPUT/data/teacher-cache.dtc).")
    var output: String?
    @Flag(name: .long, help: "Build again even if a cache for the same teacher, data and settings is there.")
    var overwrite = false
    @Option(name: .customLong("compare-k"), help: ArgumentHelp("Build nothing: measure the soft-target loss with the top K (comma-separated) against the full vocabulary on the recipe's held-out text.", valueName: "K,K,…"),
            transform: { try integerList($0, range: 1...(1 << 24), what: "a k") })
    var compareK: [Int]?
    @Option(name: .long, help: "With --compare-k: the student to score (default: the initial student the recipe builds).")
    var student: String?
    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let k { guard (1...(1 << 24)).contains(k) else { throw ValidationError("--k must be 1…16,777,216") } }
        if let tailSamples { guard (0...4096).contains(tailSamples) else { throw ValidationError("--tail-samples must be 0…4,096") } }
    }

    func run() throws {
        threads.apply()
        let r = try RecipeParser.load(recipe)
        if let ks = compareK {
            let display = TrainingDisplay("top-k")
            let a = try Trainer(recipe: r).topKApproximation(ks: ks, tailSamples: tailSamples, student: student, events: display.show)
            display.finish()
            if json { print(try jsonText(a)); return }
            for x in a { print(x.line) }
            return
        }
        let display = TrainingDisplay("teacher cache")
        let s = try Trainer(recipe: r).buildTeacherCache(topK: k, tailSamples: tailSamples, path: output.map { URL(fileURLWithPath: $0).path }, overwrite: overwrite,
                                                         events: display.show)
        display.finish()
        if json { print(try jsonText(s)); return }
        if s.built {
            print("\(s.path): \(grouped(s.sequences)) sequences, \(grouped(s.tokens)) tokens, top \(s.topK); "
                  + "\(fixed(Double(s.bytes) / 1e6, 1)) MB (\(fixed(Double(s.rawBytes) / 1e6, 1)) MB before zstd), \(formatDuration(s.seconds))")
        } else {
            print("\(s.path): up to date (\(grouped(s.sequences)) sequences, top \(s.topK))")
        }
    }
}
