import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant
import DistilleryTraining
import DistilleryRecipes

/// Layer matches (hidden MSE and cosine through projections, sentence-embedding MSE, attention KL and squared error
/// with equal and different head counts, MiniLMv2 relations) against PyTorch autograd
/// (Fixtures/make_match_fixtures.py): every loss within 1e-5 relative of the float64
/// reference, every gradient of the total within 1e-4 scaled by max(1, max |reference|), and
/// each match's own gradient within 1e-3 of its largest entry (the attention losses are tiny,
/// so the scaled test alone could not fail for them).
final class MatchTests: XCTestCase {
    struct Reference: Decodable {
        struct Match: Decodable {
            let kind: String
            let teacher_layer: Int
            let student_layer: Int
            let weight: Float
            let relation_heads: Int?
            let loss_float64: Double
        }
        let matches: [Match]
        let loss_total_float64: Double
    }

    func load(_ fixture: String) throws -> (ref: Reference, file: SafetensorsFile, batch: TokenBatch, student: EncoderModel, teacher: EncoderModel) {
        let dir = Fixtures.path(fixture)
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/matches.json")))
        let file = try SafetensorsFile(path: dir + "/reference.safetensors")
        let batch = try TokenBatch.read(from: file)
        let student = try HuggingFaceFolder.load(dir).model
        let teacher = try HuggingFaceFolder.load(Fixtures.path("tiny-bert-mlm"), options: LoadOptions(dropMLMHead: true)).model
        return (ref, file, batch, student, teacher)
    }

    func matches(_ r: Reference, only: Int? = nil) -> [LayerMatch] {
        r.matches.enumerated().filter { only == nil || $0.offset == only }.map { i, m in
            LayerMatch(kind: LayerMatch.Kind(rawValue: m.kind)!, teacherLayer: m.teacher_layer, studentLayer: m.student_layer,
                       weight: only == nil ? m.weight : 1, relationHeads: m.relation_heads)
        }
    }

    /// One step with the fixture's matches (or match `only` alone, weight 1); projections from the reference.
    func step(_ fixture: String, only: Int? = nil) throws -> (TrainableParameters, LossValues, SafetensorsFile, Reference, [Int]) {
        let (ref, file, batch, student, teacher) = try load(fixture)
        var settings = LossSettings()
        settings.alphaCE = 0; settings.alphaMLM = 0; settings.alphaCos = 0
        settings.matches = matches(ref, only: only)
        let resolved = try settings.resolvedMatches(teacher: teacher.config, student: student.config)
        let params = TrainableParameters(model: student, projectTo: nil,
                                         matchProjections: LayerMatch.projections(resolved, teacher: teacher.config, student: student.config))
        // Our projection i is the fixture's proj.<original index>.
        let original = only.map { [$0] } ?? Array(ref.matches.indices)
        for (i, p) in params.matchProjections {
            let w = try file.floats("proj.\(original[i]).weight"), b = try file.floats("proj.\(original[i]).bias")
            XCTAssertEqual(w.count, p.to * p.from)
            params.parameters.base.advanced(by: p.weight).update(from: w, count: w.count)
            params.parameters.base.advanced(by: p.bias).update(from: b, count: b.count)
        }
        let step = try DistillationStep(teacher: teacher, params: params, settings: settings, maxB: batch.B, maxS: batch.S)
        let values = try step.run(batch, labels: [])
        return (params, values, file, ref, original)
    }

    /// The largest difference over every student parameter and projection, scaled as the
    /// caller says, with the gradients named `prefix` + name.
    func gradientDifferences(_ params: TrainableParameters, _ file: SafetensorsFile, prefix: String, original: [Int])
        throws -> [(name: String, diff: Float, maxRef: Float)] {
        let m = params.student, table = HuggingFaceNames(layout: m.layout)
        var out: [(String, Float, Float)] = []
        for (ours, hf) in table.pairs {
            let slot = m.layout.slot(ours)!
            let name = table.fileName(hf)
            let expected = try file.floats(prefix + name)
            let got = Array(UnsafeBufferPointer(start: params.gradients.base + slot.offset, count: slot.count))
            out.append((name, maxAbsDifference(got, expected), expected.map(abs).max() ?? 0))
        }
        for (i, p) in params.matchProjections {
            for (part, offset, count) in [("weight", p.weight, p.to * p.from), ("bias", p.bias, p.to)] {
                let name = "proj.\(original[i]).\(part)"
                let expected = try file.floats(prefix + name)
                let got = Array(UnsafeBufferPointer(start: params.gradients.base + offset, count: count))
                out.append((name, maxAbsDifference(got, expected), expected.map(abs).max() ?? 0))
            }
        }
        return out
    }

