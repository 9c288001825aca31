import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryModels
import DistilleryText
import DistilleryFormats
import DistilleryTraining
import DistilleryQuant
import DistilleryEvaluation
import DistilleryBenchmarks

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure speed and memory (build with -c release for meaningful figures).",
        subcommands: [BenchForward.self, BenchTokenize.self, BenchCheckpoint.self, BenchDistill.self])
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Encoder forward pass: ms per batch and GFLOP/s.",
        discussion: """
        Without --model, runs the all-MiniLM-L6-v2 shape (6 × 384, 12 heads, V = 30,522) with \
        random weights. Every position is a real token (no padding); the MLM head is not run. \
        --precision int8 quantizes the model in memory exactly as distill quantize would (an int8 \
        checkpoint given as --model runs on the int8 path as it is); --precision bf16 multiplies \
        bf16 copies of the weights. The header names the CPU, the backend and the int8 kernel; \
        Tests/Benchmarks/forward_bench.py measures PyTorch and ONNX Runtime the same way.
        """)

    @Option(name: .customLong("model"), help: "A model folder or checkpoint, fp32 or int8 (default: the all-MiniLM-L6-v2 shape, random weights).")
    var modelPath: String?
    @Option(name: .long, help: "Preset shape when no --model is given.")
    var preset = "all-MiniLM-L6-v2"
    @Option(name: .long, help: ArgumentHelp("Batch shapes B×S, comma-separated.", valueName: "shapes"), transform: BatchShape.list)
    var batch = [BatchShape(B: 8, S: 128), BatchShape(B: 1, S: 128)]
    @Option(name: .long, help: "Timed iterations per shape.")
    var iterations = 20
    @Option(name: .long, help: "Untimed warm-up iterations per shape.")
    var warmup = 3
    @Flag(name: .long, help: .hidden)
    var int8 = false
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...100_000).contains(iterations), (0...100_000).contains(warmup) else {
            throw ValidationError("--iterations must be 1…100,000 and --warmup 0…100,000")
        }
    }

    func run() throws {
        threads.apply()
        let options = LoadOptions(dropPooler: true, dropPretrainingHeads: true)
        // --int8 is the older spelling of --precision int8.
        let precision = int8 ? RunPrecision.int8 : self.precision.precision
        let model: EncoderModel
        let name: String
        if let path = modelPath {
            model = try ModelStore.open(path, options: options, precision: precision).model
            name = path
        } else {
            guard var c = Presets.encoder(preset, withHead: false) else {
                throw ValidationError("--preset must name a preset of a family Distillery runs (BERT, DistilBERT, ALBERT), e.g. bert-base-uncased")
            }
            c.hasPooler = false
            model = EncoderModel(config: c)
            model.initializeRandomly(seed: 1)
            switch precision {
            case .stored, .fp32: break
            case .bf16: model.convertMatricesToBF16()
            case .int8: try Quantizer.quantizeInPlace(model)
            }
            name = preset + " (random weights)"
        }
        let results = try batch.map { shape in
            try ForwardTiming.measure(model, B: shape.B, S: min(shape.S, model.config.maxPositions), warmup: warmup, iterations: iterations)
        }
        let report = ForwardBenchReport(model: name, precision: model.precision, machine: MachineReport.current(), threads: Parallel.threads,
                                        results: results.map { ForwardBenchResult($0, flops: model.config.forwardFLOPs(B: $0.batch, S: $0.sequence)) })
        print(json ? try jsonText(report) : report.table)
    }
}

struct ForwardBenchReport: Encodable {
    let model: String
    let precision: String
    let machine: MachineReport
    let threads: Int
    let results: [ForwardBenchResult]

