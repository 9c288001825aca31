import Foundation
import DistilleryFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzTarget.vocabulary.run(Data(bytes: data, count: size))
    return 0
}
