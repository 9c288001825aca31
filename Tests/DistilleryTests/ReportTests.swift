import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
import DistilleryTensor
import DistilleryModels
import DistilleryQuant
import DistilleryEvaluation
import DistilleryTraining
import DistilleryRecipes
import DistilleryCLI

/// Run reports: the SVG line charts, the Markdown tables, metrics.jsonl read leniently, and
/// `distill report` / `distill compare --report` on a run folder made of the tiny fixtures.
final class ReportTests: XCTestCase {
    /// What an SVG document holds, read back by Foundation's XML parser.
    final class SVGContents: NSObject, XMLParserDelegate {
        var elements: [String] = []
        var paths: [[String: String]] = []
        var texts: [String] = []
        var current = ""
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elements.append(name)
            if name == "path" { paths.append(attributes) }
            current = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" { texts.append(current) }
            current = ""
        }
    }

    func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> SVGContents {
        let contents = SVGContents()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = contents
        XCTAssertTrue(parser.parse(), "not XML: \(parser.parserError.map { "\($0)" } ?? "?")\n\(svg)", file: file, line: line)
        XCTAssertEqual(contents.elements.first, "svg", file: file, line: line)
        for bad in ["nan", "inf", "NaN"] {
            XCTAssertFalse(contents.paths.contains { $0["d"]!.contains(bad) }, "a coordinate is \(bad)", file: file, line: line)
        }
        return contents
    }

    func testSeriesAreOnePathEachAndTheOutputIsXML() {
        let chart = LineChart(title: "loss & <friends> \"quoted\" 'single'\u{1}", series: [
            .init(name: "loss_total", x: [1, 2, 3, 4], y: [4, 3, 2.5, 2]),
            .init(name: "loss_ce <ce>", x: [1, 2, 3, 4], y: [2, 1.5, 1.2, 1]),
            .init(name: "loss_cos", x: [1, 2, 3, 4], y: [0.5, 0.4, 0.3, 0.25]),
        ])
        let svg = chart.svg()
        let c = parse(svg)
        XCTAssertEqual(c.paths.count, 3)
        XCTAssertEqual(c.paths.map { $0["stroke"]! }, Array(SVGPlot.palette.prefix(3)))
        XCTAssertTrue(c.texts.contains("loss & <friends> \"quoted\" 'single'"), "\(c.texts)")
        XCTAssertTrue(c.texts.contains("loss_ce <ce>"))
        XCTAssertTrue(c.texts.contains("step"), "the x label")
        XCTAssertEqual(chart.svg(), svg, "deterministic")
        // Each path starts once and draws through every point.
        for p in c.paths { XCTAssertEqual(p["d"]!.filter { $0 == "M" }.count, 1); XCTAssertEqual(p["d"]!.filter { $0 == "L" }.count, 3) }
    }

    func testSinglePointsConstantsNaNAndEmptySeries() {
        let single = parse(LineChart(title: "one", series: [.init(name: "a", x: [5], y: [0.3])]).svg())
        XCTAssertEqual(single.paths.count, 1)
        XCTAssertTrue(single.paths[0]["d"]!.hasSuffix("h0"), "a lone point is a dot: \(single.paths[0]["d"]!)")

        let constant = parse(LineChart(title: "flat", series: [.init(name: "a", x: [1, 2, 3], y: [2, 2, 2]),
                                                                .init(name: "zero", x: [1, 2, 3], y: [0, 0, 0])]).svg())
        XCTAssertEqual(constant.paths.count, 2)
        let flat = LineChart(title: "flat", series: [.init(name: "a", x: [1, 2, 3], y: [7, 7, 7])], logY: true).svg()
        XCTAssertEqual(parse(flat).paths.count, 1)

        // NaN and infinity break the line; so do values a log axis cannot show.
        let gaps = parse(LineChart(title: "gaps", series: [.init(name: "a", x: [1, 2, 3, 4, 5, 6], y: [1, 2, .nan, 3, .infinity, 4])]).svg())
        XCTAssertEqual(gaps.paths.count, 1)
        let d = gaps.paths[0]["d"]!
        XCTAssertEqual(d.filter { $0 == "M" }.count, 3, d)
        XCTAssertTrue(d.hasSuffix("h0"), "the last point stands alone: \(d)")
        let log = parse(LineChart(title: "log", series: [.init(name: "a", x: [1, 2, 3, 4], y: [10, 0, -1, 0.01])], logY: true).svg())
        XCTAssertEqual(log.paths[0]["d"]!.filter { $0 == "M" }.count, 2)
        XCTAssertTrue(log.texts.contains("0.01") && log.texts.contains("10"), "\(log.texts)")

        // Nothing to draw: still a chart, saying so.
        let allNaN = parse(LineChart(title: "nan", series: [.init(name: "a", x: [1, 2], y: [.nan, .nan]), .init(name: "b", x: [], y: [])]).svg())
        XCTAssertEqual(allNaN.paths.count, 0)
        XCTAssertTrue(allNaN.texts.contains("no data"))
        XCTAssertTrue(allNaN.texts.contains("a (no data)") && allNaN.texts.contains("b (no data)"), "\(allNaN.texts)")
        XCTAssertTrue(parse(LineChart(title: "empty", series: []).svg()).texts.contains("no data"))
        XCTAssertTrue(parse(SVGPlot.document([])).elements == ["svg", "rect"])
        // Huge values are gaps rather than overflow.
        XCTAssertEqual(parse(LineChart(title: "huge", series: [.init(name: "a", x: [1, 2, 3], y: [1, .greatestFiniteMagnitude, 2])]).svg()).paths.count, 1)

        // Several charts in one document: every series of every chart.
        let both = parse(SVGPlot.document([LineChart(title: "x", series: [.init(name: "a", x: [1, 2], y: [1, 2])]),
                                           LineChart(title: "y", series: [.init(name: "b", x: [1, 2], y: [3, 1]),
                                                                          .init(name: "c", x: [1], y: [2])], xLabel: "epoch")]))
        XCTAssertEqual(both.paths.count, 3)
        XCTAssertTrue(both.texts.contains("epoch"))
    }

    func testTicksAreNice() {
        XCTAssertEqual(SVGPlot.axis([0, 97], log: false).ticks, [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(SVGPlot.axis([0.31, 0.74], log: false).ticks.map { ($0 * 100).rounded() / 100 }, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
        XCTAssertEqual(SVGPlot.axis([1, 1000], log: false).step, 200)
        XCTAssertEqual(SVGPlot.axis([-2, 2.1], log: true).ticks, [-2, -1, 0, 1, 2, 3])
        XCTAssertEqual(SVGPlot.axis([1, 3], log: false).ticks, [1, 1.5, 2, 2.5, 3])
        XCTAssertEqual(SVGPlot.axis([1, 3], log: false, integers: true).ticks, [1, 2, 3], "epochs")
        XCTAssertEqual(SVGPlot.axis([1, 40], log: false, integers: true).ticks, [0, 10, 20, 30, 40])
        XCTAssertEqual(SVGPlot.axis([2, 2], log: false, integers: true).ticks, [1, 2, 3])
        XCTAssertEqual(SVGPlot.label(0.25, step: 0.25, log: false), "0.25")
        XCTAssertEqual(SVGPlot.label(1500, step: 500, log: false), "1500")
        XCTAssertEqual(SVGPlot.label(-2, step: 0, log: true), "0.01")
        XCTAssertEqual(SVGPlot.niceStep(0.07), 0.1)
        XCTAssertEqual(SVGPlot.niceStep(2.2), 2.5)
    }

    func testMarkdownTable() {
        let report = RunReport(title: "Run report: demo", models: [
            .init(name: "teacher", parameters: 22_713_216, bytesFP32: 90_868_376, tokensPerSecond: 8123.4),
            .init(name: "student|small", parameters: 11_000_000, bytesFP32: 44_000_000, bytesCompressed: 40_100_000,
                  metrics: [.init("mlm_accuracy", 0.41234), .init("kl", 0.00012)]),
        ], speedNote: "8 × 128 tokens", lines: ["1,000 steps", "a\nb"], curves: "curves.svg", recipe: "[teacher]\nmodel = \"x\"\n")
        var stage = RunReport.StageRow(name: "student")
        stage.steps = 1000; stage.tokens = 512_000; stage.seconds = 125; stage.lastLoss = 2.5
        var withStages = report
        withStages.stages = [stage]
        XCTAssertTrue(withStages.markdown().contains("""
        ## Training

        | stage | steps | tokens | time | tokens/s | last loss |
        | :--- | ---: | ---: | ---: | ---: | ---: |
        | student | 1,000 | 512,000 | 2 min 05 s | 4,096 | 2.5000 |

        ## Run
        """), withStages.markdown())
        XCTAssertEqual(report.markdown(), """
        # Run report: demo

        ## Models

        | model | parameters | bytes fp32 | bytes compressed | tokens/s | mlm_accuracy | kl |
        | :--- | ---: | ---: | ---: | ---: | ---: | ---: |
        | teacher | 22,713,216 | 90,868,376 | — | 8,123 | — | — |
        | student\\|small | 11,000,000 | 44,000,000 | 40,100,000 | — | 0.4123 | 1.200e-04 |

        Speed: 8 × 128 tokens.

        ## Run

        - 1,000 steps
        - a b

        ## Curves

        ![loss and evaluation curves](curves.svg)

        ## Recipe

        ```toml
        [teacher]
        model = "x"
        ```

        """)
        // Backticks in the recipe get a longer fence; no models, no table.
        let fenced = RunReport(title: "t", recipe: "a = \"```\"").markdown()
        XCTAssertTrue(fenced.contains("````toml\na = \"```\"\n````\n"), fenced)
        XCTAssertFalse(fenced.contains("| model"))
        XCTAssertEqual(RunReport.number(12_345.6), "12,346")
        XCTAssertEqual(RunReport.number(.nan), "NaN")
        XCTAssertEqual(RunReport.number(0), "0")
    }


    /// A two-stage log as a task run writes it: steps (loss_* keys, some zero throughout, some
    /// missing), a step logged again after a resume, a NaN and an infinite loss (JSON5 tokens,
    /// as Python writes them), epochs with dev scores, an evaluation line of a general run.
    static let metricsText = """
    {"elapsed_s":1.5,"grad_norm":2.0,"loss_hard":0.7,"loss_soft":0,"loss_total":0.7,"lr":0.0001,"stage":"teacher","step":1,"tokens":100,"tokens_per_s":600}
    {"elapsed_s":3.0,"loss_hard":0.6,"loss_soft":0,"loss_total":0.6,"stage":"teacher","step":2,"tokens":120}
    {"dev_accuracy":0.8,"dev_examples":40,"dev_loss":0.45,"dev_macro_f1":0.78,"epoch":1,"eval":true,"stage":"teacher","step":2,"train_loss":0.65}

    {"elapsed_s":4.0,"loss_hard":0.5,"loss_total":0.5,"stage":"teacher","step":3,"tokens":80}
    {"elapsed_s":4.2,"loss_hard":0.55,"loss_total":0.55,"stage":"teacher","step":3,"tokens":90}
    {"elapsed_s":5.5,"loss_hard":0.4,"loss_total":NaN,"stage":"teacher","step":4,"tokens":110}
    {"dev_accuracy":0.9,"dev_examples":40,"dev_loss":0.35,"dev_macro_f1":0.89,"epoch":2,"eval":true,"stage":"teacher","step":4,"train_loss":0.45}
    {"dev_accuracy":0.85,"dev_examples":40,"dev_loss":0.4,"dev_macro_f1":0.86,"epoch":3,"eval":true,"stage":"teacher","step":6,"train_loss":0.40}
    {"elapsed_s":1.0,"loss_hard":0.9,"loss_soft":2.0,"loss_total":2.9,"stage":"student","step":1,"tokens":50}
    {"elapsed_s":2.0,"loss_hard":0.8,"loss_soft":Infinity,"loss_total":2.5,"stage":"student","step":2,"tokens":60}
    {"dev_accuracy":0.7,"dev_examples":40,"dev_macro_f1":0.69,"dev_teacher_agreement":0.75,"epoch":1,"eval":true,"stage":"student","step":2,"train_loss":2.7}
    {"eval":true,"kl":0.2,"mlm_accuracy":0.3,"stage":"student","step":2,"top1_agreement":0.7,"note":"text"}
    """

    func testMetricsByStage() throws {
        let m = try RunMetrics.parse(Self.metricsText)
        XCTAssertEqual(m.lines, 12, "blank lines do not count")
        XCTAssertEqual(m.stages.map(\.name), ["teacher", "student"])
        let teacher = try XCTUnwrap(m.stage("teacher")), student = try XCTUnwrap(m.stage("student"))
        // Step 3 logged again replaces the first; the NaN is kept as a gap.
        XCTAssertEqual(teacher.steps["loss_hard"]!.map(\.x), [1, 2, 3, 4])
        XCTAssertEqual(teacher.steps["loss_hard"]!.map(\.y), [0.7, 0.6, 0.55, 0.4])
        XCTAssertTrue(teacher.steps["loss_total"]![3].y.isNaN)
        XCTAssertEqual(teacher.lastLoss, 0.55, "the last finite total")
        XCTAssertEqual(teacher.tokens, 100 + 120 + 90 + 110)
        XCTAssertEqual(teacher.elapsed, 5.5)
        XCTAssertEqual(teacher.lastStepNumber, 4)
        XCTAssertEqual(teacher.epochLines.count, 3)
        XCTAssertEqual(teacher.bestEpoch?["epoch"], 2)
        XCTAssertEqual(teacher.bestEpoch?["dev_macro_f1"], 0.89)
        XCTAssertEqual(student.steps["loss_soft"]![1].y, .infinity)
        XCTAssertEqual(student.lastEvaluation?["top1_agreement"], 0.7)
        XCTAssertNil(student.lastEvaluation?["note"], "text is not a metric")
        XCTAssertEqual(student.bestEpoch?["dev_teacher_agreement"], 0.75)

        let charts = m.charts()
        XCTAssertEqual(charts.map(\.title), ["training loss: teacher", "training loss: student", "evaluation: student",
                                             "evaluation losses: student", "dev set per epoch", "losses per epoch"])
        XCTAssertEqual(charts[0].series.map(\.name), ["loss_total", "loss_hard"], "loss_soft is zero throughout")
        XCTAssertEqual(charts[1].series.map(\.name), ["loss_total", "loss_hard", "loss_soft"])
        XCTAssertEqual(charts[4].series.map(\.name), ["teacher dev_accuracy", "teacher dev_macro_f1", "student dev_accuracy",
                                                      "student dev_macro_f1", "student dev_teacher_agreement"])
        XCTAssertEqual(charts[4].series[0].y, [0.8, 0.9, 0.85])
        XCTAssertEqual(charts[4].series[0].x, [1, 2, 3])
        XCTAssertEqual(charts[4].xLabel, "epoch")
        XCTAssertEqual(charts[5].series.map(\.name), ["teacher train_loss", "teacher dev_loss", "student train_loss"])
        let svg = parse(SVGPlot.document(charts))
        XCTAssertEqual(svg.paths.count, 2 + 3 + 2 + 1 + 5 + 3)
        for title in charts.map(\.title) { XCTAssertTrue(svg.texts.contains(title), title) }
        // A general run's lines name no stage: titles without one.
        let general = try RunMetrics.parse("{\"step\":1,\"loss_total\":3,\"loss_mlm\":3}\n{\"step\":2,\"loss_total\":2,\"loss_mlm\":2}\n")
        XCTAssertEqual(general.charts().map(\.title), ["training loss"])

        XCTAssertEqual(try RunMetrics.parse("").charts(), [])
        XCTAssertEqual(try RunMetrics.parse("\n\n  \n").lines, 0)
    }

    /// Every kind of malformed line is an error naming the file and the line, read from disk.
    func testMalformedLinesNameFileAndLine() throws {
        let dir = Fixtures.temporaryDirectory + "/report-malformed"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let good = "{\"step\":1,\"loss_total\":3}\n\n"
        for (bad, reason) in [("not json at all", "not a JSON object"), ("[1, 2, 3]", "not a JSON object"),
                              ("{\"loss_total\": 1.0}", "neither \"step\" nor \"epoch\""),
                              ("{\"step\": \"three\", \"loss_total\": 1.0}", "\"step\" is not a finite number"),
                              ("{\"step\": NaN}", "\"step\" is not a finite number"),
                              ("{\"step\": 2, \"stage\": 5}", "\"stage\" is not text"),
                              ("{\"step\": 2, \"eval\": \"yes\"}", "\"eval\" is not true or false"),
                              ("{\"step\": 2, \"loss_total\": 1.0", "not a JSON object"),
                              ("\u{0}\u{1}{{{", "not a JSON object")] {
            let path = dir + "/metrics.jsonl"
            try Data((good + bad + "\n" + good).utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try RunMetrics.read(path), bad) { e in
                XCTAssertEqual(e as? RunMetricsError, .malformed(file: path, line: 3, reason: reason), bad)
                XCTAssertTrue("\(e)".hasPrefix("\(path), line 3: "), "\(e)")
            }
            // `distill report` says the same.
            XCTAssertThrowsError(try distill(["report", dir, "--no-timing"])) { e in XCTAssertTrue("\(e)".contains("\(path), line 3"), "\(e)") }
        }
        // The last line without its newline (a run killed mid-write) is still read and checked.
        let path = dir + "/metrics.jsonl"
        try Data((good + "{\"step\":2,\"loss_tot").utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try RunMetrics.read(path)) { XCTAssertEqual($0 as? RunMetricsError, .malformed(file: path, line: 3, reason: "not a JSON object")) }
        try Data((good + "{\"step\":2,\"loss_total\":2}").utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try RunMetrics.read(path).stage(nil)?.steps["loss_total"]?.map(\.y), [3, 2])
        // Numbers no count or axis can hold are shown as missing, never a trap.
        try Data(("{\"step\":1e300,\"tokens\":-1e300,\"elapsed_s\":-5,\"loss_total\":1e-320,\"stage\":\"s\"}\n"
                  + "{\"step\":-1e300,\"epoch\":1e300,\"dev_accuracy\":1e308,\"stage\":\"s\"}\n"
                  + "{\"step\":1e301,\"loss_total\":-1e308,\"loss_mlm\":5e-324}\n").utf8).write(to: URL(fileURLWithPath: path))
        try distill(["report", dir, "--no-timing"])
        let hostile = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        XCTAssertTrue(hostile.contains("""
        | stage | time | last loss | epochs | dev accuracy |
        | :--- | ---: | ---: | ---: | ---: |
        | s | ? | 1.000e-320 | 1 | 1.000e+308 |
        | training | — | -1.000e+308 | — | — |
        """), hostile)
        XCTAssertEqual(parse(try String(contentsOfFile: dir + "/curves.svg", encoding: .utf8)).elements.first, "svg")
        // A line without end is refused at the limit rather than held in memory.
        try Data(("{\"step\":1,\"note\":\"" + String(repeating: "x", count: RunMetrics.maxLineBytes + 10) + "\"}\n").utf8)
            .write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try RunMetrics.read(path)) { XCTAssertEqual($0 as? RunMetricsError, .lineTooLong(file: path, line: 1, limit: RunMetrics.maxLineBytes)) }
        XCTAssertThrowsError(try RunMetrics.read(dir + "/absent.jsonl")) { XCTAssertTrue("\($0)".contains("absent.jsonl"), "\($0)") }
    }

    /// A long log: every step is read (the totals count them all) but each series is drawn from
    /// at most the cap, its highest and lowest values kept.
    func testLongLogsAreDecimated() throws {
        let dir = Fixtures.temporaryDirectory + "/report-long"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var text = ""
        let n = 60_000
        for step in 1...n {
            let loss = step == 31_337 ? 50.0 : step == 40_000 ? 0.001 : 5.0 / (1 + Double(step) / 1000)
            text += "{\"elapsed_s\":\(Double(step) / 100),\"loss_total\":\(loss),\"step\":\(step),\"tokens\":10}\n"
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        let m = try RunMetrics.read(dir + "/metrics.jsonl")
        XCTAssertEqual(m.lines, n)
        XCTAssertEqual(m.stage(nil)?.tokens, Double(10 * n))
        let series = try XCTUnwrap(m.charts(maxPoints: 1000).first?.series.first)
        XCTAssertLessThanOrEqual(series.y.count, 1000)
        XCTAssertGreaterThanOrEqual(series.y.count, 500)
        XCTAssertEqual(series.y.max(), 50, "the spike is kept")
        XCTAssertEqual(series.y.min(), 0.001, "the dip is kept")
        XCTAssertEqual(series.x.first, 1)
        XCTAssertEqual(series.x.last, Double(n))
        XCTAssertEqual(series.x, series.x.sorted(), "in step order")
        // Gaps survive decimation.
        let gappy = (1...10_000).map { CurvePoint(Double($0), $0 == 5000 ? .nan : 1 / Double($0)) }
        let kept = Decimation.minMax(gappy, maxPoints: 200)
        XCTAssertEqual(kept.filter { $0.y.isNaN }.map(\.x), [5000])
        XCTAssertEqual(Decimation.minMax(Array(gappy.prefix(150)), maxPoints: 200), Array(gappy.prefix(150)), "short series are kept whole")

        try distill(["report", dir, "--no-timing"])
        let svg = try String(contentsOfFile: dir + "/curves.svg", encoding: .utf8)
        XCTAssertLessThan(svg.utf8.count, 100_000)
        XCTAssertEqual(parse(svg).paths.count, 1)
        let md = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        XCTAssertTrue(md.contains("| training | 60,000 | 600,000 | 10 min 00 s | 1,000 | 0.0820 |"), md)
    }

    /// `distill report` on a run folder assembled from the tiny fixtures, an empty log, and
    /// `distill compare --report`.
    func testReportAndCompareReportCommands() throws {
        let dir = Fixtures.temporaryDirectory + "/report-run"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try distill(["report", dir])) { e in XCTAssertTrue("\(e)".contains("holds no run"), "\(e)") }
        XCTAssertThrowsError(try distill(["report", dir + "/nothing-here"])) { e in XCTAssertTrue("\(e)".contains("not a folder"), "\(e)") }

        // An empty log: a report without curves.
        try Data().write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        try distill(["report", dir, "--no-timing"])
        let empty = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        XCTAssertTrue(empty.contains("- metrics.jsonl: 0 lines"), empty)
        XCTAssertFalse(empty.contains("## Curves") || empty.contains("## Training"), empty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/curves.svg"))

        let teacher = Fixtures.temporaryDirectory + "/report-teacher"
        try Fixtures.makeTinyTeacher(at: teacher)
        try Fixtures.makeTinyTeacher(at: dir + "/student")
        let loaded = try ModelStore.load(dir + "/student")
        try ModelStore.saveCheckpoint(LoadedModel(model: loaded.model, path: teacher, tokenizer: loaded.tokenizer,
                                                  metadata: ["distillery.recipe": "[teacher]\nmodel = \"\(teacher)\"\n"]),
                                      to: dir + "/student.safetensors.zst")
        _ = try Quantizer.quantize(input: dir + "/student", output: dir + "/student-int8.safetensors.zst")
        try Data(Self.metricsText.utf8).write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))

        try distill(["report", dir, "--teacher", teacher, "--iterations", "1"])
        let md = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        let bytes = { (p: String) in grouped(try! ModelStore.bytesOnDisk(p)) }
        for expected in ["# Run report: report-run",
                         "| model | precision | parameters | bytes fp32 | bytes int8 | bytes compressed | tokens/s |",
                         "| teacher | — | 108,864 | \(bytes(teacher)) | — | — |",
                         "| student | — | 108,864 | \(bytes(dir + "/student")) | — | \(bytes(dir + "/student.safetensors.zst")) |",
                         "| student int8 | int8 | 108,864 | — | \(bytes(dir + "/student-int8.safetensors.zst")) | — |",
                         // The teacher's best epoch (2 of 3), the student's only one; step 3's repeat replaced.
                         "| teacher | 4 | 420 | 5.5 s | 76 | 0.5500 | 3 | 2 | 0.9000 | 0.8900 |",
                         "| student | 2 | 110 | 2.0 s | 55 | 2.5000 | 1 | 1 | 0.7000 | 0.6900 |",
                         "- metrics.jsonl: 12 lines", "![loss and evaluation curves](curves.svg)", "```toml\n[teacher]\n"] {
            XCTAssertTrue(md.contains(expected), "report.md lacks '\(expected)':\n\(md)")
        }
        // The teacher's row carries its best epoch's scores, the student's its last evaluation's and best epoch's.
        let rows = md.split(separator: "\n").filter { $0.hasPrefix("| teacher | — | 108,864") || $0.hasPrefix("| student | — | 108,864") }
        XCTAssertEqual(rows.count, 2, md)
        XCTAssertTrue(rows[0].contains("0.9000") && rows[0].contains("0.8900"), "\(rows[0])")
        XCTAssertTrue(rows[1].contains("0.7000") && rows[1].contains("0.3000") && rows[1].contains("0.7500"), "\(rows[1])")
        let svg = try String(contentsOfFile: dir + "/curves.svg", encoding: .utf8)
        XCTAssertEqual(parse(svg).paths.count, 16)

        // Without timing; without metrics (no curves, the old plot removed); --json.
        try FileManager.default.removeItem(atPath: dir + "/metrics.jsonl")
        try distill(["report", dir, "--no-timing", "--json"])
        let bare = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        XCTAssertFalse(bare.contains("tokens/s") || bare.contains("## Curves"), bare)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/curves.svg"))

        let out = dir + "/comparison.md"
        try distill(["compare", teacher, dir + "/student-int8.safetensors.zst", "--data", Fixtures.repositoryRoot + "/recipes/data/demo-heldout.txt",
                     "--batches", "1", "--iterations", "1", "--shapes", "2x16", "--report", out,
                     "--probe-train", Fixtures.path("probe/train.tsv"), "--probe-test", Fixtures.path("probe/test.tsv")])
        let comparison = try String(contentsOfFile: out, encoding: .utf8)
        for expected in ["| model | precision | parameters | bytes on disk | tokens/s | MLM accuracy | top-1 agreement | KL | sentence cosine | probe accuracy | probe macro-F1 |",
                         "| \(teacher) | fp32 | 108,864 | \(bytes(teacher)) |", "probe: logistic regression (C = 1.0)", "at 2 × 16 tokens"] {
            XCTAssertTrue(comparison.contains(expected), "comparison.md lacks '\(expected)':\n\(comparison)")
        }
    }

    /// The numbers of a metrics.jsonl read by JSONSerialization, independently of RunMetrics.
    static func independentlyRead(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// `distill run` on a general recipe writes report.md and curves.svg at the end, their
    /// numbers those of its metrics.jsonl.
    func testRunWritesReport() throws {
        let recipe = try TrainerTests.setUp("report", recipeBody: TrainerTests.baseRecipe.replacingOccurrences(of: "STEPS", with: "12")
            .replacingOccurrences(of: "every = 0\nbatches = 4", with: "every = 6\nbatches = 2"))
        try distill(["run", recipe])
        let run = URL(fileURLWithPath: recipe).deletingLastPathComponent().path + "/run"
        let lines = try Self.independentlyRead(run + "/metrics.jsonl")
        let steps = lines.filter { $0["eval"] == nil }, evals = lines.filter { $0["eval"] as? Bool == true }
        XCTAssertEqual(steps.count, 12)
        XCTAssertGreaterThanOrEqual(evals.count, 2, "before training and at the end at least")
        let md = try String(contentsOfFile: run + "/report.md", encoding: .utf8)
        let tokens = steps.reduce(0) { $0 + ($1["tokens"] as! Int) }
        let last = steps.last!, lastEval = evals.last!
        XCTAssertTrue(md.contains("| training | 12 | \(grouped(tokens)) | \(RunReport.duration(last["elapsed_s"] as! Double)) |"
                                  + " \(grouped(Int((Double(tokens) / (last["elapsed_s"] as! Double)).rounded()))) |"
                                  + " \(RunReport.number(last["loss_total"] as! Double)) |"), md)
        let studentRow = try XCTUnwrap(md.split(separator: "\n").first { $0.hasPrefix("| student |") })
        XCTAssertTrue(studentRow.contains(" \(RunReport.number(lastEval["mlm_accuracy"] as! Double)) |"), "\(studentRow)\n\(md)")
        XCTAssertTrue(studentRow.contains(" \(RunReport.number(lastEval["kl"] as! Double)) |"), "\(studentRow)\n\(md)")
        XCTAssertTrue(md.contains("| teacher |") && md.contains("```toml\nname = \"tiny\""), md)
        XCTAssertFalse(md.contains("Speed:"), "no model is timed at the end of a run")
        let svg = parse(try String(contentsOfFile: run + "/curves.svg", encoding: .utf8))
        XCTAssertTrue(svg.texts.contains("training loss") && svg.texts.contains("evaluation"), "\(svg.texts)")
        XCTAssertEqual(svg.paths.count, 4 + 4 + 2, "loss_total, ce, mlm, cos; four scores; mlm_loss and kl")
    }

    /// A task run: its stages in the training table (best epochs as metrics.jsonl has them),
    /// the fine-tuned teacher and the baseline in the models table, every stage's curves.
    func testTaskRunWritesReport() throws {
        let dir = try TaskTests.folder("report")
        try """
        name = "tiny-task"
        output = "run"
        seed = 5
        [teacher]
        model = "teacher"
        [teacher.finetune]
        epochs = 2
        lr = 2e-3
        batch_size = 32
        [student]
        builder = "layers"
        layers = [1]
        [task]
        train = "train.tsv"
        dev = "dev.tsv"
        max_seq_len = 32
        baseline = true
        [loss]
        alpha_soft = 1.0
        alpha_hard = 0.5
        [optimizer]
        lr = 2e-3
        [training]
        epochs = 2
        batch_size = 32
        """.write(toFile: dir + "/task.toml", atomically: true, encoding: .utf8)
        let summary = try Trainer(recipe: try RecipeParser.load(dir + "/task.toml")).run()
        XCTAssertEqual(summary.report, dir + "/run/report.md")
        let lines = try Self.independentlyRead(dir + "/run/metrics.jsonl")
        let md = try String(contentsOfFile: dir + "/run/report.md", encoding: .utf8)
        for stage in ["teacher", "student", "baseline"] {
            let epochs = lines.filter { $0["stage"] as? String == stage && $0["epoch"] != nil }
            XCTAssertEqual(epochs.count, 2, stage)
            // The first of the best (what TaskTrainer keeps).
            let best = epochs.reduce(epochs[0]) { ($1["dev_accuracy"] as! Double) > ($0["dev_accuracy"] as! Double) ? $1 : $0 }
            let steps = lines.filter { $0["stage"] as? String == stage && $0["epoch"] == nil }
            let row = "| \(stage) | \(grouped(steps.last!["step"] as! Int)) | \(grouped(steps.reduce(0) { $0 + ($1["tokens"] as! Int) })) |"
            XCTAssertTrue(md.contains(row), "lacks \(row):\n\(md)")
            let tail = " | 2 | \(best["epoch"] as! Int) | \(RunReport.number(best["dev_accuracy"] as! Double)) | \(RunReport.number(best["dev_macro_f1"] as! Double)) |"
            XCTAssertTrue(md.split(separator: "\n").contains { $0.hasPrefix(row) && $0.hasSuffix(tail) }, "lacks \(row)…\(tail):\n\(md)")
        }
        XCTAssertTrue(md.contains("- teacher: \(dir)/run/teacher"), md)
        XCTAssertTrue(md.contains("| baseline (labels only) |"), md)
        XCTAssertTrue(md.contains("```toml\nname = \"tiny-task\"\n"), "the recipe, though the checkpoints do not record it:\n\(md)")
        let svg = parse(try String(contentsOfFile: dir + "/run/curves.svg", encoding: .utf8))
        for title in ["training loss: teacher", "training loss: student", "training loss: baseline", "dev set per epoch", "losses per epoch"] {
            XCTAssertTrue(svg.texts.contains(title), "\(title): \(svg.texts)")
        }
        XCTAssertTrue(svg.texts.contains("baseline dev_accuracy"))
    }
}