    var table: String {
        var t = TextTable(["batch", "ms/batch (median)", "min ms", "GFLOP/s", "tokens/s"])
        for r in results {
            t.add(["\(r.batch)×\(r.sequence)", fixed(r.medianMs, 1), fixed(r.minMs, 1), fixed(r.gflops, 1), grouped(Int(r.tokensPerSecond))])
        }
        return machine.header + "\nforward  \(model)  \(precision)  threads \(threads)\n" + t.render()
    }
}

struct ForwardBenchResult: Encodable {
    let batch: Int
    let sequence: Int
    let medianMs: Double
    let minMs: Double
    let gflops: Double
    let tokensPerSecond: Double

    init(_ t: ForwardTiming, flops: Double) {
        batch = t.batch; sequence = t.sequence; medianMs = t.medianMs; minMs = t.minMs
        gflops = flops / (t.medianMs / 1e3) / 1e9
        tokensPerSecond = t.tokensPerSecond
    }
}

struct BenchTokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenizer throughput in MB/s, one thread and all threads.",
        discussion: """
        Tokenizes every line of the file in memory (no packing, no output) with the BERT \
        tokenizer. Compare with Hugging Face tokenizers' BertWordPieceTokenizer.encode_batch on \
        the same file and vocabulary.
        """)

    @Option(name: .long, help: "A vocab.txt or tokenizer folder.")
    var tokenizer: String
    @Option(name: .long, help: "A text file, one paragraph a line.")
    var input: String
    @Option(name: .long, help: ArgumentHelp("Thread counts to measure, comma-separated.", valueName: "counts"),
            transform: { try integerList($0, range: 1...1024, what: "a thread count") })
    var threads = [1, 2]
    @Option(name: .long, help: "Runs per thread count (the median is reported).")
    var runs = 5
    @Flag(name: .long, help: "Print JSON.")
    var json = false

    struct Result: Encodable { let threads: Int; let seconds: Double; let megabytesPerSecond: Double; let tokens: Int }
    struct Report: Encodable { let file: String; let megabytes: Double; let results: [Result] }

    func validate() throws {
        guard (1...1000).contains(runs) else { throw ValidationError("--runs must be 1…1000") }
    }

    func run() throws {
        let t = try BertTokenizer.load(path: tokenizer)
        var results: [Result] = []
        var megabytes = 0.0
        for n in threads {
            Parallel.setThreads(n)
            var times: [Double] = []
            var tokens = 0
            for _ in 0..<max(1, runs) {
                let r = try TokenizerBenchmark.time(file: input, tokenizer: t)
                times.append(r.seconds); tokens = r.tokens; megabytes = Double(r.bytes) / 1e6
            }
            results.append(Result(threads: n, seconds: times.median, megabytesPerSecond: megabytes / times.median, tokens: tokens))
        }
        let report = Report(file: input, megabytes: megabytes, results: results)
        if json { print(try jsonText(report)); return }
        var table = TextTable(["threads", "seconds (median)", "MB/s", "tokens"])
        for r in results { table.add(["\(r.threads)", fixed(r.seconds, 3), fixed(r.megabytesPerSecond, 1), grouped(r.tokens)]) }
        print(MachineReport.current().header + "\ntokenize  \(input)  \(fixed(megabytes, 1)) MB\n" + table.render())
    }
}