    func checkAll(_ fixture: String) throws {
        let (params, values, file, ref, original) = try step(fixture)
        XCTAssertEqual(values.matches.count, ref.matches.count)
        for (i, m) in ref.matches.enumerated() {
            XCTAssertEqual(values.matches[i], m.loss_float64, accuracy: 1e-5 * abs(m.loss_float64), "\(fixture) loss.\(i) \(m.kind)")
        }
        XCTAssertEqual(values.total, ref.loss_total_float64, accuracy: 1e-5 * ref.loss_total_float64, "\(fixture) total")
        var worst: Float = 0
        for g in try gradientDifferences(params, file, prefix: "grad.total.", original: original) {
            let d = g.diff / max(1, g.maxRef)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-4, "\(fixture) grad.total.\(g.name)")
        }
        print("\(fixture): worst scaled gradient difference of the total \(worst)")

        // Each match alone: its gradient relative to its own scale.
        for i in ref.matches.indices {
            let (p, v, f, _, orig) = try step(fixture, only: i)
            XCTAssertEqual(v.matches[0], ref.matches[i].loss_float64, accuracy: 1e-5 * abs(ref.matches[i].loss_float64))
            let diffs = try gradientDifferences(p, f, prefix: "grad.\(i).", original: orig)
            let scale = diffs.map(\.maxRef).max()!
            XCTAssertGreaterThan(scale, 0)
            let worstOne = diffs.map(\.diff).max()!
            XCTAssertLessThanOrEqual(worstOne, 1e-3 * scale, "\(fixture) match \(i) \(ref.matches[i].kind): \(diffs.max { $0.diff < $1.diff }!.name)")
        }
    }

    func testSameWidth() throws { try checkAll("match-same") }
    func testNarrowerStudent() throws { try checkAll("match-narrow") }
    /// Sentence embeddings (mean-pooled hidden states) through projections and at one width.
    func testSentenceMatchesNarrower() throws { try checkAll("match-sentence") }
    /// (A hidden-state match on the same student layer first: both gradients must add up.)
    func testSentenceMatchesSameWidth() throws { try checkAll("match-sentence-same") }

    func testUniformMapAndRefusals() throws {
        let (_, _, _, student, teacher) = try load("match-narrow")
        var s = LossSettings()
        s.matches = [LayerMatch(kind: .hiddenMSE), LayerMatch(kind: .relation, relationHeads: 2)]
        let r = try s.resolvedMatches(teacher: teacher.config, student: student.config)
        XCTAssertEqual(r.map(\.kind), [.hiddenMSE, .hiddenMSE, .hiddenMSE, .relation, .relation])
        XCTAssertEqual(r.map { $0.teacherLayer! }, [0, 1, 2, 1, 2])
        XCTAssertEqual(r.map { $0.studentLayer! }, [0, 1, 2, 1, 2])
        func refused(_ m: LayerMatch) -> String {
            var s = LossSettings(); s.matches = [m]
            do { _ = try s.resolvedMatches(teacher: teacher.config, student: student.config); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(refused(LayerMatch(kind: .attentionKL, teacherLayer: 0, studentLayer: 1)).contains("teacher layer 0 does not exist (1…2"))
        XCTAssertTrue(refused(LayerMatch(kind: .hiddenCos, teacherLayer: 1, studentLayer: 3)).contains("student layer 3"))
        XCTAssertTrue(refused(LayerMatch(kind: .relation, teacherLayer: 1, studentLayer: 1, relationHeads: 3)).contains("must divide both widths"))
        XCTAssertTrue(refused(LayerMatch(kind: .hiddenMSE, teacherLayer: 1)).contains("or neither"))
    }
}

/// Layer matches and schedules in recipes, through a training run.
final class MatchRecipeTests: XCTestCase {
    func testSchedules() {
        let lin = ScheduledValue(start: 4, end: 1)
        XCTAssertEqual(lin.at(0), 4); XCTAssertEqual(lin.at(0.5), 2.5); XCTAssertEqual(lin.at(1), 1); XCTAssertEqual(lin.at(2), 1)
        let cos = ScheduledValue(start: 0, end: 2, shape: .cosine, until: 0.5)
        XCTAssertEqual(cos.at(0), 0); XCTAssertEqual(cos.at(0.25), 1, accuracy: 1e-6); XCTAssertEqual(cos.at(0.5), 2); XCTAssertEqual(cos.at(0.9), 2)
        XCTAssertEqual(cos.at(0.125), Float((1 - Foundation.cos(Double.pi / 4)) / 2 * 2), accuracy: 1e-6)
    }

    func testNarrowStudentWithMatchesAndSchedules() throws {
        // A narrower student (config builder, H = 32) of the tiny teacher (H = 64): hidden
        // matches need projections; relations and head-averaged attention need none.
        let body = TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "8")
            .replacingOccurrences(of: """
            [student]
            builder = "layers"
            layers = [1]
            dropout = 0.1
            """, with: """
            [student]
            builder = "config"
            config = { model_type = "bert", vocab_size = 512, hidden_size = 32, num_hidden_layers = 2, num_attention_heads = 2, intermediate_size = 64, max_position_embeddings = 64 }
            """)
            .replacingOccurrences(of: """
            [loss]
            temperature = 2.0
            alpha_ce = 5.0
            alpha_mlm = 2.0
            alpha_cos = 1.0
            """, with: """
            [loss]
            temperature = { start = 4.0, end = 1.0 }
            alpha_ce = 1.0
            alpha_mlm = 1.0
            alpha_cos = 0.0

            [[loss.match]]
            kind = "hidden_mse"

            [[loss.match]]
            kind = "relation"
            teacher = 2
            student = 2
            relation_heads = 4
            weight = { start = 0.0, end = 2.0, shape = "cosine" }

            [[loss.match]]
            kind = "attention_kl"
            teacher = 2
            student = 1
            weight = 0.5
            """)
        let recipe = try TrainerTests.setUp("matches", recipeBody: body)
        let r = try RecipeParser.load(recipe)
        XCTAssertEqual(r.loss.matches.map(\.kind), [.hiddenMSE, .relation, .attentionKL])
        XCTAssertEqual(r.loss.schedules["temperature"], ScheduledValue(start: 4, end: 1))
        XCTAssertEqual(r.loss.matches[1].weightSchedule, ScheduledValue(start: 0, end: 2, shape: .cosine))
        _ = try RecipePlan(r)

        var reports: [StepReport] = []
        let summary = try Trainer(recipe: r).run(events: { if case .step(let s) = $0 { reports.append(s) } })
        XCTAssertEqual(reports.count, 8)
        // Three hidden matches (uniform map 0, 1, 2), one relation, one attention map.
        XCTAssertEqual(reports[0].losses.matches.count, 5)
        XCTAssertTrue(reports.allSatisfy { $0.losses.matches.allSatisfy { $0 > 0 && $0.isFinite } })
        // The schedules move as the steps go: T from 4 at the first step, the relation weight from 0.
        XCTAssertEqual(reports[0].scheduled["temperature"]!, 4, accuracy: 1e-6)
        XCTAssertEqual(reports[4].scheduled["temperature"]!, 4 - 3 * 4 / 8, accuracy: 1e-6)
        XCTAssertEqual(reports[0].scheduled["match_1_weight"]!, 0, accuracy: 1e-6)
        XCTAssertGreaterThan(reports[7].scheduled["match_1_weight"]!, 1.5)
        // At the first step the relation weight is 0: the total leaves it out.
        let l = reports[0].losses
        let expected = 1.0 * l.ce + 1.0 * l.mlm + 1.0 * (l.matches[0] + l.matches[1] + l.matches[2]) + 0.5 * l.matches[4]
        XCTAssertEqual(l.total, expected, accuracy: 1e-9 * max(1, expected))
        let lines = try String(contentsOfFile: r.output + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { !$0.contains("\"eval\"") }
        XCTAssertTrue(lines[0].contains("\"temperature\":4") && lines[0].contains("\"loss_match_4\""), String(lines[0]))
        // The projections trained with the student are not part of it.
        let student = try ModelStore.load(summary.studentCheckpoint!).model
        XCTAssertEqual(student.config.hiddenSize, 32)
        XCTAssertEqual(student.layout.count, student.layout.modelCount)
        XCTAssertNil(student.layout.slots.first { $0.name.hasPrefix("distill.") })
    }

    func testBadMatchesInRecipes() throws {
        func problem(_ loss: String) -> String {
            let body = TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2")
                .replacingOccurrences(of: "alpha_cos = 1.0", with: "alpha_cos = 1.0\n" + loss)
            do { _ = try RecipePlan(try RecipeParser.load(try TrainerTests.setUp("bad-match", recipeBody: body))); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(problem("[[loss.match]]\nkind = \"attention\"\n").contains("is not one of \"hidden_mse\""))
        XCTAssertTrue(problem("[[loss.match]]\nkind = \"hidden_mse\"\nteacher = 1\n").contains("or neither"))
        XCTAssertTrue(problem("[[loss.match]]\nkind = \"hidden_cos\"\nrelation_heads = 2\n").contains("only relation matches"))
        XCTAssertTrue(problem("[[loss.match]]\nkind = \"attention_mse\"\nteacher = 3\nstudent = 1\n").contains("teacher layer 3 does not exist"))
        XCTAssertTrue(problem("[[loss.match]]\nkind = \"relation\"\nweight = { start = 1.0 }\n").contains("'loss.match[1].weight.end' is required"))
        XCTAssertTrue(problem("[[loss.match]]\nkind = \"relation\"\nfoo = 1\n").contains("unknown key 'loss.match[1].foo'"))
        let body = TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2")
            .replacingOccurrences(of: "temperature = 2.0", with: "temperature = { start = 2.0, end = 1.0, shape = \"step\" }")
        XCTAssertThrowsError(try RecipeParser.load(try TrainerTests.setUp("bad-schedule", recipeBody: body))) {
            XCTAssertTrue("\($0)".contains("'loss.temperature.shape': \"step\" is not one of \"linear\", \"cosine\""), "\($0)")
        }
    }
}
