import Foundation
import XCTest
import DistilleryTensor
import DistilleryQuant
import DistilleryBenchmarks

/// The fallback paths give the answers the fast ones do: OpenBLAS forced to its generic SSE3
/// core (what a CPU it does not recognise gets), the generic copy of the C kernels (what a CPU
/// without AVX2 and FMA runs), the portable int8 kernel, and no oneDNN. OpenBLAS chooses its
/// core when it loads, so the checks run in a child process started with that environment:
/// the fixture parity tests, the distillation steps against PyTorch, bf16 against fp32, and
/// the int8 paths.
final class FallbackTests: XCTestCase {
    static let child = "DISTILL_FALLBACK_CHILD"

    func testFallbackPathsMatchTheReferences() throws {
        if ProcessInfo.processInfo.environment[Self.child] != nil { try checks(); return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        p.arguments = ["DistilleryTests.FallbackTests/testFallbackPathsMatchTheReferences"]
        var env = ProcessInfo.processInfo.environment
        env[Self.child] = "1"
        env["OPENBLAS_CORETYPE"] = "Prescott"
        env["DISTILL_OPENBLAS_AUTOFIX"] = "off"
        env["DISTILL_SIMD"] = "generic"
        env["DISTILL_INT8_KERNEL"] = "scalar"
        env["DISTILL_BACKEND"] = "openblas"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "the fallback checks failed:\n" + text.split(separator: "\n").filter { $0.contains("error") }.joined(separator: "\n"))
        XCTAssertTrue(text.contains("Executed 1 test"), text)
    }

    /// `distill doctor` acts on why oneDNN is not used (the state), not on its status text;
    /// the two agree.
    func testOneDNNStateAgreesWithItsStatus() {
        switch OneDNN.state {
        case .loaded: XCTAssertTrue(OneDNN.available); XCTAssertTrue(OneDNN.status.hasPrefix("oneDNN "), OneDNN.status)
        case .notInstalled: XCTAssertFalse(OneDNN.available); XCTAssertTrue(OneDNN.status.hasPrefix("not installed"), OneDNN.status)
        case .disabled: XCTAssertFalse(OneDNN.available); XCTAssertEqual(ProcessInfo.processInfo.environment["DISTILL_BACKEND"], "openblas")
        case .compiledOut: XCTAssertFalse(OneDNN.available); XCTAssertTrue(OneDNN.status.contains("DISTILL_NO_DNNL"), OneDNN.status)
        case .unusable: XCTAssertFalse(OneDNN.available)
        }
    }

    func checks() throws {
        XCTAssertEqual(OpenBLAS.coreName, "Prescott")
        XCTAssertEqual(SIMDKernels.name, "generic")
        XCTAssertEqual(GEMMBackend.current, .openblas)
        XCTAssertEqual(OneDNN.state, .disabled)
        XCTAssertTrue(try DoctorReport.run(iterations: 1).advice.contains { $0.hasPrefix("DISTILL_BACKEND=openblas is set") },
                      "distill doctor says why oneDNN is not used")
        XCTAssertEqual(Int8Kernel.best, .scalar)
        func run<T: XCTestCase>(_ type: T.Type, _ body: (T) throws -> Void) throws { try body(type.init(name: "fallback", testClosure: { _ in })) }
        try run(ForwardParityTests.self) { try $0.testTinyBERT(); try $0.testTinyALBERT(); try $0.testTinyDistilBERT() }
        try run(DistillStepTests.self) { try $0.testBERTStudent(); try $0.testALBERTStudent() }
        try run(BF16TrainingTests.self) { try $0.testBERTStudent() }
        try run(Int8KernelTests.self) { $0.testKernelsAreBitIdentical(); $0.testResidualQuantization() }
        try run(EvalCompareTests.self) { try $0.testQuantizedCheckpointThroughTheCommands() }
    }
}
