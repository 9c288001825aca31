import Foundation
import XCTest
import DistilleryTensor
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryTraining
import DistilleryRecipes

/// Training runs on the tiny BERT teacher (V = 512, with a 512-token vocabulary made for it)
/// over real English text.
final class TrainerTests: XCTestCase {
    /// A folder holding the tiny teacher with a vocabulary, and a recipe using it.
    static func setUp(_ name: String, recipeBody: String) throws -> String {
        let dir = Fixtures.temporaryDirectory + "/trainer-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try Fixtures.makeTinyTeacher(at: dir + "/teacher")
        let recipe = dir + "/recipe.toml"
        try recipeBody.replacingOccurrences(of: "DATA", with: Fixtures.repositoryRoot + "/recipes/data")
            .write(toFile: recipe, atomically: true, encoding: .utf8)
        return recipe
    }

    /// Three layer matches the tiny teacher (2 layers) serves for a 1-layer student: hidden MSE,
    /// relations and attention KL, as recipe tables (put before `[optimizer]`).
    static let layerMatchTables = """
        [[loss.match]]
        kind = "hidden_mse"
        teacher = 2
        student = 1

        [[loss.match]]
        kind = "relation"
        teacher = 2
        student = 1
        relation_heads = 4

        [[loss.match]]
        kind = "attention_kl"
        teacher = 1
        student = 1
        weight = 0.5

        """

    static let baseRecipe = """
    name = "tiny"
    output = "run"
    seed = 7

    [teacher]
    model = "teacher"

    [student]
    builder = "layers"
    layers = [1]
    dropout = 0.1

    [data]
    train = ["DATA/demo-train.txt"]
    heldout = ["DATA/demo-heldout.txt"]
    max_seq_len = 64

    [loss]
    temperature = 2.0
    alpha_ce = 5.0
    alpha_mlm = 2.0
    alpha_cos = 1.0

    [optimizer]
    lr = 1e-3
    warmup = 0.1
    clip = 5.0

    [training]
    steps = STEPS
    batch_size = 8

    [eval]
    every = 0
    batches = 4

    [checkpoint]
    every = 0
    """

    /// A student built from the tiny teacher drives loss_total down on real text.
    func testStudentLearnsOnRealText() throws {
        let recipe = try Self.setUp("learn", recipeBody: Self.baseRecipe.replacingOccurrences(of: "STEPS", with: "200")
            .replacingOccurrences(of: "lr = 1e-3", with: "lr = 3e-3"))
        let r = try RecipeParser.load(recipe)
        var losses: [Double] = []
        var parts: [LossValues] = []
        let summary = try Trainer(recipe: r).run(events: { if case .step(let s) = $0 { losses.append(s.losses.total); parts.append(s.losses) } })
        print("first step \(parts.first!), last step \(parts.last!)")
        XCTAssertEqual(losses.count, 200)
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        print("loss_total: first 10 steps \(first), last 10 steps \(last)")
        XCTAssertLessThan(last, 0.8 * first)
        XCTAssertNotNil(summary.evaluation?.mlmAccuracy)
        XCTAssertNotNil(summary.evaluation?.top1Agreement)
        // The student comes out as a Hugging Face folder and a checkpoint that load back.
        let folder = try HuggingFaceFolder.load(summary.studentFolder!)
        let ck = try ModelStore.load(summary.studentCheckpoint!)
        XCTAssertEqual(folder.model.parameters.toArray(), ck.model.parameters.toArray())
        XCTAssertEqual(ck.metadata[CheckpointKey.recipe], r.text)
        XCTAssertNotNil(ck.tokenizer.vocabulary)
        let metrics = try String(contentsOfFile: r.output + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.filter { !$0.contains("\"eval\"") }.count, 200)
    }