struct BenchCheckpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Checkpoint write/read speed and size at several zstd levels, with and without byte shuffle.",
        discussion: """
        Writes the model's fp32 tensors as a checkpoint (in the system temporary folder) and reads \
        them back, decompressing and checksumming every frame. Speeds are MB of raw tensor data \
        per second. Compare with Python zstandard on the same bytes.
        """)

    @Option(name: .long, help: "A model folder or checkpoint (e.g. .models/all-MiniLM-L6-v2).")
    var model: String
    @Option(name: .long, help: ArgumentHelp("zstd levels, comma-separated.", valueName: "levels"),
            transform: { try integerList($0, range: 1...22, what: "a zstd level") })
    var levels = [1, 3, 9, 19]
    @Option(name: .long, help: "Runs per setting (medians reported).")
    var runs = 3
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...1000).contains(runs) else { throw ValidationError("--runs must be 1…1000") }
    }

    func run() throws {
        threads.apply()
        let loaded = try ModelStore.load(model)
        let tensors = loaded.model.huggingFaceTensors(unrolled: false)
        let path = NSTemporaryDirectory() + "/distill-bench-\(getpid()).safetensors.zst"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var results: [CheckpointBenchmark] = []
        for level in levels {
            for shuffle in [false, true] {
                results.append(try CheckpointBenchmark.measure(tensors, metadata: [:], path: path, level: level,
                                                               byteShuffle: shuffle, runs: level >= 19 ? 1 : runs))
            }
        }
        if json { print(try jsonText(results)); return }
        var t = TextTable(["level", "byte shuffle", "bytes", "ratio", "write MB/s", "read MB/s"])
        for r in results {
            t.add(["\(r.level)", r.byteShuffle ? "yes" : "no", grouped(r.compressedBytes), fixed(r.ratio, 3), fixed(r.writeMBps, 1), fixed(r.readMBps, 1)])
        }
        print(MachineReport.current().header + "\ncheckpoint  \(model)  raw \(grouped(results.first?.rawBytes ?? 0)) bytes  threads \(Parallel.threads)\n" + t.render())
    }
}

