import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryQuant
import DistilleryTraining
import DistilleryModels

struct ParamsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "params",
        abstract: "Count parameters by component, several models side by side.",
        discussion: """
        MODEL is a Hugging Face folder, a config.json, a .safetensors.zst checkpoint or a preset: \
        \(Presets.names.joined(separator: ", ")). A preset means the base model class (with pooler); \
        add ":mlm" for the masked-LM class (MLM head, no pooler), e.g. bert-base-uncased:mlm. \
        Tied weights are counted once. Shared (ALBERT) layers are counted once in "stored" and once \
        per use in "applied per forward". Ratios are to the first model.
        """)

    @Argument(help: "Models to compare.")
    var models: [String]
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        guard !models.isEmpty else { throw ValidationError("give at least one model") }
        let breakdowns = try models.map { try ModelStore.parameterBreakdown($0) }
        print(json ? try jsonText(ParamsReport(breakdowns)) : ParamsReport.table(breakdowns))
    }
}

struct ParamsReport: Encodable {
    struct Model: Encodable {
        let name: String
        let total: Int
        let applied: Int
        let components: [ParameterBreakdown.Component]
        let ratioToFirst: Double
    }
    let models: [Model]

    init(_ b: [ParameterBreakdown]) {
        let first = Double(max(1, b.first?.total ?? 1))
        models = b.map { Model(name: $0.name, total: $0.total, applied: $0.applied, components: $0.components,
                               ratioToFirst: Double($0.total) / first) }
    }

    static func table(_ b: [ParameterBreakdown]) -> String {
        var t = TextTable(["component"] + b.enumerated().flatMap { j, m in j == 0 ? [m.name] : [m.name, "×"] })
        func ratio(_ x: Int, _ base: Int) -> String { base == 0 ? (x == 0 ? "" : "new") : fixed(Double(x) / Double(base), 2) }
        for (i, name) in ParameterBreakdown.order.map(\.rawValue).enumerated() {
            let values = b.map { $0.components[i].stored }
            if values.allSatisfy({ $0 == 0 }) { continue }
            t.add([name] + values.enumerated().flatMap { j, v in j == 0 ? [grouped(v)] : [grouped(v), ratio(v, values[0])] })
        }
        t.separator()
        t.add(["total (stored)"] + b.enumerated().flatMap { j, m in j == 0 ? [grouped(m.total)] : [grouped(m.total), ratio(m.total, b[0].total)] })
        if b.contains(where: { $0.applied != $0.total }) {
            t.add(["applied per forward"] + b.enumerated().flatMap { j, m in j == 0 ? [grouped(m.applied)] : [grouped(m.applied), ratio(m.applied, b[0].applied)] })
        }
        return t.render()
    }
}
