import Foundation
import DistilleryFuzzing

// Built with -parse-as-library: SwiftPM links an executable's entry point as fuzz_safetensors_main,
// which hands libFuzzer the input callback.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("fuzz_safetensors_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return runDriver(&argc, &argv) { data, size in
        FuzzTarget.safetensors.run(data.map { Data(bytes: $0, count: size) } ?? Data())
        return 0
    }
}
