import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryBenchmarks

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "What this machine is, what runs the matrix products, and how fast.",
        discussion: """
        Reports the CPU model and the instruction-set extensions that matter (AVX2, AVX-512, \
        VNNI, AVX512-BF16, AMX), the OpenBLAS core in use (and whether it fits the CPU), which copy \
        of the element-wise kernels runs, the int8 kernels, whether oneDNN is installed and what \
        it offers, and measures one 1024 × 1536 × 384 matrix product in fp32, bf16 and int8 with \
        the current settings. Ends with advice when something runs below what the CPU can do.
        """)

    @Option(name: .long, help: "Timed products per precision (the median is reported).")
    var iterations = 10
    @Flag(name: .long, help: "Print JSON.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...1000).contains(iterations) else { throw ValidationError("--iterations must be 1…1000") }
    }

    func run() throws {
        threads.apply()
        let r = try DoctorReport.run(iterations: iterations)
        if json { print(try jsonText(r)); return }
        let pool = r.machine.threadPool == "openmp" ? "oneDNN's OpenMP threads" : "Distillery's own threads"
        var lines = [
            "cpu            \(r.machine.cpuModel), \(r.machine.logicalCPUs) CPUs (\(r.machine.threads) threads used: \(pool))",
            "extensions     \(r.machine.extensions.joined(separator: " "))",
            "openblas       \(r.openBLAS.summary)",
            "kernels        \(r.simdKernels) (exp, erf, LayerNorm, softmax, losses)",
            "int8 kernels   \(r.int8Kernels.joined(separator: ", ")); using \(r.int8Kernel)",
            "onednn         \(r.oneDNN); bf16 products \(r.oneDNNBF16 ? "yes" : "no"), exact int8 products \(r.oneDNNInt8 ? "yes" : "no")",
            "matrix products (1024 × 1536 × 384):",
        ]
        for rate in r.rates {
            lines.append("  \(rate.precision.padding(toLength: 5, withPad: " ", startingAt: 0)) \(fixed(rate.gigaOpsPerSecond, 1).leftPadded(7)) \(rate.precision == "int8" ? "GOP/s  " : "GFLOP/s")  \(rate.implementation)")
        }
        if !r.advice.isEmpty { lines.append("advice:"); lines += r.advice.map { "  - " + $0 } }
        print(lines.joined(separator: "\n"))
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