struct BenchDistill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Distillation training steps: tokens/s, GFLOP/s and peak memory.",
        discussion: """
        Cases (random weights and tokens, batch 16 × 128, soft targets over every token, alphas \
        5/2/1, T = 2, dropout 0.1, AdamW with clipping): \
        a) \(DistillBenchmark.Case.a.description); b) \(DistillBenchmark.Case.b.description); \
        c) \(DistillBenchmark.Case.c.description). Each case runs in its own process so its peak \
        resident memory is its own. With --ranks N each case runs as an mpirun job of N ranks, each \
        taking its share of the batch (data-parallel training), and reports per step the bytes of \
        gradient summed, the time the allreduce was in flight and how much of it the backward pass \
        hid, and the time the same allreduce takes alone.
        """)

    @Option(name: .long, help: ArgumentHelp("Cases to run: a, b, c (comma-separated).", valueName: "cases"),
            transform: { try choiceList($0, DistillBenchmark.Case.allCases.map { ($0.rawValue, $0) }, what: "case") })
    var cases = DistillBenchmark.Case.allCases
    @Option(name: .long, help: "Timed steps per case (median reported).")
    var steps = 5
    @Option(name: .long, help: "Matrix products in fp32, or bf16 operands with fp32 accumulation (as training precision = \"bf16\").")
    var precision = WeightFormat.fp32
    @Option(name: .long, help: ArgumentHelp("Also time the step reading a teacher cache with the top K soft targets (alternating with the uncached step on the same statically masked batch).", valueName: "K"))
    var cache: Int?
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @Flag(name: .long, help: .hidden)
    var child = false
    @Option(name: .long, help: "Run each case data-parallel on this many processes (mpirun -np N on this machine; needs Open MPI).")
    var ranks: Int?
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps must be 1…10,000") }
        if let ranks, !(1...1024).contains(ranks) { throw ValidationError("--ranks must be 1…1024") }
        if ranks != nil && precision != .fp32 { throw ValidationError("--ranks measures fp32 training") }
        guard precision != .int8 else { throw ValidationError("--precision: training runs in fp32 or bf16 (int8 is for inference)") }
        if let cache { guard (1...30_522).contains(cache) else { throw ValidationError("--cache must be 1…30,522") } }
    }

    func run() throws {
        // A rank of the mpirun job --ranks starts: rank 0 prints the results as JSON.
        if let cluster = try Cluster.startIfLaunched() {
            cluster.runCommand {
                threads.apply()
                let results = try cases.map { try DataParallelBenchmark.run($0, cluster: cluster, steps: steps) }
                if cluster.isRoot { print(try jsonText(results)) }
                return 0
            }
        }
        if let ranks { try runRanks(ranks); return }
        threads.apply()
        let selected = cases
        if child {
            print(try jsonText(try selected.map { try DistillBenchmark.run($0, precision: precision, steps: steps, cacheTopK: cache) }))
            return
        }
        var results: [DistillBenchmark] = []
        for c in selected {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
            p.arguments = ["bench", "distill", "--cases", c.rawValue, "--steps", "\(steps)", "--precision", precision.rawValue,
                           "--child", "--threads", "\(Parallel.threads)"] + (cache.map { ["--cache", "\($0)"] } ?? [])
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw ValidationError("benchmark case \(c.rawValue) failed") }
            results += try JSONDecoder().decode([DistillBenchmark].self, from: data)
        }
        if json { print(try jsonText(results)); return }
        var t = TextTable(["case", "s/step", "tokens/s", "GFLOP/s", "peak RSS", "teacher → student parameters"])
        for r in results {
            t.add([r.name, fixed(r.secondsPerStep, 3), grouped(Int(r.tokensPerSecond)), fixed(r.gflops, 1),
                   fixed(Double(r.peakRSSBytes) / 1e9, 2) + " GB", "\(grouped(r.teacherParameters)) → \(grouped(r.studentParameters))"])
        }
        print(MachineReport.current().header + "\ndistill  batch 16×128  \(precision.rawValue)  threads \(Parallel.threads)\n" + t.render())
        for c in selected { print("  \(c.rawValue)) \(c.description)") }
        for r in results {
            guard let k = r.topK, let c = r.cachedSecondsPerStep, let ct = r.cachedTokensPerSecond else { continue }
            print("  \(r.name)) with a teacher cache (top \(k)): \(fixed(c, 3)) s/step, \(grouped(Int(ct))) tokens/s, "
                  + "\(fixed(ct / r.tokensPerSecond, 2))× the uncached step timed alternately with it")
        }
    }

    /// Each case as an mpirun job of `ranks` processes on this machine.
    func runRanks(_ ranks: Int) throws {
        guard let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first(where: FileManager.default.isExecutableFile) else {
            throw ValidationError("--ranks needs Open MPI's mpirun (apt-get install openmpi-bin)")
        }
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var results: [DataParallelBenchmark] = []
        for c in cases {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: mpirun)
            p.arguments = ["--oversubscribe", "--allow-run-as-root", "-np", "\(ranks)", me, "bench", "distill", "--cases", c.rawValue,
                           "--steps", "\(steps)"] + (threads.threads.map { ["--threads", "\($0)"] } ?? [])
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw ValidationError("benchmark case \(c.rawValue) on \(ranks) ranks failed") }
            results += try JSONDecoder().decode([DataParallelBenchmark].self, from: data)
        }
        if json { print(try jsonText(results)); return }
        var t = TextTable(["case", "s/step", "tokens/s", "MB summed/step", "buckets", "allreduce ms/step", "hidden by backward",
                           "waited ms/step", "allreduce alone ms"])
        for r in results {
            t.add([r.name, fixed(r.secondsPerStep, 3), grouped(Int(r.tokensPerSecond)), fixed(Double(r.bytesPerStep) / 1e6, 1), "\(r.buckets)",
                   fixed(r.allreduceSeconds * 1000, 1), fixed(r.hiddenFraction * 100, 0) + "%", fixed(r.exposedSeconds * 1000, 1),
                   fixed(r.allreduceAloneSeconds * 1000, 1)])
        }
        let first = results.first
        print(MachineReport.current().header + "\ndistill  batch 16×128 over \(ranks) ranks  fp32  \(first?.threadsPerRank ?? 0) threads a rank  \(first?.library ?? "")\n"
              + t.render())
        for c in cases { print("  \(c.rawValue)) \(c.description)") }
    }
}
