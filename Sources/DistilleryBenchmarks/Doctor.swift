import Foundation
import DistilleryTensor
import DistilleryQuant

/// `distill doctor`: what the machine is, what runs the products on it, how fast, and what to
/// change when something runs below what the CPU can do.
public struct DoctorReport: Codable, Sendable {
    public struct Rate: Codable, Sendable {
        public let precision: String
        public let implementation: String
        /// Multiply-adds × 2 per second, in billions (GFLOP/s; GOP/s for int8).
        public let gigaOpsPerSecond: Double
    }
    public let machine: MachineReport
    public let openBLAS: OpenBLAS.Status
    public let simdKernels: String
    public let int8Kernels: [String]
    public let int8Kernel: String
    public let oneDNN: String
    public let oneDNNBF16: Bool
    public let oneDNNInt8: Bool
    /// A 1024 × 1536 × 384 product (a MiniLM FFN at 8 × 128 tokens) in each precision.
    public let rates: [Rate]
    public let advice: [String]

    public static func run(iterations: Int = 10) throws -> DoctorReport {
        let M = 1024, N = 1536, K = 384
        var rng = SplitMix64(seed: 5)
        let w = FloatBuffer(count: N * K), x = FloatBuffer(count: M * K), y = FloatBuffer(count: M * N)
        for i in 0..<(N * K) { w.base[i] = rng.nextGaussian() * 0.05 }
        for i in 0..<(M * K) { x.base[i] = rng.nextGaussian() }
        let fp32 = FP32Matrix(w, offset: 0, rows: N, cols: K)
        let bf16 = BF16Matrix(master: fp32)
        let (q, s) = quantizeRowsSymmetric(w.base, rows: N, cols: K)
        let packed = q.withUnsafeBufferPointer { qp in s.withUnsafeBufferPointer { PackedInt8Weights(q: qp.baseAddress!, scales: $0.baseAddress!, N: N, K: K) } }
        let int8 = Int8Matrix(packed, twoPass: false)
        var rates: [Rate] = []
        for m in [fp32, bf16, int8] as [WeightMatrix] {
            let scratch = FloatBuffer(count: max(1, m.scratchFloats(maxRows: M)))
            let oneDNNBefore = OneDNNProducts.shared.calls
            let times = Timing.measure(warmup: 2, iterations: max(1, iterations)) {
                m.forward(y.base, ldOut: N, x.base, ldInp: K, N: M, bias: nil, scratch: scratch.base)
            }
            let impl: String
            switch m.format {
            case .fp32: impl = GEMMBackend.current.name
            case .bf16: impl = OneDNN.bf16 ? "onednn bf16 kernels" : "bf16-rounded operands on \(GEMMBackend.current.name) fp32"
            case .int8:
                // oneDNN refuses a shape it cannot multiply exactly (or at all); our kernel then ran.
                if int8.kernel == .onednn && OneDNNProducts.shared.calls == oneDNNBefore {
                    impl = "\(Int8Kernel.own(levels: Int8Kernel.onednn.activationLevels)) (oneDNN refused this shape: not exact here, or not supported)"
                } else {
                    impl = m.implementation
                }
            }
            rates.append(Rate(precision: m.format.rawValue, implementation: impl, gigaOpsPerSecond: 2 * Double(M * N * K) / times.median / 1e9))
        }
        let machine = MachineReport.current()
        let blas = OpenBLAS.status()
        var advice: [String] = []
        if blas.slow {
            advice.append(blas.setByUser
                ? "OPENBLAS_CORETYPE=\(blas.core) is set: this CPU runs \(blas.expected!) kernels, several times faster. Unset it."
                : "OpenBLAS did not recognise this CPU and runs generic kernels; distill corrects this itself, other programs need OPENBLAS_CORETYPE=\(blas.expected!).")
        }
        if SIMDKernels.level < SIMDKernels.best {
            let best = SIMDKernels.best == 2 ? "AVX-512" : "AVX2 and FMA"
            advice.append("DISTILL_SIMD=\(ProcessInfo.processInfo.environment["DISTILL_SIMD"] ?? "") is set: the element-wise kernels run their \(SIMDKernels.name) copy although this CPU has \(best).")
        }
        switch OneDNN.state {
        case .notInstalled:
            // Loaded at run time: installing it is enough, no rebuild.
            advice.append("oneDNN is not installed. Install libdnnl-dev (it is loaded at run time: no rebuild) for AMX / AVX512-BF16 bf16 and VNNI / AMX int8 products.")
        case .disabled:
            advice.append("DISTILL_BACKEND=openblas is set, so oneDNN is not loaded even where libdnnl-dev is installed. Unset it to use oneDNN.")
        case .compiledOut:
            advice.append("This build compiled oneDNN out (DISTILL_NO_DNNL): rebuild without it to use libdnnl-dev.")
        case .unusable:
            advice.append("oneDNN is not used (\(OneDNN.status)).")
        case .loaded:
            break
        }
        if OneDNN.available, !OneDNN.bf16 && (machine.extensions.contains("avx512_bf16") || machine.extensions.contains("amx_bf16")) {
            advice.append("This CPU has bf16 instructions but oneDNN offers no bf16 matrix product here.")
        }
        if !machine.extensions.contains("avx512_bf16") && !machine.extensions.contains("amx_bf16") {
            advice.append("No bf16 instructions on this CPU: precision = \"bf16\" gives bf16 numerics at fp32 speed; train in fp32 here.")
        }
        return DoctorReport(machine: machine, openBLAS: blas, simdKernels: SIMDKernels.name,
                            int8Kernels: Int8Kernel.available.map(\.description), int8Kernel: Int8Kernel.best.description,
                            oneDNN: OneDNN.status, oneDNNBF16: OneDNN.bf16, oneDNNInt8: OneDNN.int8, rates: rates, advice: advice)
    }
}
