import Foundation
import XCTest
import DistilleryTraining

/// `mpirun -np 2 distill run` on the tiny teacher: the same losses as one process, the same
/// bits run to run, and failures (a mismatched recipe, a rank without its data, a killed rank)
/// that end the job with a clear message and an intact checkpoint. Skipped where Open MPI's
/// mpirun is not installed, except under DISTILL_REQUIRE_MPI=1 (.ci/run installs it and sets that).
final class MPITests: XCTestCase {
    var mpirun = ""
    var distillBinary = ""

    override func setUpWithError() throws {
        // Open MPI's mpirun on the PATH (Debian: /usr/bin; elsewhere e.g. /usr/lib64/openmpi/bin).
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin").split(separator: ":")
        guard let m = path.map({ $0 + "/mpirun" }).first(where: FileManager.default.isExecutableFile) else {
            throw Fixtures.missingOptional("Open MPI is not installed (no mpirun on the PATH \(path.joined(separator: ":")); "
                + "apt-get install openmpi-bin libopenmpi-dev): the MPI tests do not run", unless: "DISTILL_REQUIRE_MPI")
        }
        mpirun = m
        // The distill binary built beside this test bundle (swift build -c release --build-tests).
        let beside = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path + "/distill"
        let candidates = [beside, Fixtures.repositoryRoot + "/.build/release/distill", Fixtures.repositoryRoot + "/.build/debug/distill"]
        guard let d = candidates.first(where: FileManager.default.isExecutableFile) else {
            XCTFail("no distill binary at \(candidates.joined(separator: ", ")): build it first (swift build -c release)")
            throw XCTSkip("no distill binary")
        }
        distillBinary = d
    }

