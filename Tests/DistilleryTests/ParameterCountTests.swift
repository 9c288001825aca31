import XCTest
import DistilleryModels

/// Totals equal Hugging Face's numel (tied weights once) for the base and the LM-head classes.
final class ParameterCountTests: XCTestCase {
    let expected: [(String, Int, Int)] = [
        ("bert-base-uncased", 109_482_240, 109_514_298),
        ("bert-large-uncased", 335_141_888, 335_174_458),
        ("distilbert-base-uncased", 66_362_880, 66_985_530),
        ("albert-base-v2", 11_683_584, 11_221_680),
        ("albert-large-v2", 17_683_968, 16_795_824),
        ("albert-xlarge-v2", 58_724_864, 54_821_040),
        ("albert-xxlarge-v2", 222_595_584, 206_368_944),
        ("all-MiniLM-L6-v2", 22_713_216, 22_744_506),
        ("gpt2", 124_439_808, 124_439_808),
        ("gpt2-medium", 354_823_168, 354_823_168),
        ("gpt2-large", 774_030_080, 774_030_080),
        ("gpt2-xl", 1_557_611_200, 1_557_611_200),
        ("openai-gpt", 116_534_784, 116_534_784),
    ]

    func breakdown(_ name: String, head: Bool) -> ParameterBreakdown {
        switch Presets.shape(name, withHead: head)! {
        case .encoder(let c): return ParameterBreakdown(name: name, layout: ParameterLayout(config: c))
        case .decoder(let d): return d.breakdown(name: name)
        }
    }

    func testPresetTotals() {
        for (name, base, mlm) in expected {
            for (head, total) in [(false, base), (true, mlm)] {
                let b = breakdown(name, head: head)
                XCTAssertEqual(b.total, total, "\(name) head=\(head)")
                XCTAssertEqual(b.components.reduce(0) { $0 + $1.stored }, b.total)
                if case .encoder(let c) = Presets.shape(name, withHead: head)! {
                    XCTAssertEqual(ParameterLayout(config: c).count, total, "\(name) layout")
                }
            }
        }
        XCTAssertEqual(Set(expected.map(\.0)), Set(Presets.names))
    }

    func testSharedLayersAreAppliedPerLayer() {
        let b = breakdown("albert-base-v2", head: true)
        let attention = b.components.first { $0.name == "attention" }!
        XCTAssertEqual(attention.stored, 4 * (768 * 768 + 768))
        XCTAssertEqual(attention.applied, 12 * attention.stored)
        XCTAssertGreaterThan(b.applied, b.total)
        let bert = breakdown("bert-base-uncased", head: false)
        XCTAssertEqual(bert.applied, bert.total)
    }
}