    /// `[data] sequences` reaches the prepared data: a sentence a sequence gives more, shorter
    /// sequences than packing the same text.
    func testSequenceUnitReachesTheData() throws {
        func trainSequences(_ unit: String) throws -> Int {
            let body = Self.baseRecipe.replacingOccurrences(of: "STEPS", with: "1")
                .replacingOccurrences(of: "max_seq_len = 64", with: "max_seq_len = 64\nsequences = \"\(unit)\"")
            let r = try RecipeParser.load(try Self.setUp("units-\(unit)", recipeBody: body))
            XCTAssertEqual(r.data.sequences.rawValue, unit)
            _ = try Trainer(recipe: r).run(events: { _ in })
            return try TokenDataset(path: r.output + "/data/train.tok").count
        }
        let packed = try trainSequences("packed"), lines = try trainSequences("lines"), sentences = try trainSequences("sentences")
        print("demo-train.txt: \(packed) packed, \(lines) line, \(sentences) sentence sequences")
        XCTAssertLessThan(packed, lines)
        XCTAssertLessThan(lines, sentences)
    }

    /// N steps straight give the same losses, bit for bit, as k steps, a resume, and N − k steps
    /// (with dropout on, so the dropout streams are covered too).
    func testResumeIsBitIdentical() throws {
        let body = Self.baseRecipe.replacingOccurrences(of: "STEPS", with: "9")
        let straight = try RecipeParser.load(try Self.setUp("straight", recipeBody: body))
        var a: [LossValues] = []
        _ = try Trainer(recipe: straight).run(events: { if case .step(let s) = $0 { a.append(s.losses) } })

        let split = try RecipeParser.load(try Self.setUp("split", recipeBody: body))
        var b: [LossValues] = []
        let first = try Trainer(recipe: split).run(stopAfterSteps: 4, events: { if case .step(let s) = $0 { b.append(s.losses) } })
        XCTAssertEqual(first.steps, 4)
        XCTAssertNil(first.studentFolder)
        let second = try Trainer(recipe: split).run(resume: true, events: { if case .step(let s) = $0 { b.append(s.losses) } })
        XCTAssertEqual(second.steps, 9)
        XCTAssertEqual(a.count, 9)
        XCTAssertEqual(a, b, "losses differ between a straight run and a resumed one")
        let x = try ModelStore.load(straight.output + "/student.safetensors.zst").model.parameters.toArray()
        let y = try ModelStore.load(split.output + "/student.safetensors.zst").model.parameters.toArray()
        XCTAssertEqual(x, y, "final students differ")
    }

    /// An interruption saves the state; a NaN stops with the step named and the last
    /// checkpoint intact.
    func testInterruptAndNonFiniteLoss() throws {
        let body = Self.baseRecipe.replacingOccurrences(of: "STEPS", with: "6")
        let r = try RecipeParser.load(try Self.setUp("interrupt", recipeBody: body))
        var steps = 0
        let s = try Trainer(recipe: r).run(interrupt: { steps >= 2 }, events: { if case .step = $0 { steps += 1 } })
        XCTAssertTrue(s.interrupted)
        XCTAssertEqual(try TrainingState.load(r.output + "/state.safetensors.zst").state.step, 2)

        // A learning rate no recipe accepts (set on the parsed run) makes the loss blow up.
        var e = try RecipeParser.load(try Self.setUp("nan", recipeBody: body))
        e.optimizer.lr = 1e30
        e.optimizer.clip = nil
        e.checkpoints.every = 1
        XCTAssertThrowsError(try Trainer(recipe: e).run()) { error in
            guard case DistillationError.nonFinite(let step, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("step \(step)"), "\(error)")
            XCTAssertGreaterThan(step, 1)
            // The state saved before the failing step is intact.
            XCTAssertEqual(try? TrainingState.load(e.output + "/state.safetensors.zst").state.step, step - 1)
        }
    }

    // MARK: bad recipes

