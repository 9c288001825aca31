import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryEvaluation
import DistilleryTraining
import DistilleryRecipes
import DistilleryCLI

/// Classification tasks at a tiny scale: labelled files, fine-tuning, task recipes (fine-tuned
/// teacher → distilled student, baseline, int8), and fitting an MLM head on a frozen encoder.
/// The head's forward pass and gradients are checked against PyTorch in ClassifierTests.
final class TaskTests: XCTestCase {
    /// A task the tiny models can learn from real sentences: does the sentence mention a woman
    /// ("she", "her")? Balanced, `count` examples, as a TSV with a header line.
    static func writeTask(_ path: String, count: Int, skip: Int) throws {
        let text = try String(contentsOfFile: Fixtures.repositoryRoot + "/recipes/data/demo-train.txt", encoding: .utf8)
        var positive: [String] = [], negative: [String] = []
        var seen = 0
        for line in text.split(separator: "\n") {
            for sentence in line.split(separator: ".") {
                let words = sentence.split(separator: " ").prefix(24).map(String.init)
                guard words.count >= 6 else { continue }
                seen += 1
                if seen <= skip { continue }
                let lower = Set(words.map { $0.lowercased().trimmingCharacters(in: .punctuationCharacters) })
                let s = words.joined(separator: " ").replacingOccurrences(of: "\t", with: " ")
                if lower.contains("she") || lower.contains("her") {
                    if positive.count < count / 2 { positive.append(s) }
                } else if negative.count < count / 2 { negative.append(s) }
            }
            if positive.count >= count / 2 && negative.count >= count / 2 { break }
        }
        var rows = ["label\ttext"]
        for i in 0..<(count / 2) { rows.append("1\t" + positive[i]); rows.append("0\t" + negative[i]) }
        try (rows.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func folder(_ name: String) throws -> String {
        let dir = Fixtures.temporaryDirectory + "/task-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeTask(dir + "/train.tsv", count: 320, skip: 0)
        try writeTask(dir + "/dev.tsv", count: 120, skip: 4000)
        try Fixtures.makeTinyTeacher(at: dir + "/teacher")
        return dir
    }

    // MARK: labelled files

    func testLabelledFiles() throws {
        let dir = Fixtures.temporaryDirectory + "/labelled"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func write(_ name: String, _ s: String) throws -> String { let p = dir + "/" + name; try s.write(toFile: p, atomically: true, encoding: .utf8); return p }

        // TSV, columns by name, integer labels in their numeric order.
        let tsv = try write("a.tsv", "id\ttext\tlabel\n1\tgood film\t1\n2\tbad film\t0\n3\tfine\t2\n")
        let a = try LabelledData.load(tsv, label: .name("label"), text: .name("text"))
        XCTAssertEqual(a.labels, ["0", "1", "2"])
        XCTAssertEqual(a.examples.map(\.label), [1, 0, 2])
        XCTAssertEqual(a.examples[1].text, "bad film")
        XCTAssertEqual(a.examples[2].line, 4)
        // CSV with quotes, commas, doubled quotes and a line break inside a field; names sorted.
        let csv = try write("b.csv", "label,text,pair\npos,\"a, b\",x\nneg,\"say \"\"hi\"\"\nthere\",y\npos,plain,z\n")
        let b = try LabelledData.load(csv, label: .index(0), text: .name("text"), pair: .name("pair"))
        XCTAssertEqual(b.labels, ["neg", "pos"])
        XCTAssertEqual(b.examples.map(\.text), ["a, b", "say \"hi\"\nthere", "plain"])
        XCTAssertEqual(b.examples.map(\.pair), ["x", "y", "z"])
        XCTAssertEqual(b.examples[2].line, 5)

        // Errors name the file, the line, the column.
        func failure(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(failure { _ = try LabelledData.load(tsv, label: .name("sentiment"), text: .name("text")) },
                       "\(tsv): no 'sentiment' column; the header has 'id', 'text', 'label'")
        XCTAssertEqual(failure { _ = try LabelledData.load(tsv, label: .index(7), text: .name("text")) },
                       "\(tsv): no column 7 column; the header has 'id', 'text', 'label'")
        let ragged = try write("c.tsv", "label\ttext\n1\tok\n0\ttoo\tmany\n")
        XCTAssertEqual(failure { _ = try LabelledData.load(ragged, label: .name("label"), text: .name("text")) },
                       "\(ragged):3: 3 fields, the header has 2")
        let dev = try write("dev.tsv", "id\ttext\tlabel\n9\tx\t1\n10\ty\t5\n")
        XCTAssertEqual(failure { _ = try LabelledData.load(dev, label: .name("label"), text: .name("text"), labels: a.labels) },
                       "\(dev):3: label '5' is not one of the training labels (0, 1, 2)")
        let one = try write("one.tsv", "label\ttext\n1\ta\n1\tb\n")
        XCTAssertTrue(failure { _ = try LabelledData.load(one, label: .name("label"), text: .name("text")) }.contains("at least two"))
        let empty = try write("empty.tsv", "label\ttext\n")
        XCTAssertEqual(failure { _ = try LabelledData.load(empty, label: .name("label"), text: .name("text")) }, "\(empty): no examples")
        let open = try write("open.csv", "label,text\n1,\"never closed\n")
        XCTAssertEqual(failure { _ = try LabelledData.load(open, label: .name("label"), text: .name("text")) },
                       "\(open):2: a quoted field is not closed")
        let bad = dir + "/latin1.tsv"
        try Data("label\ttext\n1\tcaf\u{E9}\n".utf8.map { $0 } .prefix(14) + [0xE9, 0x0A]).write(to: URL(fileURLWithPath: bad))
        XCTAssertEqual(failure { _ = try LabelledData.load(bad, label: .name("label"), text: .name("text")) }, "\(bad):2: not valid UTF-8")
    }

    // MARK: fine-tuning

    /// The task files in `dir` and fine-tuning settings for them.
    static func fineTuning(_ dir: String, maxSequenceLength: Int, epochs: Int, lr: Float, batchSize: Int) -> (TaskSpec, TaskTraining) {
        var spec = TaskSpec(train: dir + "/train.tsv", dev: dir + "/dev.tsv")
        spec.maxSequenceLength = maxSequenceLength
        var training = TaskTraining.fineTuning
        training.epochs = epochs
        training.optimizer.lr = lr
        training.batchSize = batchSize
        return (spec, training)
    }

    func testFinetuneLearnsTheTaskAndExports() throws {
        let dir = try Self.folder("finetune")
        let (spec, training) = Self.fineTuning(dir, maxSequenceLength: 48, epochs: 4, lr: 2e-3, batchSize: 16)
        var epochs: [EpochReport] = []
        let s = try FineTuning.run(model: dir + "/teacher", task: spec, training: training, output: dir + "/out") { e in
            if case .classification(let r) = e { epochs.append(r) }
        }
        XCTAssertEqual(s.labels, ["0", "1"])
        XCTAssertEqual(epochs.count, 4)
        XCTAssertEqual(s.epochs.map(\.epoch), [1, 2, 3, 4])
        // The kept epoch is the best one, and the task is learnt.
        XCTAssertEqual(s.best?.accuracy, epochs.map(\.dev.accuracy).max())
        XCTAssertEqual(s.bestEpoch, epochs.firstIndex { $0.dev.accuracy == s.best?.accuracy }! + 1)
        XCTAssertGreaterThan(s.best!.accuracy, 0.8, "\(epochs.map(\.dev.accuracy))")
        XCTAssertLessThan(epochs.last!.trainLoss, epochs.first!.trainLoss)

        // The exported folder is a classifier that scores the dev set as the run said, and the
        // checkpoint holds the same model.
        let folder = try ModelStore.load(s.folder!)
        XCTAssertEqual(folder.model.config.numLabels, 2)
        XCTAssertEqual(folder.model.config.labels, ["0", "1"])
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.folder! + "/config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["BertForSequenceClassification"])
        let tokenizer = try BertTokenizer.of(model: s.folder!, files: folder.tokenizer)
        let data = try TaskData(spec, tokenizer: tokenizer, maxPositions: 64)
        let again = try ClassificationEvaluator.evaluate(folder.model, on: data.dev, padId: tokenizer.padId)
        XCTAssertEqual(again.accuracy, s.best!.accuracy, accuracy: 1e-9)
        let ck = try ModelStore.load(s.checkpoint!)
        XCTAssertTrue(UnsafeBufferPointer(start: ck.model.parameters.base, count: ck.model.layout.count)
            .elementsEqual(UnsafeBufferPointer(start: folder.model.parameters.base, count: folder.model.layout.count)))

        // metrics.jsonl: a line per step and per epoch, tagged with the stage.
        let lines = try String(contentsOfFile: dir + "/out/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let epochLines = lines.filter { $0.contains("\"dev_accuracy\"") }
        XCTAssertEqual(epochLines.count, 4)
        XCTAssertTrue(lines.allSatisfy { $0.contains("\"stage\":\"classifier\"") })
    }

    /// A headless encoder whose file holds a pooler (all-MiniLM-L6-v2: sentence-transformers
    /// keeps BERT's pretrained pooler without using it) starts its classification head from that
    /// pooler, as transformers' BertForSequenceClassification.from_pretrained does; only the
    /// classifier is new. (At a learning rate of 1e-9 one step moves no weight measurably.)
    func testFineTuningStartsFromTheFilesPooler() throws {
        let miniLM = try Fixtures.miniLM()
        let dir = try Self.folder("finetune-pooler")
        let (spec, training) = Self.fineTuning(dir, maxSequenceLength: 16, epochs: 1, lr: 1e-9, batchSize: 512)
        let s = try FineTuning.run(model: miniLM, task: spec, training: training, output: dir + "/pooler-out")
        let tuned = try ModelStore.load(s.folder!).model
        let file = try ModelStore.load(miniLM, options: LoadOptions(dropPretrainingHeads: true, dropMLMHead: true)).model
        XCTAssertTrue(file.config.hasPooler)
        for name in ["pooler.weight", "pooler.bias"] {
            let a = tuned.layout.slot(name)!, b = file.layout.slot(name)!
            XCTAssertEqual(a.count, b.count)
            var worst: Float = 0
            for i in 0..<a.count { worst = max(worst, abs(tuned.p(a.offset)[i] - file.p(b.offset)[i])) }
            XCTAssertLessThan(worst, 1e-6, name)
        }
        XCTAssertEqual(tuned.config.numLabels, 2)
    }

    func testFinetuneCommandRefusesBadInput() throws {
        let dir = try Self.folder("finetune-cli")
        XCTAssertThrowsError(try distill(["finetune", "--model", dir + "/teacher", "--train", dir + "/train.tsv", "--dev", dir + "/dev.tsv",
                                          "--out", dir + "/out", "--label", "sentiment"])) { e in
            XCTAssertEqual("\(e)", "\(dir)/train.tsv: no 'sentiment' column; the header has 'label', 'text'")
        }
        XCTAssertThrowsError(try distill(["finetune", "--model", dir + "/teacher", "--train", dir + "/train.tsv", "--dev", dir + "/dev.tsv",
                                          "--out", dir + "/out", "--epochs", "0"]))
        XCTAssertThrowsError(try distill(["finetune", "--model", dir + "/teacher", "--train", dir + "/train.tsv", "--dev", dir + "/dev.tsv",
                                          "--out", dir + "/out", "--batches", "sorted"])) { e in
            XCTAssertTrue(Distill.message(for: e).contains("bucketed"), Distill.message(for: e))
        }
    }

    // MARK: task recipes

    func testTaskRecipeFineTunesDistilsAndQuantizes() throws {
        let dir = try Self.folder("recipe")
        let recipe = dir + "/task.toml"
        try """
        name = "tiny-task"
        output = "run"
        seed = 3

        [teacher]
        model = "teacher"
        [teacher.finetune]
        epochs = 3
        lr = 2e-3
        batch_size = 16

        [student]
        builder = "layers"
        layers = [1]

        [task]
        train = "train.tsv"
        dev = "dev.tsv"
        max_seq_len = 48
        baseline = true

        [loss]
        temperature = 2.0
        alpha_soft = 1.0
        alpha_hard = 0.5

        [optimizer]
        lr = 2e-3

        [training]
        epochs = 2
        batch_size = 16

        [export]
        int8 = true
        """.write(toFile: recipe, atomically: true, encoding: .utf8)
        let r = try RecipeParser.load(recipe)
        XCTAssertEqual(r.task?.spec.maxSequenceLength, 48)
        XCTAssertEqual(r.task?.teacherFineTune?.epochs, 3)
        XCTAssertEqual(r.loss.alphaCE, 0)
        XCTAssertEqual(r.loss.alphaSoft, 1)
        let plan = try RecipePlan(r)
        XCTAssertEqual(plan.teacher.numLabels, 2)
        XCTAssertEqual(plan.student.numLabels, 2)
        XCTAssertEqual(plan.student.numLayers, 1)

        let summary = try Trainer(recipe: r).run()
        let t = try XCTUnwrap(summary.task)
        XCTAssertEqual(t.teacherFineTune?.epochs.count, 3)
        XCTAssertEqual(t.student?.epochs.count, 2)
        XCTAssertEqual(t.baseline?.epochs.count, 2)
        // The teacher's dev score is its best fine-tuning epoch's; it learnt the task.
        XCTAssertEqual(t.teacher!.accuracy, t.teacherFineTune!.best!.accuracy, accuracy: 1e-9)
        XCTAssertGreaterThan(t.teacher!.accuracy, 0.75)
        // The distilled student is scored against the teacher too; the int8 student agrees with it.
        XCTAssertNotNil(t.student?.best?.agreement)
        XCTAssertGreaterThan(t.int8!.agreement!, 0.9)
        XCTAssertEqual(t.int8!.accuracy, t.student!.best!.accuracy, accuracy: 0.05)
        for f in ["teacher/config.json", "teacher.safetensors.zst", "student/config.json", "student.safetensors.zst",
                  "baseline/config.json", "student-int8.safetensors.zst", "metrics.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/run/" + f), f)
        }
        let stages = Set(try String(contentsOfFile: dir + "/run/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line -> String? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["stage"] as? String
        })
        XCTAssertEqual(stages, ["teacher", "student", "baseline"])

        // `distill eval --labelled` scores the written classifiers from their files as the run did.
        let q = try ModelStore.open(dir + "/run/student-int8.safetensors.zst"), fp = try ModelStore.open(dir + "/run/student")
        let rescored = try ClassificationEvaluator.evaluate(q.model, name: "int8", file: dir + "/dev.tsv", label: .name("label"), text: .name("text"),
                                                            tokenizer: try BertTokenizer.shared(by: [q, fp]), maxSequenceLength: 48,
                                                            reference: (fp.model, "fp32"))
        XCTAssertEqual(rescored, t.int8)
        try distill(["eval", "--model", dir + "/run/student-int8.safetensors.zst", "--labelled", dir + "/dev.tsv", "--reference", dir + "/run/student",
                     "--max-seq-len", "48", "--json"])
        func evalFails(_ args: [String], _ mentions: [String]) {
            XCTAssertThrowsError(try distill(["eval"] + args)) { e in
                let m = "\(e)" + Distill.message(for: e)
                for s in mentions { XCTAssertTrue(m.contains(s), "'\(m)' does not mention '\(s)'") }
            }
        }
        evalFails(["--model", dir + "/teacher", "--labelled", dir + "/dev.tsv"], ["no classification head"])
        try "label\ttext\n1\tgood\n7\tstrange\n".write(toFile: dir + "/bad.tsv", atomically: true, encoding: .utf8)
        evalFails(["--model", dir + "/run/student", "--labelled", dir + "/bad.tsv"], ["bad.tsv:3", "'7'"])
        evalFails(["--model", dir + "/run/student", "--labelled", dir + "/dev.tsv", "--data", dir + "/dev.tsv"], ["one of them"])
        evalFails(["--model", dir + "/run/student", "--data", dir + "/dev.tsv", "--label", "label"], ["--label", "--labelled"])
        evalFails(["--model", dir + "/run/student", "--labelled", dir + "/dev.tsv", "--batches", "2"], ["--batches"])

        // A second run refuses the folder; --resume reuses the fine-tuned teacher.
        XCTAssertThrowsError(try Trainer(recipe: r).run()) { XCTAssertTrue("\($0)".contains("--resume")) }
        var messages: [String] = []
        let again = try Trainer(recipe: r).run(resume: true, events: { if case .message(let m) = $0 { messages.append(m) } })
        XCTAssertNil(again.task?.teacherFineTune)
        XCTAssertEqual(again.task!.teacher!.accuracy, t.teacher!.accuracy, accuracy: 1e-9)
        XCTAssertTrue(messages.contains { $0.contains("reusing") })

        // A second recipe naming a shared teacher folder fine-tunes once; a third with the same
        // settings reuses it, one with other settings does not.
        let shared = try String(contentsOfFile: recipe, encoding: .utf8)
            .replacingOccurrences(of: "batch_size = 16\n\n[student]", with: "batch_size = 16\noutput = \"shared-teacher\"\n\n[student]")
            .replacingOccurrences(of: "baseline = true", with: "baseline = false").replacingOccurrences(of: "int8 = true", with: "int8 = false")
        // Plain shuffled batches are other settings too; that teacher still learns the task.
        let shuffled = shared.replacingOccurrences(of: "batch_size = 16\noutput", with: "batch_size = 16\nbatches = \"shuffled\"\noutput")
        for (i, (text, fineTunes)) in [(shared, true), (shared, false), (shared.replacingOccurrences(of: "epochs = 3", with: "epochs = 1"), true),
                                       (shuffled, true)].enumerated() {
            let p = dir + "/shared-\(i).toml"
            try text.replacingOccurrences(of: "output = \"run\"", with: "output = \"run-\(i)\"").write(toFile: p, atomically: true, encoding: .utf8)
            let parsed = try RecipeParser.load(p)
            XCTAssertEqual(parsed.task?.teacherFineTune?.batches, i == 3 ? .shuffled : .bucketed)
            let s = try Trainer(recipe: parsed).run()
            XCTAssertEqual(s.task?.teacherFineTune != nil, fineTunes, "recipe \(i)")
            XCTAssertEqual(s.task?.teacherFolder, dir + "/shared-teacher")
            if i == 3 { XCTAssertGreaterThan(s.task!.teacher!.accuracy, 0.75) }
        }
    }

