import Foundation
import XCTest
import DistilleryTensor

final class FastMathTests: XCTestCase {
    /// Bounds the vectorised exp, erf and tanh against Double references over the ranges the
    /// kernels feed them.
    func testAgainstDoubleReferences() {
        var maxExpRel = 0.0, maxErfAbs = 0.0, maxErfRel = 0.0, maxTanhAbs = 0.0
        var x = -20.0
        while x <= 20 {
            let f = Float(x)
            let e = Double(vexp(f)), re = Foundation.exp(Double(f))
            maxExpRel = max(maxExpRel, abs(e - re) / re)
            let ef = Double(verf(f)), re2 = Foundation.erf(Double(f))
            maxErfAbs = max(maxErfAbs, abs(ef - re2))
            if abs(f) > 1e-6 { maxErfRel = max(maxErfRel, abs(ef - re2) / abs(re2)) }
            maxTanhAbs = max(maxTanhAbs, abs(Double(vtanh(f)) - Foundation.tanh(Double(f))))
            x += 0.001
        }
        XCTAssertLessThan(maxExpRel, 3e-7)
        XCTAssertLessThan(maxErfAbs, 4e-7)   // about 5 ulp of 1
        XCTAssertLessThan(maxErfRel, 4e-7)
        XCTAssertLessThan(maxTanhAbs, 3e-7)
        print("exp rel \(maxExpRel) erf abs \(maxErfAbs) rel \(maxErfRel) tanh abs \(maxTanhAbs)")
        var maxDoubleRel = 0.0
        x = -700
        while x <= 700 {
            let v = vexp(D4(x, x + 0.1, x + 0.2, x + 0.3))
            for l in 0..<4 { let r = Foundation.exp(x + 0.1 * Double(l)); maxDoubleRel = max(maxDoubleRel, abs(v[l] - r) / r) }
            x += 0.37
        }
        XCTAssertLessThan(maxDoubleRel, 1e-15)
        XCTAssertEqual(vexp(-200), 0)
        XCTAssertEqual(vexp(0), 1)
    }
}