    /// The 1-based line of `text` in the recipe body.
    func line(_ body: String, _ text: String) -> Int {
        body.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(text) }! + 1
    }

    func recipeError(_ body: String, _ name: String = #function) -> String {
        do {
            let r = try RecipeParser.load(try Self.setUp(name.filter { $0.isLetter }, recipeBody: body))
            _ = try RecipePlan(r)
            XCTFail("expected an error")
            return ""
        } catch { return "\(error)" }
    }

    func testBadRecipesAreClear() throws {
        let base = Self.baseRecipe.replacingOccurrences(of: "STEPS", with: "5")
        // Unknown key, with its line.
        var bad = base.replacingOccurrences(of: "batch_size = 8", with: "batch_size = 8\nbatchsize = 3")
        var e = recipeError(bad)
        XCTAssertTrue(e.contains("unknown key 'training.batchsize'") && e.contains("recipe.toml:\(line(bad, "batchsize"))"), e)
        XCTAssertTrue(e.contains("did you mean 'batch_size'"), e)
        // Wrong type, with its line.
        bad = base.replacingOccurrences(of: "lr = 1e-3", with: "lr = \"fast\"")
        e = recipeError(bad)
        XCTAssertTrue(e.contains("'optimizer.lr' should be a number, found the string \"fast\"") && e.contains("recipe.toml:\(line(bad, "fast"))"), e)
        // Missing teacher.
        e = recipeError(base.replacingOccurrences(of: "model = \"teacher\"", with: "model = \"nowhere\""))
        XCTAssertTrue(e.contains("teacher.model") && e.contains("nowhere") && e.contains("does not exist"), e)
        e = recipeError(base.replacingOccurrences(of: "[teacher]\nmodel = \"teacher\"", with: ""))
        XCTAssertTrue(e.contains("'teacher' is required"), e)
        // Widths that cannot match without a projection.
        e = recipeError(base.replacingOccurrences(of: "builder = \"layers\"\nlayers = [1]", with: "builder = \"albert\"\nembedding_size = 16\nhidden_size = 32\nnum_heads = 4"))
        XCTAssertTrue(e.contains("hidden size 64") && e.contains("projection = true"), e)
        // …and with one, it validates.
        let ok = try RecipeParser.load(try Self.setUp("projection", recipeBody: base
            .replacingOccurrences(of: "builder = \"layers\"\nlayers = [1]", with: "builder = \"albert\"\nembedding_size = 16\nhidden_size = 32\nnum_heads = 4")
            .replacingOccurrences(of: "alpha_cos = 1.0", with: "alpha_cos = 1.0\nprojection = true")))
        XCTAssertNoThrow(try RecipePlan(ok))
        // Syntax errors carry line and column; bad values name the key.
        e = recipeError(base.replacingOccurrences(of: "seed = 7", with: "seed = = 7"))
        XCTAssertTrue(e.contains("recipe.toml:3:"), e)
        e = recipeError(base.replacingOccurrences(of: "layers = [1]", with: "layers = [1, 9]"))
        XCTAssertTrue(e.contains("teacher layer 9"), e)
        e = recipeError(base.replacingOccurrences(of: "steps = 5", with: "steps = 0"))
        XCTAssertTrue(e.contains("training.steps") && e.contains("outside"), e)
    }

    /// The shipped recipes validate (their teachers permitting).
    func testShippedRecipesParse() throws {
        // Every recipe in recipes/ parses with the inputs .ci/fetch-teacher and .ci/fetch-data
        // bring; two name a teacher made elsewhere: distilbert.toml a bert-base-uncased folder
        // the user supplies, sentiment-matches.toml the classifier sentiment.toml fine-tunes.
        let folder = Fixtures.repositoryRoot + "/recipes"
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".toml") }.sorted()
        XCTAssertTrue(names.contains("sentiment.toml") && names.contains("minilm-relations.toml"), "\(names)")
        for name in names {
            do { _ = try RecipeParser.load(folder + "/" + name) } catch RecipeError.fileNotFound(_, "teacher.model", _, _)
                where ["distilbert.toml", "sentiment-matches.toml"].contains(name) {
                continue
            } catch {
                XCTFail("\(name): \(error)")
            }
        }
        _ = try RecipePlan(try RecipeParser.load(Fixtures.repositoryRoot + "/recipes/demo.toml"))
    }
}
