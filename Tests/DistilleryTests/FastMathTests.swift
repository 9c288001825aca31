import Foundation
import XCTest
import CKernels
import DistilleryTensor

final class FastMathTests: XCTestCase {
    override func tearDown() { SIMDKernels.forceGeneric(false) }

    /// Bounds the vectorised exp, erf and tanh against Double references over the ranges the
    /// kernels feed them, in both compiled copies, and checks the copies agree bit for bit.
    func testAgainstDoubleReferences() {
        let xs = stride(from: -20.0, through: 20.0, by: 0.001).map { Float($0) }
        var results: [[[Float]]] = []
        for generic in [false, true] {
            SIMDKernels.forceGeneric(generic)
            var out: [[Float]] = []
            for f in [distill_exp, distill_erf, distill_tanh] {
                var y = [Float](repeating: 0, count: xs.count)
                f(xs, &y, xs.count)
                out.append(y)
            }
            results.append(out)
            var maxExpRel = 0.0, maxErfAbs = 0.0, maxErfRel = 0.0, maxTanhAbs = 0.0
            for (i, f) in xs.enumerated() {
                let re = Foundation.exp(Double(f))
                maxExpRel = max(maxExpRel, abs(Double(out[0][i]) - re) / re)
                let re2 = Foundation.erf(Double(f))
                maxErfAbs = max(maxErfAbs, abs(Double(out[1][i]) - re2))
                if abs(f) > 1e-6 { maxErfRel = max(maxErfRel, abs(Double(out[1][i]) - re2) / abs(re2)) }
                maxTanhAbs = max(maxTanhAbs, abs(Double(out[2][i]) - Foundation.tanh(Double(f))))
            }
            XCTAssertLessThan(maxExpRel, 3e-7)
            XCTAssertLessThan(maxErfAbs, 4e-7)   // about 5 ulp of 1
            XCTAssertLessThan(maxErfRel, 4e-7)
            XCTAssertLessThan(maxTanhAbs, 3e-7)
            print("\(SIMDKernels.name): exp rel \(maxExpRel) erf abs \(maxErfAbs) rel \(maxErfRel) tanh abs \(maxTanhAbs)")
            var maxDoubleRel = 0.0
            let xd = stride(from: -700.0, through: 700.0, by: 0.037).map { $0 }
            var yd = [Double](repeating: 0, count: xd.count)
            distill_exp_double(xd, &yd, xd.count)
            for (i, x) in xd.enumerated() { let r = Foundation.exp(x); maxDoubleRel = max(maxDoubleRel, abs(yd[i] - r) / r) }
            XCTAssertLessThan(maxDoubleRel, 1e-15)
            var edge: [Float] = [-200, 0, .nan, 100]
            var e = [Float](repeating: 1, count: 4)
            distill_exp(&edge, &e, 4)
            XCTAssertEqual(e[0], 0)
            XCTAssertEqual(e[1], 1)
            XCTAssertTrue(e[2].isNaN, "NaN propagates")
            XCTAssertTrue(e[3].isFinite)
        }
        XCTAssertEqual(results[0], results[1], "the AVX2 and generic copies differ")
    }
}
