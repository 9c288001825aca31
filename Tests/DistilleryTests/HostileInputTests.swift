import Foundation
import XCTest
import DistilleryTensor
import DistilleryFormats
import DistilleryModels
import DistilleryQuant
import DistilleryText
import DistilleryTraining
import DistilleryCLI
import DistilleryEvaluation

/// Careless and hostile input, class by class, through the commands: each gets an error that
/// names what is wrong (the file, field, tensor or line), never a crash, an allocation sized by
/// an unchecked number, or a success with NaN.
final class HostileInputTests: XCTestCase {
    let dir = Fixtures.temporaryDirectory + "/hostile"

    override func setUpWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    /// Runs a command line and expects it to fail with every text in `mentions` in the message.
    func expectFailure(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            try distill(args)
            XCTFail("succeeded: distill \(args.joined(separator: " "))", file: file, line: line)
        } catch {
            let message = "\(error)" + (Distill.message(for: error))
            for m in mentions {
                XCTAssertTrue(message.contains(m), "distill \(args.first ?? ""): '\(message)' does not mention '\(m)'", file: file, line: line)
            }
            XCTAssertFalse(message.contains("NSCocoaErrorDomain"), "raw Foundation error: \(message)", file: file, line: line)
        }
    }

    /// The tiny teacher with one config.json field replaced.
    func teacher(_ name: String, config change: [String: Any]) throws -> String {
        let folder = dir + "/" + name
        try Fixtures.makeTinyTeacher(at: folder)
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))) as! [String: Any]
        for (k, v) in change { json[k] = v }
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: folder + "/config.json"))
        return folder
    }

    // MARK: sizes

    func testSizesFromConfigsAreCheckedBeforeAllocating() throws {
        let batch = Fixtures.path("tiny-bert-mlm/reference.safetensors")
        for (field, value) in [("vocab_size", 1_000_000_000_000_000_000), ("intermediate_size", 1_000_000_000_000_000),
                               ("num_hidden_layers", 100_000_000), ("max_position_embeddings", 4_294_967_296),
                               ("type_vocab_size", 1_000_000_000_000_000_000), ("hidden_size", -64)] as [(String, Int)] {
            let folder = try teacher("big-\(field)", config: [field: value])
            for args in [["params", folder + "/config.json"], ["params", folder],
                         ["forward", "--model", folder, "--batch", batch, "--out", dir + "/out.safetensors"],
                         ["eval", "--model", folder, "--data", Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"]] {
                expectFailure(args, mentions: [field])
            }
        }
        // Within every limit, but more than the memory there is: refused with the bytes needed.
        let big = try teacher("too-big", config: ["vocab_size": 2_000_000_000, "hidden_size": 4096, "num_attention_heads": 64])
        expectFailure(["params", big + "/config.json"], mentions: ["vocab_size 2000000000", "needs", "available"])
        // Shapes on the command line.
        expectFailure(["bench", "forward", "--batch", "4611686018427387904x2"], mentions: ["4611686018427387904x2"])
        expectFailure(["bench", "forward", "--batch", "8x"], mentions: ["8x"])
        expectFailure(["compare", Fixtures.path("tiny-bert-mlm"), "--data", "x", "--shapes", "0x128"], mentions: ["0x128"])
        expectFailure(["prepare", "--tokenizer", Fixtures.path("tiny-vocab/vocab.txt"), "--input", "x", "--out", dir + "/x.tok",
                       "--max-seq-len", "4294967296"], mentions: ["--max-seq-len"])
        expectFailure(["bench", "distill", "--cases", "a,z"], mentions: ["'z'"])
        expectFailure(["bench", "checkpoint", "--model", "x", "--levels", "3,99"], mentions: ["99"])
        expectFailure(["forward", "--model", Fixtures.path("tiny-bert-mlm"), "--batch", batch, "--out", dir + "/o", "--threads", "0"],
                      mentions: ["--threads"])
        // DISTILL_MEMORY_LIMIT: sizes parse; NaN, ∞, negative and out-of-range ones are not
        // sizes (they trapped converting to Int), so the variable is ignored.
        XCTAssertEqual(MemoryBudget.parse("64M"), 64 << 20)
        XCTAssertEqual(MemoryBudget.parse(" 1.5g"), 3 << 29)
        XCTAssertEqual(MemoryBudget.parse("123"), 123)
        for bad in ["nanG", "infK", "1e300G", "-5", "-1M", "9223372036854775808", "8192P", "", "G"] {
            XCTAssertNil(MemoryBudget.parse(bad), bad)
        }
        setenv("DISTILL_MEMORY_LIMIT", "nanG", 1)
        XCTAssertGreaterThan(MemoryBudget.bytes, 0)
        // A batch larger than memory allows, from a recipe: validate refuses it as run would.
        setenv("DISTILL_MEMORY_LIMIT", "64M", 1)
        defer { unsetenv("DISTILL_MEMORY_LIMIT") }
        let recipe = try TrainerTests.setUp("hostile-batch", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2")
            .replacingOccurrences(of: "batch_size = 8", with: "batch_size = 65536"))
        expectFailure(["validate", recipe], mentions: ["65536", "needs", "available"])
        expectFailure(["run", recipe], mentions: ["65536", "needs", "available"])
    }

    // MARK: values used as indices, hyper-parameters

    func testLabelsAndStepSettings() throws {
        let fixture = Fixtures.path("distill-step-bert")
        let ref = try SafetensorsFile(path: fixture + "/reference.safetensors")
        func batch(labels change: (inout [Int]) -> Void, _ name: String) throws -> String {
            var labels = try ref.integers("mlm_labels")
            change(&labels)
            var tensors: [OwnedTensor] = []
            for t in ref.tensors where ["input_ids", "attention_mask", "token_type_ids"].contains(t.name) {
                tensors.append(OwnedTensor(name: t.name, dtype: .I64, shape: t.shape, data: try ref.integers(t.name).flatMap { v in
                    withUnsafeBytes(of: Int64(v).littleEndian) { Array($0) } }))
            }
            tensors.append(OwnedTensor(name: "mlm_labels", dtype: .I64, shape: ref.info("mlm_labels")!.shape,
                                       data: labels.flatMap { v in withUnsafeBytes(of: Int64(v).littleEndian) { Array($0) } }))
            let path = dir + "/\(name).safetensors"
            try Safetensors.write(tensors, to: path)
            return path
        }
        func step(_ b: String, _ s: String = fixture + "/step.json") -> [String] {
            ["debug-step", "--teacher", Fixtures.path("tiny-bert-mlm"), "--student", fixture, "--batch", b, "--step", s, "--out", dir + "/o.safetensors"]
        }
        expectFailure(step(try batch(labels: { $0[3] = 512 }, "label-vocab")), mentions: ["mlm_labels", "512"])
        expectFailure(step(try batch(labels: { $0[3] = 100_000 }, "label-far")), mentions: ["mlm_labels", "100000"])
        expectFailure(step(try batch(labels: { $0[3] = -5 }, "label-negative")), mentions: ["mlm_labels", "-5", "−100"])
        expectFailure(step(try batch(labels: { $0[3] = 1 << 40 }, "label-huge")), mentions: ["mlm_labels"])
        let settings = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/step.json"))) as! [String: Any]
        for (key, value, field) in [("temperature", 0.0 as Any, "temperature"), ("adamw", ["lr": 1e-3, "betas": [1.0, 0.98], "eps": 1e-6, "weight_decay": 0.01] as Any, "betas"),
                                    ("adamw", ["lr": 1e-3, "betas": [0.9, 0.98], "eps": 0.0, "weight_decay": 0.01] as Any, "eps")] {
            var s = settings
            s[key] = value
            let path = dir + "/step-\(field).json"
            try JSONSerialization.data(withJSONObject: s).write(to: URL(fileURLWithPath: path))
            expectFailure(step(fixture + "/reference.safetensors", path), mentions: [field])
        }
        let eps = try teacher("negative-eps", config: ["layer_norm_eps": -1e-5])
        expectFailure(["forward", "--model", eps, "--batch", Fixtures.path("tiny-bert-mlm/reference.safetensors"), "--out", dir + "/o"],
                      mentions: ["layer_norm_eps"])
        // A classifier naming one class twice: predictions could not be told apart (and a
        // label table built from the names would trap).
        let twice = dir + "/classes-twice"
        try? FileManager.default.removeItem(atPath: twice)
        try FileManager.default.copyItem(atPath: Fixtures.path("classifier-bert"), toPath: twice)
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: twice + "/config.json"))) as! [String: Any]
        json["id2label"] = ["0": "good", "1": "bad", "2": "good"]
        json["label2id"] = ["good": 0, "bad": 1]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: twice + "/config.json"))
        try "label\ttext\ngood\tfine\nbad\tpoor\n".write(toFile: dir + "/classes.tsv", atomically: true, encoding: .utf8)
        expectFailure(["eval", "--model", twice, "--labelled", dir + "/classes.tsv"], mentions: ["id2label", "'good'"])
    }

    // MARK: NaN weights and outputs

    func testNonFiniteWeightsAndOutputs() throws {
        let folder = dir + "/nan-teacher"
        try Fixtures.makeTinyTeacher(at: folder)
        let file = try SafetensorsFile(path: folder + "/model.safetensors")
        let name = "bert.encoder.layer.0.intermediate.dense.weight"
        let tensors = try file.tensors.map { t -> OwnedTensor in
            var v = try file.floats(t.name)
            if t.name == name { v[5] = .nan }
            return OwnedTensor(name: t.name, shape: t.shape, floats: v)
        }
        try Safetensors.write(tensors, to: folder + "/model.safetensors")
        let batch = Fixtures.path("tiny-bert-mlm/reference.safetensors")
        for args in [["forward", "--model", folder, "--batch", batch, "--out", dir + "/o"],
                     ["bench", "forward", "--model", folder, "--precision", "int8", "--batch", "2x8", "--iterations", "1"],
                     ["quantize", folder, dir + "/q.safetensors.zst"],
                     ["eval", "--model", folder, "--data", Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt", "--batches", "1"]] {
            expectFailure(args, mentions: [name])
        }
        // Finite weights whose sum overflows (word + position embeddings near Float's largest
        // value): an error, not NaN outputs and success.
        let huge = dir + "/huge-teacher"
        try Fixtures.makeTinyTeacher(at: huge)
        let big = try SafetensorsFile(path: huge + "/model.safetensors").tensors.map { t -> OwnedTensor in
            var v = try SafetensorsFile(path: Fixtures.path("tiny-bert-mlm/model.safetensors")).floats(t.name)
            if t.name.hasSuffix("word_embeddings.weight") || t.name.hasSuffix("position_embeddings.weight") { v = v.map { _ in 3e38 } }
            return OwnedTensor(name: t.name, shape: t.shape, floats: v)
        }
        try Safetensors.write(big, to: huge + "/model.safetensors")
        expectFailure(["forward", "--model", huge, "--batch", batch, "--out", dir + "/o"], mentions: ["NaN or infinite"])
        // Quantizing it: the calibration's ranges overflow (they were kept silently as scales).
        expectFailure(["quantize", huge, dir + "/q-huge.safetensors.zst"], mentions: ["calibration tokens", "NaN or infinite"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/q-huge.safetensors.zst"))
    }

    /// Files a model folder carries beside its weights, outputs that name no file, and data a
    /// recipe names: each checked where it enters, by name.
    func testTokenizerConfigAndOutputPaths() throws {
        let base = dir + "/teacher"
        try Fixtures.makeTinyTeacher(at: base)
        let vocab = try String(contentsOfFile: base + "/vocab.txt", encoding: .utf8)
        // convert and quantize refuse a tokenizer that eval would then refuse.
        func variant(_ name: String, _ edit: (String) throws -> Void) throws -> String {
            let f = dir + "/" + name
            try? FileManager.default.removeItem(atPath: f)
            try FileManager.default.copyItem(atPath: base, toPath: f)
            try edit(f)
            return f
        }
        let notJSON = try variant("tc-not-json") { try "{not json".write(toFile: $0 + "/tokenizer_config.json", atomically: true, encoding: .utf8) }
        let longer = try variant("vocab-longer") { try (vocab + "extra1\nextra2\n").write(toFile: $0 + "/vocab.txt", atomically: true, encoding: .utf8) }
        for (folder, mention) in [(notJSON, "tokenizer_config"), (longer, "514 tokens")] {
            expectFailure(["convert", folder, dir + "/c.safetensors.zst"], mentions: [folder, mention])
            expectFailure(["quantize", folder, dir + "/c.safetensors.zst"], mentions: [folder, mention])
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/c.safetensors.zst"))
        }
        // A CRLF vocab.txt (as Windows tools write it) converts, and the checkpoint tokenizes.
        let crlf = try variant("vocab-crlf") {
            try vocab.replacingOccurrences(of: "\n", with: "\r\n").write(toFile: $0 + "/vocab.txt", atomically: true, encoding: .utf8)
        }
        try distill(["convert", crlf, dir + "/crlf.safetensors.zst"])
        try distill(["eval", "--model", dir + "/crlf.safetensors.zst", "--data", Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt", "--batches", "1"])
        // config.json: a key given twice (transformers keeps the last; Foundation kept one),
        // and a number its field cannot hold.
        let twice = try variant("config-twice") { f in
            let text = try String(contentsOfFile: f + "/config.json", encoding: .utf8)
            let i = text.lastIndex(of: "}")!
            try (text[..<i] + ", \"hidden_act\": \"relu\"}").write(toFile: f + "/config.json", atomically: true, encoding: .utf8)
        }
        expectFailure(["params", twice], mentions: [twice, "config.json", "duplicate key \"hidden_act\""])
        // A key repeated deep inside a setting Distillery never reads loads, as in Python.
        let nested = try teacher("config-nested", config: ["other_tool": ["deeper": ["a": 1]]])
        let nestedText = try String(contentsOfFile: nested + "/config.json", encoding: .utf8)
        try nestedText.replacingOccurrences(of: "\"a\":1", with: "\"a\":1,\"a\":2").write(toFile: nested + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertTrue(try String(contentsOfFile: nested + "/config.json", encoding: .utf8).contains("\"a\":1,\"a\":2"))
        try distill(["params", nested])
        let fraction = try teacher("config-fraction", config: ["hidden_size": 64.5])
        expectFailure(["params", fraction], mentions: ["config.json", "does not fit its field", "hidden_size = 64.5"])
        // params on a folder checks the tensors against config.json (it counted the config alone).
        let vocabBig = try teacher("config-vocab", config: ["vocab_size": 100_000])
        expectFailure(["params", vocabBig], mentions: ["word_embeddings", "100000"])
        // A batch file's attention_mask holds 0 and 1 only (2 and −1 were read as 1).
        let ref = try SafetensorsFile(path: Fixtures.path("tiny-bert-mlm/reference.safetensors"))
        for bad in [2, -1] {
            var mask = try ref.integers("attention_mask")
            mask[3] = bad
            let path = dir + "/mask\(bad).safetensors"
            let i64 = { (v: [Int]) in v.flatMap { x in withUnsafeBytes(of: Int64(x).littleEndian) { Array($0) } } }
            try Safetensors.write([OwnedTensor(name: "input_ids", dtype: .I64, shape: ref.info("input_ids")!.shape, data: i64(try ref.integers("input_ids"))),
                                   OwnedTensor(name: "attention_mask", dtype: .I64, shape: ref.info("attention_mask")!.shape, data: i64(mask))], to: path)
            expectFailure(["forward", "--model", base, "--batch", path, "--out", dir + "/o.safetensors"], mentions: [path, "attention_mask[3]", "\(bad)"])
        }
        // Outputs that name a folder or nothing, refused before any work.
        let batch = Fixtures.path("tiny-bert-mlm/reference.safetensors")
        expectFailure(["forward", "--model", base, "--batch", batch, "--out", dir], mentions: [dir, "a folder stands there"])
        expectFailure(["forward", "--model", base, "--batch", batch, "--out", ""], mentions: ["names no file"])
        expectFailure(["prepare", "--tokenizer", base + "/vocab.txt", "--input", Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt",
                       "--out", dir + "/"], mentions: ["names no file"])
        // Data files that are folders or empty: validate says so, with the recipe's line.
        let empty = dir + "/empty.txt"
        FileManager.default.createFile(atPath: empty, contents: Data())
        for (file, why) in [(dir, "is a folder"), (empty, "is empty")] {
            let r = try TrainerTests.setUp("hostile-data-\(why.count)", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2")
                .replacingOccurrences(of: "train = [\"DATA/demo-train.txt\"]", with: "train = [\"\(file)\"]"))
            expectFailure(["validate", r], mentions: ["recipe.toml:", "data.train", file, why])
        }
        // A student layer the teacher does not have: named with the recipe.
        let layers = try TrainerTests.setUp("hostile-layers", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2")
            .replacingOccurrences(of: "layers = [1]", with: "layers = [5]"))
        expectFailure(["validate", layers], mentions: [layers, "[student]", "teacher layer 5"])
        // A labelled file naming its label column twice.
        let tsv = dir + "/two-labels.tsv"
        try "label\ttext\tlabel\n0\tgood\t1\n1\tbad\t0\n".write(toFile: tsv, atomically: true, encoding: .utf8)
        expectFailure(["eval", "--model", Fixtures.path("classifier-bert"), "--labelled", tsv], mentions: [tsv + ":1", "'label' twice"])
    }

    // MARK: validate says what run would say

    func testValidateCatchesWhatRunWould() throws {
        func recipe(_ name: String, _ edit: (String) -> String) throws -> String {
            try TrainerTests.setUp("hostile-\(name)", recipeBody: edit(TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2")))
        }
        // Longer sequences than the teacher's 64 positions.
        let long = try recipe("positions") { $0.replacingOccurrences(of: "max_seq_len = 64", with: "max_seq_len = 128") }
        expectFailure(["validate", long], mentions: ["max_seq_len = 128", "64 positions"])
        expectFailure(["run", long], mentions: ["max_seq_len = 128", "64 positions"])
        // Prepared data: longer than max_seq_len, another vocabulary, damaged.
        let tok = dir + "/long.tok"
        try distill(["prepare", "--tokenizer", Fixtures.path("tiny-vocab/vocab.txt"), "--input",
                     Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt", "--out", tok, "--max-seq-len", "64"])
        let short = try recipe("prepared-long") {
            $0.replacingOccurrences(of: "max_seq_len = 64", with: "max_seq_len = 32")
                .replacingOccurrences(of: "train = [\"DATA/demo-train.txt\"]", with: "train = [\"\(tok)\"]")
        }
        expectFailure(["validate", short], mentions: ["long.tok", "max_seq_len = 32"])
        let otherVocab = dir + "/other.tok"
        try distill(["prepare", "--tokenizer", Fixtures.path("tokenizer/vocab.txt"), "--input",
                     Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt", "--out", otherVocab, "--max-seq-len", "64"])
        let other = try recipe("prepared-vocab") {
            $0.replacingOccurrences(of: "train = [\"DATA/demo-train.txt\"]", with: "train = [\"\(otherVocab)\"]")
        }
        expectFailure(["validate", other], mentions: ["other.tok", "vocabulary"])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: tok))
        bytes[bytes.count - 3] ^= 0xFF
        let damaged = dir + "/damaged.tok"
        try bytes.write(to: URL(fileURLWithPath: damaged))
        let broken = try recipe("prepared-damaged") {
            $0.replacingOccurrences(of: "train = [\"DATA/demo-train.txt\"]", with: "train = [\"\(damaged)\"]")
        }
        expectFailure(["validate", broken], mentions: ["damaged.tok"])
        // What a sequence holds: a known unit, and only for text files.
        let unit = try recipe("sequences-unknown") { $0.replacingOccurrences(of: "max_seq_len = 64", with: "max_seq_len = 64\nsequences = \"words\"") }
        expectFailure(["validate", unit], mentions: ["data.sequences", "\"words\"", "\"sentences\""])
        let unitTok = try recipe("sequences-tok") {
            $0.replacingOccurrences(of: "max_seq_len = 64", with: "max_seq_len = 64\nsequences = \"sentences\"")
                .replacingOccurrences(of: "train = [\"DATA/demo-train.txt\"]", with: "train = [\"\(tok)\"]")
        }
        expectFailure(["validate", unitTok], mentions: ["data.sequences", ".tok", "--sequences sentences"])
        // A teacher whose vocab.txt has more tokens than its embedding table.
        let teacherDir = URL(fileURLWithPath: long).deletingLastPathComponent().path + "/teacher"
        let vocab = try String(contentsOfFile: teacherDir + "/vocab.txt", encoding: .utf8)
        try (vocab + "extra1\nextra2\n").write(toFile: teacherDir + "/vocab.txt", atomically: true, encoding: .utf8)
        let fine = long.replacingOccurrences(of: "recipe.toml", with: "fine.toml")
        try TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2").replacingOccurrences(of: "DATA", with: Fixtures.repositoryRoot + "/recipes/data")
            .write(toFile: fine, atomically: true, encoding: .utf8)
        expectFailure(["validate", fine], mentions: ["514 tokens", "512"])
    }

    // MARK: runs and files

    func testRunsDoNotOverwriteOrLeaveHalfFiles() throws {
        let recipe = try TrainerTests.setUp("hostile-runs", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2"))
        let run = URL(fileURLWithPath: recipe).deletingLastPathComponent().path + "/run"
        // Leftovers of an interrupted write by a process that no longer runs.
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        let stale = run + "/.state.safetensors.zst.tmp-999999-1"
        FileManager.default.createFile(atPath: stale, contents: Data([1, 2, 3]))
        try distill(["run", recipe])
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale), "stale temporary removed")
        for f in ["student/config.json", "student/model.safetensors", "student/vocab.txt", "student.safetensors.zst"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + f), f)
        }
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: run).contains { $0.hasPrefix(".student") }, "no staging folder left")
        // A fresh run over it is refused; --overwrite starts again.
        expectFailure(["run", recipe], mentions: ["--resume", "--overwrite"])
        try distill(["run", recipe, "--overwrite"])
        expectFailure(["run", recipe, "--resume", "--overwrite"], mentions: ["--resume", "--overwrite"])
        // --overwrite deletes only what runs wrote: a file of the user's in the student folder
        // stops it before anything is removed.
        try "mine".write(toFile: run + "/student/notes.txt", atomically: true, encoding: .utf8)
        expectFailure(["run", recipe, "--overwrite"], mentions: [run + "/student", "notes.txt"])
        // --resume, which replaces the student at its end, names it before it evaluates and
        // trains again (which would add to the metrics).
        let metrics = try Data(contentsOf: URL(fileURLWithPath: run + "/metrics.jsonl"))
        expectFailure(["run", recipe, "--resume"], mentions: [run + "/student", "notes.txt"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/metrics.jsonl")), metrics, "refused before any work")
        XCTAssertEqual(try String(contentsOfFile: run + "/student/notes.txt", encoding: .utf8), "mine")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/student.safetensors.zst"), "nothing removed")
        try FileManager.default.removeItem(atPath: run + "/student/notes.txt")
        // Nor what the run reads: a teacher kept in OUT/teacher, where runs export theirs.
        let inside = try TrainerTests.setUp("hostile-inside", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2")
            .replacingOccurrences(of: "model = \"teacher\"", with: "model = \"run/teacher\""))
        let insideDir = URL(fileURLWithPath: inside).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: insideDir + "/run", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: insideDir + "/teacher", toPath: insideDir + "/run/teacher")
        expectFailure(["run", inside, "--overwrite"], mentions: ["teacher", insideDir + "/run/teacher", "--overwrite deletes"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: insideDir + "/run/teacher/model.safetensors"), "the teacher is kept")
        // An output folder that cannot be made names itself.
        let blocked = try TrainerTests.setUp("hostile-blocked", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2"))
        let blockedRun = URL(fileURLWithPath: blocked).deletingLastPathComponent().path + "/run"
        FileManager.default.createFile(atPath: blockedRun, contents: Data())
        expectFailure(["run", blocked], mentions: ["run"])
    }

    /// TASK/recipe.toml distilling the 3-class fixture classifier on TASK/train.tsv and TASK/DEV
    /// (the same rows, labels 0 ..< classes); returns the recipe's path.
    func writeTaskRecipe(in task: String, classes: Int, rows count: Int = 12, dev: String) throws -> String {
        let devPath = task + "/" + dev
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: devPath).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        let rows = (0..<count).map { "\($0 % classes)\tthe film number \($0) was good" }.joined(separator: "\n")
        try ("label\ttext\n" + rows + "\n").write(toFile: task + "/train.tsv", atomically: true, encoding: .utf8)
        try ("label\ttext\n" + rows + "\n").write(toFile: devPath, atomically: true, encoding: .utf8)
        let recipe = task + "/recipe.toml"
        try """
        output = "run"
        [teacher]
        model = "\(Fixtures.path("classifier-bert"))"
        [student]
        builder = "layers"
        layers = [0]
        [task]
        train = "train.tsv"
        dev = "\(dev)"
        """.write(toFile: recipe, atomically: true, encoding: .utf8)
        return recipe
    }

    /// A task recipe's labelled files are inputs too: one kept in OUT/teacher, which a task run
    /// with a fine-tuned teacher writes, stops --overwrite before anything is removed.
    func testOverwriteKeepsTaskFiles() throws {
        let task = dir + "/task-inside"
        try? FileManager.default.removeItem(atPath: task)
        let recipe = try writeTaskRecipe(in: task, classes: 3, dev: "run/teacher/dev.tsv")
        expectFailure(["run", recipe, "--overwrite"], mentions: ["data file", task + "/run/teacher/dev.tsv", "--overwrite deletes"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: task + "/run/teacher/dev.tsv"), "the dev set is kept")
    }

    /// A model folder written over OUT never deletes what OUT held besides an earlier model
    /// folder (fit-head replaced any folder or file it was given, keeping nothing).
    func testModelFoldersReplaceOnlyModelFolders() throws {
        let teacher = dir + "/teacher"
        try Fixtures.makeTinyTeacher(at: teacher)
        let text = Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"
        func fitHead(_ out: String) -> [String] { ["fit-head", "--model", teacher, "--data", text, "--steps", "1", "--out", out] }
        let kept = dir + "/kept"
        try FileManager.default.createDirectory(atPath: kept, withIntermediateDirectories: true)
        try "mine".write(toFile: kept + "/notes.txt", atomically: true, encoding: .utf8)
        expectFailure(fitHead(kept), mentions: [kept, "notes.txt", "delete"])
        XCTAssertEqual(try String(contentsOfFile: kept + "/notes.txt", encoding: .utf8), "mine")
        let file = dir + "/file.tsv"
        try "label\ttext\n".write(toFile: file, atomically: true, encoding: .utf8)
        expectFailure(fitHead(file), mentions: [file, "is a file"])
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "label\ttext\n")
        for out in ["", ".", dir + "/.."] { expectFailure(fitHead(out), mentions: ["names no folder"]) }
        // A model folder Distillery did not write has the same file names: the model read here.
        let before = try Data(contentsOf: URL(fileURLWithPath: teacher + "/model.safetensors"))
        expectFailure(fitHead(teacher), mentions: [teacher, "did not write"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: teacher + "/model.safetensors")), before)
        // A folder an earlier write made is replaced, and so is an empty one.
        let out = dir + "/mlm"
        try distill(fitHead(out))
        try distill(fitHead(out))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: out)), ["config.json", "model.safetensors", "vocab.txt"])
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        try distill(fitHead(dir + "/empty"))
    }

    /// Labels and class counts that disagree with a classifier, and a probe over as many classes
    /// as examples: each refused by name (they indexed past the classifier's logits, or
    /// allocated n × K doubles unchecked).
    func testClassCountsAreChecked() throws {
        // The 3-class fixture classifier distilled on data with four labels.
        let task = dir + "/task"
        let recipe = try writeTaskRecipe(in: task, classes: 4, rows: 40, dev: "dev.tsv")
        expectFailure(["validate", recipe], mentions: [task + "/train.tsv", "4 labels", "3 classes"])
        expectFailure(["run", recipe], mentions: [task + "/train.tsv", "4 labels", "3 classes"])
        // id2label naming other classes than the classifier's rows, and ids that are not 0…n−1.
        for (name, labels, mentions) in [("five", ["0": "a", "1": "b", "2": "c", "3": "d", "4": "e"], ["classifier.weight", "3 rows", "id2label names 5"]),
                                         ("negative", ["-1": "a", "0": "b", "1": "c"], ["id2label", "'-1'"])] {
            let folder = dir + "/labels-" + name
            try? FileManager.default.removeItem(atPath: folder)
            try FileManager.default.copyItem(atPath: Fixtures.path("classifier-bert"), toPath: folder)
            var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))) as! [String: Any]
            json["id2label"] = labels
            json["label2id"] = Dictionary(uniqueKeysWithValues: labels.map { ($1, Int($0)!) })
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: folder + "/config.json"))
            expectFailure(["eval", "--model", folder, "--labelled", task + "/dev.tsv"], mentions: mentions)
        }
        // A classifier naming its classes reads labels by name or by class id (GLUE-style TSVs
        // carry ids), and nothing else.
        let named = dir + "/labels-named"
        try? FileManager.default.removeItem(atPath: named)
        try FileManager.default.copyItem(atPath: Fixtures.path("classifier-bert"), toPath: named)
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: named + "/config.json"))) as! [String: Any]
        cfg["id2label"] = ["0": "neg", "1": "neu", "2": "pos"]
        cfg["label2id"] = ["neg": 0, "neu": 1, "pos": 2]
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: named + "/config.json"))
        let byName = task + "/by-name.tsv", byId = task + "/by-id.tsv", other = task + "/other.tsv"
        try "label\ttext\npos\tgood\nneg\tbad\nneu\tso so\n".write(toFile: byName, atomically: true, encoding: .utf8)
        try "label\ttext\n2\tgood\n0\tbad\n1\tso so\n".write(toFile: byId, atomically: true, encoding: .utf8)
        try "label\ttext\n2\tgood\n7\tbad\n".write(toFile: other, atomically: true, encoding: .utf8)
        let tokenizer = try BertTokenizer.load(path: named + "/vocab.txt")
        let model = try ModelStore.load(named).model
        func report(_ file: String) throws -> ClassificationReport {
            try ClassificationEvaluator.evaluate(model, name: named, file: file, label: .name("label"), text: .name("text"), tokenizer: tokenizer, maxSequenceLength: 16)
        }
        XCTAssertEqual(try report(byName), try report(byId))
        expectFailure(["eval", "--model", named, "--labelled", other], mentions: [other + ":3", "'7'", "neg, neu, pos", "0…2"])
        // A probe with one class per example: its n × K fit is checked against the budget.
        let many = (0..<2000).map { "\($0)\tthe film number \($0)" }.joined(separator: "\n")
        try ("label\ttext\n" + many + "\n").write(toFile: task + "/many.tsv", atomically: true, encoding: .utf8)
        setenv("DISTILL_MEMORY_LIMIT", "16M", 1)
        defer { unsetenv("DISTILL_MEMORY_LIMIT") }
        expectFailure(["probe", "--model", Fixtures.path("classifier-bert"), "--train", task + "/many.tsv", "--test", task + "/dev.tsv"],
                      mentions: ["2000 classes", "needs", "available"])
    }

    /// Settings that pass their own range checks but overflow together, and values a recipe's
    /// inline config cannot carry: refused, naming them.
    func testOverflowingStepAndNonFiniteInlineConfig() throws {
        let fixture = Fixtures.path("distill-step-bert")
        var settings = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/step.json"))) as! [String: Any]
        settings["alpha_ce"] = 1e38
        settings["alpha_mlm"] = 1e38
        let step = dir + "/step-huge.json", out = dir + "/o.safetensors"
        try JSONSerialization.data(withJSONObject: settings).write(to: URL(fileURLWithPath: step))
        expectFailure(["debug-step", "--teacher", Fixtures.path("tiny-bert-mlm"), "--student", fixture, "--batch", fixture + "/reference.safetensors",
                       "--step", step, "--out", out], mentions: ["step 1", "not finite"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        for (value, key) in [("nan", "layer_norm_eps"), ("inf", "initializer_range")] {
            let body = TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2").replacingOccurrences(of: """
                builder = "layers"
                layers = [1]
                """, with: """
                builder = "config"
                config = { hidden_size = 64, num_hidden_layers = 1, num_attention_heads = 4, intermediate_size = 128, vocab_size = 512, \(key) = \(value) }
                """)
            XCTAssertTrue(body.contains(key))
            let recipe = try TrainerTests.setUp("hostile-config-\(value)", recipeBody: body)
            expectFailure(["validate", recipe], mentions: ["recipe.toml", "student.config", key, "NaN or infinite"])
        }
        // The top-k comparison's K past the vocabulary.
        let recipe = try TrainerTests.setUp("hostile-compare-k", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "2"))
        for k in ["513", "8,600"] {
            expectFailure(["cache-teacher", recipe, "--compare-k", k], mentions: ["--compare-k", "1…512"])
        }
    }

    // MARK: checkpoints and text files

    func testCheckpointMetadataAndTextFiles() throws {
        let teacher = dir + "/teacher"
        try Fixtures.makeTinyTeacher(at: teacher)
        let ck = dir + "/model.safetensors.zst"
        try distill(["convert", teacher, ck])
        let c = try Checkpoint(path: ck)
        let image = try SafetensorsImage(try c.decompressAll(), path: ck)
        let all = try image.tensors.map { t in OwnedTensor(name: t.name, dtype: t.dtype, shape: t.shape, data: try image.withBytes(t) { Array($0) }) }
        func rewrite(_ name: String, metadata: [String: String], tensors: [OwnedTensor]? = nil) throws -> String {
            let path = dir + "/" + name + ".safetensors.zst"
            try Safetensors.withPayloads(tensors ?? all) { _ = try CheckpointWriter.write($0, metadata: metadata, to: path) }
            return path
        }
        var m = c.metadata
        m[CheckpointKey.formatVersion] = "7"
        expectFailure(["forward", "--model", try rewrite("version2", metadata: m), "--batch", Fixtures.path("tiny-bert-mlm/reference.safetensors"),
                       "--out", dir + "/o"], mentions: ["format_version", "7"])
        m = c.metadata
        m[CheckpointKey.vocabulary] = ""
        expectFailure(["convert", try rewrite("empty-vocab", metadata: m), dir + "/export-empty"], mentions: ["distillery.vocab", "empty"])
        m[CheckpointKey.vocabulary] = "[PAD]\nhello\nhello\n"
        expectFailure(["convert", try rewrite("duplicate-vocab", metadata: m), dir + "/export-dup"], mentions: ["hello", "twice"])
        // The byte-shuffle flag on an unshuffled file (the writer never makes one: built frame by
        // frame here): the weights read back as garbage and are refused.
        m = c.metadata
        m["distillery.filter"] = "byteshuffle"
        let plain = dir + "/plain.safetensors"
        try Safetensors.write(all, metadata: m, to: plain)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: plain))
        let headerEnd = 8 + Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var pieces = [bytes.prefix(headerEnd)]
        let header = try SafetensorsFile(path: plain)
        for t in header.tensors.sorted(by: { $0.offset < $1.offset }) where t.byteCount > 0 {
            pieces.append(bytes[(headerEnd + t.offset)..<(headerEnd + t.offset + t.byteCount)])
        }
        var file = [UInt8](), table: [(UInt32, UInt32)] = []
        for p in pieces {
            let frame = try Data(p).withUnsafeBytes { try Zstd.compressFrame($0, level: 3) }
            file += frame
            table.append((UInt32(frame.count), UInt32(p.count)))
        }
        file += CheckpointWriter.seekTable(table)
        let flagged = dir + "/shuffle-flag.safetensors.zst"
        try Data(file).write(to: URL(fileURLWithPath: flagged))
        expectFailure(["forward", "--model", flagged, "--batch", Fixtures.path("tiny-bert-mlm/reference.safetensors"), "--out", dir + "/o"],
                      mentions: ["shuffle-flag"])
        // An int8 checkpoint missing a smoothing factor its scheme says it has.
        let q = dir + "/q.safetensors.zst"
        try distill(["quantize", teacher, q])
        let qc = try Checkpoint(path: q)
        let qi = try SafetensorsImage(try qc.decompressAll(), path: q)
        let smooth = "bert.encoder.layer.1.attention.output.dense.weight.smooth"
        let without = try qi.tensors.filter { $0.name != smooth }.map { t in OwnedTensor(name: t.name, dtype: t.dtype, shape: t.shape, data: try qi.withBytes(t) { Array($0) }) }
        let noSmooth = dir + "/no-smooth.safetensors.zst"
        try Safetensors.withPayloads(without) { _ = try CheckpointWriter.write($0, metadata: qc.metadata, to: noSmooth) }
        expectFailure(["eval", "--model", noSmooth, "--data", Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"], mentions: [smooth])
        // A JSONL input with invalid UTF-8 names its line.
        let jsonl = dir + "/bad.jsonl"
        try Data("{\"text\": \"fine\"}\n{\"text\": \"b\u{FFFD}\"}\n".utf8 + [0x7B, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D, 0x0A])
            .write(to: URL(fileURLWithPath: jsonl))
        expectFailure(["tokenize", "--tokenizer", Fixtures.path("tiny-vocab/vocab.txt"), "--input", jsonl], mentions: ["bad.jsonl:3", "UTF-8"])
        // A vocab.txt that is not text.
        let binary = dir + "/binary-vocab"
        try Fixtures.makeTinyTeacher(at: binary)
        try Data([0xFF, 0xFE, 0x00, 0x80]).write(to: URL(fileURLWithPath: binary + "/vocab.txt"))
        expectFailure(["eval", "--model", binary, "--data", Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt"], mentions: ["vocab.txt", "UTF-8"])
    }

    /// A small checkpoint that declares far more than it holds is verified frame by frame: its
    /// checksums are checked without holding the declared size in memory.
    func testDecompressionBombIsStreamed() throws {
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        let path = dir + "/bomb.safetensors.zst"
        _ = try zeros.withUnsafeBytes { raw in
            try CheckpointWriter.write((0..<16).map { TensorPayload(name: "t\($0)", dtype: .F32, shape: [16 << 20], bytes: raw) },
                                       metadata: [:], to: path)
        }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        XCTAssertLessThan(size, 1 << 20, "1 GiB of zeros compresses to little")
        let before = Timing.peakRSS()
        try distill(["inspect", path, "--verify"])
        XCTAssertLessThan(Timing.peakRSS() - before, 400 << 20, "verification streamed")
    }
}
