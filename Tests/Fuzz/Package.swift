// swift-tools-version:6.0
// libFuzzer harnesses for Distillery's readers, one executable each (see run.sh). Built with
// -sanitize=fuzzer,address -parse-as-library; libFuzzer provides main.
import PackageDescription

let targets = ["safetensors", "checkpoint", "tokens", "vocabulary", "recipe", "config"]

let package = Package(
    name: "DistilleryFuzz",
    dependencies: [.package(name: "Distillery", path: "../..")],
    targets: targets.map { name in
        .executableTarget(name: "fuzz-\(name)", dependencies: [.product(name: "DistilleryFuzzing", package: "Distillery")],
                          path: "Sources/fuzz-\(name)")
    }
)
