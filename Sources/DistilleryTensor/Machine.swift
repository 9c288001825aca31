import Foundation
import CBLAS

/// What the machine is and what runs the products on it, for benchmark headers and
/// `distill doctor`: every figure a benchmark prints names the CPU and the backend.
public struct MachineReport: Codable, Sendable {
    /// /proc/cpuinfo's "model name" (the CPU model lscpu shows).
    public let cpuModel: String
    /// The instruction-set extensions that matter for the kernels, as the kernel reports them.
    public let extensions: [String]
    public let logicalCPUs: Int
    public let threads: Int
    /// Whose threads run the parallel loops: "openmp" (oneDNN's OpenMP team, which also runs
    /// its products) or "distill" (threads of Distillery's own).
    public let threadPool: String
    /// The matrix-product backend and, for OpenBLAS, the core it chose ("openblas (Haswell)").
    public let backend: String
    /// The compiled copy of the element-wise and row kernels that runs ("avx512", "avx2+fma",
    /// "generic").
    public let kernels: String

    /// The extensions Distillery's kernels or its backends can use, in /proc/cpuinfo's names.
    public static let interesting = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                     "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]

    public static func current() -> MachineReport {
        let info = CPUInfo.read()
        let model = info.family.map { "\(info.model) (family \($0) model \(info.modelNumber ?? 0))" } ?? info.model
        return MachineReport(cpuModel: model, extensions: interesting.filter(info.flags.contains),
                             logicalCPUs: ProcessInfo.processInfo.activeProcessorCount, threads: Parallel.threads,
                             threadPool: Parallel.usesOneDNNTeam ? "openmp" : "distill",
                             backend: GEMMBackend.current.description, kernels: SIMDKernels.name)
    }

    /// One line: "cpu  AMD EPYC (family 25 model 1)  [avx2 fma …]  2 CPUs, 2 threads (distill)  backend
    /// openblas (Zen)  kernels avx2+fma".
    public var header: String {
        "cpu  \(cpuModel)  [\(extensions.joined(separator: " "))]  \(logicalCPUs) CPUs, \(threads) threads (\(threadPool))  backend \(backend)  kernels \(kernels)"
    }
}

/// The kernel's view of the CPU (Linux /proc/cpuinfo).
public struct CPUInfo: Sendable {
    public let model: String
    public let flags: Set<String>
    public let vendor: String
    public let family: Int?
    public let modelNumber: Int?

    public static func read() -> CPUInfo {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
            return CPUInfo(model: "unknown CPU", flags: [], vendor: "", family: nil, modelNumber: nil)
        }
        var model = "unknown CPU", vendor = "", flags = Set<String>(), family: Int?, number: Int?
        // The first processor's block is enough: the others repeat it.
        for line in text.split(separator: "\n") {
            if line.isEmpty { break }
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces), value = parts[1].trimmingCharacters(in: .whitespaces)
            switch key {
            case "model name": model = value
            case "vendor_id": vendor = value
            case "cpu family": family = Int(value)
            case "model": number = Int(value)
            case "flags": flags = Set(value.split(separator: " ").map(String.init))
            default: break
            }
        }
        return CPUInfo(model: model, flags: flags, vendor: vendor, family: family, modelNumber: number)
    }
}

extension GEMMBackend: CustomStringConvertible {
    public var description: String {
        switch self {
        case .openblas: return "openblas (\(OpenBLAS.status().summary))"
        case .onednn: return "onednn (\(OneDNN.status); bf16 \(OneDNN.bf16 ? "yes" : "no"), int8 \(OneDNN.int8 ? "yes" : "no")) + openblas (\(OpenBLAS.status().summary))"
        }
    }
}

/// What Debian's OpenBLAS says about itself, and whether it chose the right kernels.
///
/// OpenBLAS picks its kernels (a "core") when it loads, from the CPU model it knows. A CPU newer
/// than the library (Debian's 0.3.21 and Intel's Sapphire or Emerald Rapids, say) gets a generic
/// SSE3 core that runs 5–8× below the machine's speed. `OPENBLAS_CORETYPE` chooses the core, but
/// only before the library loads, so `distill` restarts itself with it set (see `distill/main.swift`).
public enum OpenBLAS {
    /// The kernel set OpenBLAS chose at load time ("Haswell", "SkylakeX", "Zen", "Prescott", …).
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// The widest vector extension a core's kernels use: 0 SSE, 1 AVX, 2 AVX2, 3 AVX-512.
    static func level(core: String) -> Int {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return 3
        case "haswell", "zen", "excavator", "skylake": return 2
        case "sandybridge", "bulldozer", "piledriver", "steamroller": return 1
        default: return 0
        }
    }

    /// The core whose kernels fit a CPU with these /proc/cpuinfo flags (nil: no better than SSE).
    public static func bestCore(flags: Set<String>, vendor: String) -> String? {
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) {
            return flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
        }
        if flags.isSuperset(of: ["avx2", "fma"]) { return vendor == "AuthenticAMD" ? "Zen" : "Haswell" }
        if flags.contains("avx") { return "Sandybridge" }
        return nil
    }

    /// What is known about the core in use.
    public struct Status: Sendable, Codable, Equatable {
        /// The core OpenBLAS runs.
        public let core: String
        /// The core this CPU should run (nil: nothing better than what runs).
        public let expected: String?
        /// Whether OPENBLAS_CORETYPE chose the core.
        public let setByUser: Bool
        /// Whether `distill` restarted itself with a corrected core.
        public let corrected: Bool

        /// The core is below what the CPU can run.
        public var slow: Bool { expected.map { OpenBLAS.level(core: $0) > OpenBLAS.level(core: core) } ?? false }

        public var summary: String {
            if corrected { return "\(core) (corrected: OpenBLAS did not recognise this CPU)" }
            if slow && setByUser { return "\(core), slow: OPENBLAS_CORETYPE=\(core) is set; this CPU runs \(expected!)" }
            if slow { return "\(core), slow: OpenBLAS did not recognise this CPU; OPENBLAS_CORETYPE=\(expected!) would fix it" }
            return core
        }
    }

    /// Environment variable `distill` sets when it restarts itself with a corrected core.
    public static let correctedMarker = "DISTILL_OPENBLAS_CORRECTED"

    public static func status(cpu: CPUInfo = .read(), environment: [String: String] = ProcessInfo.processInfo.environment) -> Status {
        let core = coreName
        let expected = bestCore(flags: cpu.flags, vendor: cpu.vendor)
        return Status(core: core, expected: expected.flatMap { level(core: $0) > level(core: core) ? $0 : nil },
                      setByUser: environment["OPENBLAS_CORETYPE"] != nil && environment[correctedMarker] == nil,
                      corrected: environment[correctedMarker] != nil)
    }

    /// The OPENBLAS_CORETYPE to restart with, when OpenBLAS chose a core below this CPU's and the
    /// user did not choose it (nil otherwise). DISTILL_OPENBLAS_AUTOFIX=off never corrects;
    /// =force corrects a core the user set too (to reproduce the correction anywhere).
    public static func correction(_ s: Status, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let mode = environment["DISTILL_OPENBLAS_AUTOFIX"] ?? "on"
        guard mode != "off", s.slow, !s.corrected, !s.setByUser || mode == "force" else { return nil }
        return s.expected
    }
}
