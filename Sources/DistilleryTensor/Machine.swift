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
    /// The matrix-product backend and, for OpenBLAS, the core it chose ("openblas (Haswell)").
    public let backend: String

    /// The extensions Distillery's kernels or its backends can use, in /proc/cpuinfo's names.
    public static let interesting = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                     "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]

    public static func current() -> MachineReport {
        let info = CPUInfo.read()
        return MachineReport(cpuModel: info.model, extensions: interesting.filter(info.flags.contains),
                             logicalCPUs: ProcessInfo.processInfo.activeProcessorCount, threads: Parallel.threads,
                             backend: GEMMBackend.current.description)
    }

    /// One line: "AMD EPYC 7B13 · avx2 fma … · 2 CPUs, 2 threads · openblas (Zen)".
    public var header: String {
        "cpu  \(cpuModel)  [\(extensions.joined(separator: " "))]  \(logicalCPUs) CPUs, \(threads) threads  backend \(backend)"
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
        case .openblas: return "openblas (\(OpenBLAS.coreName))"
        }
    }
}

/// What Debian's OpenBLAS says about itself.
public enum OpenBLAS {
    /// The kernel set OpenBLAS chose at load time ("Haswell", "SkylakeX", "Zen", "Prescott", …).
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}