    func testTaskRecipeRefusesWhatCannotWork() throws {
        let dir = try Self.folder("recipe-bad")
        func problem(_ body: String) -> String {
            let p = dir + "/bad.toml"
            try! body.write(toFile: p, atomically: true, encoding: .utf8)
            do { _ = try RecipePlan(try RecipeParser.load(p)); return "accepted" } catch { return "\(error)" }
        }
        let head = "[teacher]\nmodel = \"teacher\"\n[student]\nbuilder = \"layers\"\nlayers = [0]\n"
        // A teacher without a classifier and no fine-tuning stage.
        XCTAssertTrue(problem(head + "[task]\ntrain = \"train.tsv\"\ndev = \"dev.tsv\"\n").contains("add [teacher.finetune]"))
        // Masked-text losses in a task recipe; class losses without a task.
        XCTAssertTrue(problem(head + "[teacher.finetune]\n[task]\ntrain = \"train.tsv\"\ndev = \"dev.tsv\"\n[loss]\nalpha_mlm = 1.0\n")
            .contains("bad.toml:11: 'loss.alpha_mlm'"))
        XCTAssertTrue(problem(head + "[data]\ntrain = \"train.tsv\"\n[loss]\nalpha_soft = 1.0\n[training]\nsteps = 3\n").contains("need a [task] table"))
        // Fine-tuning without a task, steps in a task recipe, a missing dev file.
        XCTAssertTrue(problem(head + "[teacher.finetune]\n[data]\ntrain = \"train.tsv\"\n[training]\nsteps = 3\n").contains("fine-tuning needs a [task]"))
        XCTAssertTrue(problem(head + "[teacher.finetune]\n[task]\ntrain = \"train.tsv\"\ndev = \"dev.tsv\"\n[training]\nsteps = 5\n").contains("whole epochs"))
        XCTAssertTrue(problem(head + "[teacher.finetune]\n[task]\ntrain = \"train.tsv\"\ndev = \"nope.tsv\"\n").contains("nope.tsv does not exist"))
        XCTAssertTrue(problem(head + "[teacher.finetune]\nbatches = \"sorted\"\n[task]\ntrain = \"train.tsv\"\ndev = \"dev.tsv\"\n")
            .contains("bad.toml:7: 'teacher.finetune.batches'"))
    }