    /// Runs a command line; its exit status and its output (stdout and stderr together).
    /// `whileRunning` is called every 50 ms until the process ends.
    @discardableResult
    func run(_ args: [String], in folder: String, environment: [String: String] = [:], timeout: Double = 60,
             whileRunning: ((Process) -> Void)? = nil) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: args[0])
        p.arguments = Array(args.dropFirst())
        p.currentDirectoryURL = URL(fileURLWithPath: folder)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let log = folder + "/output-\(UUID().uuidString).txt"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let start = Date()
        while p.isRunning {
            whileRunning?(p)
            if Date().timeIntervalSince(start) > timeout {
                p.terminate()
                p.waitUntilExit()
                XCTFail("\(args.joined(separator: " ")) took over \(timeout) s")
                break
            }
            usleep(50_000)
        }
        p.waitUntilExit()
        try handle.close()
        return (p.terminationStatus, try String(contentsOfFile: log, encoding: .utf8))
    }

    func mpi(_ np: Int) -> [String] { [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "\(np)"] }

    /// A folder with the tiny teacher and a recipe of `steps` steps writing into `output`.
    func makeRecipe(_ name: String, steps: Int, checkpointEvery: Int = 0) throws -> String {
        let body = TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "\(steps)")
            .replacingOccurrences(of: "[checkpoint]\nevery = 0", with: "[checkpoint]\nevery = \(checkpointEvery)")
        let recipe = try TrainerTests.setUp("mpi-" + name, recipeBody: body)
        return URL(fileURLWithPath: recipe).deletingLastPathComponent().path
    }

    /// The step lines of a metrics log: losses and gradient norm by step.
    func losses(_ path: String) throws -> [[String: Double]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { line in
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["eval"] == nil else { return nil }
            var v: [String: Double] = [:]
            for (k, x) in o where k.hasPrefix("loss_") || k == "grad_norm" { v[k] = x as? Double }
            return v
        }
    }

    /// 2 ranks give one process's losses (within 1e-5 relative) over 20 steps with the same
    /// global batch, and two 2-rank runs give the same bits.
    func testTwoRanksMatchOneProcessAndRepeatBitForBit() throws {
        let dir = try makeRecipe("match", steps: 20)
        var outputs: [String: [[String: Double]]] = [:]
        for (name, prefix) in [("one", [String]()), ("twoA", mpi(2)), ("twoB", mpi(2))] {
            try? FileManager.default.removeItem(atPath: dir + "/run")
            let r = try run(prefix + [distillBinary, "run", "recipe.toml"], in: dir)
            XCTAssertEqual(r.status, 0, r.output)
            if name == "twoA" {
                XCTAssertTrue(r.output.contains("data-parallel: 2 ranks"), r.output)
                XCTAssertEqual(r.output.components(separatedBy: "done: 20 steps").count, 2, "rank 0 alone reports:\n" + r.output)
            }
            outputs[name] = try losses(dir + "/run/metrics.jsonl")
            try FileManager.default.moveItem(atPath: dir + "/run", toPath: dir + "/run-\(name)")
        }
        let one = outputs["one"]!, two = outputs["twoA"]!
        XCTAssertEqual(one.count, 20)
        XCTAssertEqual(two.count, 20)
        var worst = 0.0
        for (a, b) in zip(one, two) {
            for (k, x) in a where x != 0 {
                worst = max(worst, abs(x - b[k]!) / abs(x))
            }
        }
        print("largest relative difference between 1 process and 2 ranks over 20 steps: \(worst)")
        XCTAssertLessThan(worst, 1e-5)
        XCTAssertEqual(outputs["twoA"]!, outputs["twoB"]!, "two 2-rank runs differ")
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/run-twoA/student/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/run-twoB/student/model.safetensors"))
        XCTAssertEqual(a, b, "two 2-rank runs' students differ")
    }

    /// Layer matches (hidden MSE through a projection, attention KL and squared error,
    /// relations, sentence embeddings) average over the whole batch on 2 ranks as in one process: each match's loss
    /// and the total within 1e-5 relative over 8 steps.
    func testLayerMatchesOnTwoRanksMatchOneProcess() throws {
        let dir = try makeRecipe("matches", steps: 8)
        let recipe = dir + "/recipe.toml"
        let text = try String(contentsOfFile: recipe, encoding: .utf8).replacingOccurrences(of: "[optimizer]", with: TrainerTests.layerMatchTables + """
            [[loss.match]]
            kind = "attention_mse"
            teacher = 2
            student = 1
            weight = 0.5

            [[loss.match]]
            kind = "sentence_mse"
            teacher = 2
            student = 1
            weight = 2.0

            [optimizer]
            """)
        try text.write(toFile: recipe, atomically: true, encoding: .utf8)
        var outputs: [String: [[String: Double]]] = [:]
        for (name, prefix) in [("one", [String]()), ("two", mpi(2))] {
            try? FileManager.default.removeItem(atPath: dir + "/run")
            let r = try run(prefix + [distillBinary, "run", "recipe.toml"], in: dir)
            XCTAssertEqual(r.status, 0, r.output)
            outputs[name] = try losses(dir + "/run/metrics.jsonl")
        }
        let one = outputs["one"]!, two = outputs["two"]!
        XCTAssertEqual(one.count, 8)
        XCTAssertEqual(two.count, 8)
        XCTAssertEqual(Set(one[0].keys.filter { $0.hasPrefix("loss_match_") }).count, 5, "\(one[0])")
        var worst = 0.0
        for (a, b) in zip(one, two) {
            for (k, x) in a where x != 0 {
                XCTAssertNotNil(b[k], k)
                worst = max(worst, abs(x - (b[k] ?? 0)) / abs(x))
            }
        }
        print("layer matches: largest relative difference between 1 process and 2 ranks over 8 steps: \(worst)")
        XCTAssertLessThan(worst, 1e-5)
    }

    /// With a teacher cache (built by rank 0, read by both) and two micro-batches a step, 2 ranks
    /// give one process's losses within 1e-5 relative; so does a batch of 3 on 4 ranks (one rank
    /// with no rows: it still takes part in every sum).
    func testTeacherCacheAndAccumulationOnRanks() throws {
        let dir = try makeRecipe("cache", steps: 6)
        let recipe = dir + "/recipe.toml"
        let text = try String(contentsOfFile: recipe, encoding: .utf8)
            .replacingOccurrences(of: Fixtures.repositoryRoot + "/recipes/data/demo-train.txt", with: try TeacherCacheTests.smallTrainingText())
            .replacingOccurrences(of: "[student]", with: "[teacher.cache]\ntop_k = 8\ntail_samples = 16\n\n[student]")
            .replacingOccurrences(of: "batch_size = 8", with: "batch_size = 6\naccumulation = 2")
            .replacingOccurrences(of: "[optimizer]", with: TrainerTests.layerMatchTables + "[optimizer]")
        try text.write(toFile: recipe, atomically: true, encoding: .utf8)
        try text.replacingOccurrences(of: "batch_size = 6", with: "batch_size = 3").write(toFile: dir + "/three.toml", atomically: true, encoding: .utf8)
        for (file, ranks) in [("recipe.toml", 2), ("three.toml", 4)] {
            var outputs: [[[String: Double]]] = []
            for prefix in [[String](), mpi(ranks)] {
                try? FileManager.default.removeItem(atPath: dir + "/run")
                let r = try run(prefix + [distillBinary, "run", file], in: dir, timeout: 120)
                XCTAssertEqual(r.status, 0, r.output)
                XCTAssertTrue(r.output.contains("the teacher does not run while training"), r.output)
                outputs.append(try losses(dir + "/run/metrics.jsonl"))
            }
            let (one, many) = (outputs[0], outputs[1])
            XCTAssertEqual(one.count, 6)
            XCTAssertEqual(many.count, 6)
            var worst = 0.0
            for (a, b) in zip(one, many) {
                // (The sampled tail's soft-target loss is an estimate: it can dip below 0.)
                XCTAssertNotEqual(a["loss_ce"] ?? 0, 0)
                for (k, x) in a where x != 0 {
                    XCTAssertNotNil(b[k], k)
                    worst = max(worst, abs(x - (b[k] ?? 0)) / abs(x))
                }
            }
            print("teacher cache, accumulation 2, \(file): largest relative difference between 1 process and \(ranks) ranks over 6 steps: \(worst)")
            XCTAssertLessThan(worst, 1e-5, file)
        }
    }

    /// A 2-rank run stopped and resumed on 2 ranks gives the straight run's bits; resumed in one
    /// process (or a single process's state on 2 ranks), it says what that does and stays within
    /// rounding of the straight run.
    func testResumeOnTheSameAndAnotherRankCount() throws {
        let dir = try makeRecipe("resume", steps: 20)
        var r = try run(mpi(2) + [distillBinary, "run", "recipe.toml"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        let straight = try losses(dir + "/run/metrics.jsonl")
        let student = try Data(contentsOf: URL(fileURLWithPath: dir + "/run/student/model.safetensors"))
        XCTAssertEqual(straight.count, 20)
        try FileManager.default.moveItem(atPath: dir + "/run", toPath: dir + "/run-straight")

        r = try run(mpi(2) + [distillBinary, "run", "recipe.toml", "--stop-after", "8"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(try losses(dir + "/run/metrics.jsonl").count, 8)
        r = try run(mpi(2) + [distillBinary, "run", "recipe.toml", "--resume"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertFalse(r.output.contains("resuming a state saved by"), r.output)
        XCTAssertEqual(try losses(dir + "/run/metrics.jsonl"), straight, "a resumed 2-rank run differs from a straight one")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/run/student/model.safetensors")), student)
        try FileManager.default.removeItem(atPath: dir + "/run")

        r = try run(mpi(2) + [distillBinary, "run", "recipe.toml", "--stop-after", "8"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        r = try run([distillBinary, "run", "recipe.toml", "--resume"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("resuming a state saved by 2 processes on a single process"), r.output)
        let resumed = try losses(dir + "/run/metrics.jsonl")
        XCTAssertEqual(resumed.count, 20)
        for (a, b) in zip(straight, resumed) {
            for (k, x) in a where x != 0 { XCTAssertLessThan(abs(x - b[k]!) / abs(x), 1e-5, k) }
        }
        try FileManager.default.removeItem(atPath: dir + "/run")

        // And the other way: a single process's state continued on 2 ranks.
        r = try run([distillBinary, "run", "recipe.toml", "--stop-after", "8"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        r = try run(mpi(2) + [distillBinary, "run", "recipe.toml", "--resume"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(r.output.components(separatedBy: "resuming a state saved by a single process on 2 processes").count, 2,
                       "rank 0 alone says it once:\n" + r.output)
        let widened = try losses(dir + "/run/metrics.jsonl")
        XCTAssertEqual(widened.count, 20)
        for (a, b) in zip(straight, widened) {
            for (k, x) in a where x != 0 { XCTAssertLessThan(abs(x - b[k]!) / abs(x), 1e-5, k) }
        }
    }

    /// A recipe that differs between ranks, a rank that cannot read the training text, and a
    /// rank killed mid-run each end the job with a message naming the rank, and leave no
    /// damaged checkpoint.
    func testFailuresEndTheJobClearly() throws {
        let dir = try makeRecipe("fail", steps: 20)
        let recipe = try String(contentsOfFile: dir + "/recipe.toml", encoding: .utf8)

        // Rank 1 reads a recipe with another seed (mpirun's colon syntax: one program per rank).
        try recipe.replacingOccurrences(of: "seed = 7", with: "seed = 8").write(toFile: dir + "/other.toml", atomically: true, encoding: .utf8)
        var r = try run(mpi(1) + [distillBinary, "run", "recipe.toml", ":", "-np", "1", distillBinary, "run", "other.toml"], in: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("the recipe differs between ranks: rank 1"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run/state.safetensors.zst"))

        // Rank 1's copy of the recipe names a training file its host does not have.
        let elsewhere = dir + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try recipe.replacingOccurrences(of: Fixtures.repositoryRoot + "/recipes/data/demo-train.txt", with: "missing/train.txt")
            .write(toFile: elsewhere + "/recipe.toml", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/missing", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.repositoryRoot + "/recipes/data/demo-train.txt", toPath: dir + "/missing/train.txt")
        try recipe.replacingOccurrences(of: Fixtures.repositoryRoot + "/recipes/data/demo-train.txt", with: "missing/train.txt")
            .write(toFile: dir + "/recipe.toml", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: dir + "/teacher", toPath: elsewhere + "/teacher")
        r = try run(mpi(1) + [distillBinary, "run", dir + "/recipe.toml", ":", "-np", "1", distillBinary, "run", elsewhere + "/recipe.toml"],
                    in: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("rank 1 of 2"), r.output)
        XCTAssertTrue(r.output.contains("missing/train.txt"), r.output)

        // Rank 1 is killed (SIGKILL) mid-run: mpirun ends the job, rank 0 names the step, and
        // the state saved every 2 steps loads.
        try recipe.replacingOccurrences(of: "steps = 20", with: "steps = 100000")
            .replacingOccurrences(of: "[checkpoint]\nevery = 0", with: "[checkpoint]\nevery = 2")
            .write(toFile: dir + "/long.toml", atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: dir + "/run")
        let marker = UUID().uuidString
        var killed: Int32?
        r = try run(mpi(2) + [distillBinary, "run", "long.toml"], in: dir, environment: ["DISTILL_TEST_JOB": marker]) { _ in
            guard killed == nil, let steps = try? self.losses(dir + "/run/metrics.jsonl").count, steps >= 5 else { return }
            killed = self.rank(1, marker: marker)
            if let pid = killed { kill(pid, SIGKILL) }
        }
        XCTAssertNotNil(killed, "rank 1 was not found")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("rank 1"), r.output)
        XCTAssertTrue(r.output.range(of: "stopped by mpirun during step [0-9]+", options: .regularExpression) != nil, r.output)
        let state = try TrainingStateProbe.step(dir + "/run/state.safetensors.zst")
        XCTAssertGreaterThanOrEqual(state, 4)
        XCTAssertEqual(state % 2, 0)
    }

    /// The process of rank `rank` of the job whose environment holds `marker`.
    func rank(_ rank: Int, marker: String) -> Int32? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for e in entries {
            guard let pid = Int32(e), let env = FileManager.default.contents(atPath: "/proc/\(e)/environ") else { continue }
            let vars = env.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("DISTILL_TEST_JOB=\(marker)") && vars.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }
}

enum TrainingStateProbe {
    static func step(_ path: String) throws -> Int { try TrainingState.load(path).state.step }
}