    // MARK: fitting a head

    func testFitHeadTrainsOnlyTheHead() throws {
        let dir = try Self.folder("fit-head")
        // The tiny teacher without its MLM head: an encoder like a sentence-transformers model.
        let encoder = try ModelStore.load(dir + "/teacher", options: LoadOptions(dropPooler: true, dropPretrainingHeads: true, dropMLMHead: true)).model
        XCTAssertFalse(encoder.config.hasMLMHead)
        var settings = HeadFitSettings()
        settings.steps = 40
        settings.batchSize = 16
        settings.lr = 3e-3
        var losses: [Double] = []
        let s = try HeadFitter.run(model: dir + "/teacher", train: [Fixtures.repositoryRoot + "/recipes/data/demo-train.txt"],
                                   heldout: [Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"], output: dir + "/mlm",
                                   maxSequenceLength: 48, settings: settings, evaluationBatches: 4) { e in
            if case .step(let r) = e { losses.append(r.losses.mlm) }
        }
        XCTAssertEqual(losses.count, 40)
        XCTAssertLessThan(losses.suffix(5).reduce(0, +), losses.prefix(5).reduce(0, +))
        XCTAssertNotNil(s.heldout?.mlmAccuracy)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.fit-head-data.tmp-\(getpid())"), "temporary data removed")

        // Every encoder weight is as loaded; the head is new and says so.
        let fitted = try ModelStore.load(dir + "/mlm")
        XCTAssertTrue(fitted.model.config.hasMLMHead)
        for slot in encoder.layout.slots {
            let other = fitted.model.layout.slot(slot.name)!
            XCTAssertTrue(UnsafeBufferPointer(start: encoder.p(slot.offset), count: slot.count)
                .elementsEqual(UnsafeBufferPointer(start: fitted.model.p(other.offset), count: slot.count)), slot.name)
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/mlm/config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["BertForMaskedLM"])
        XCTAssertEqual(config["distillery_head"] as? String, HeadFitter.note)
        let st = try SafetensorsFile(path: dir + "/mlm/model.safetensors")
        XCTAssertEqual(st.metadata["distillery_head"], HeadFitter.note)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/mlm.safetensors.zst"))
    }
}
