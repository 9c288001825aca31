// swift-tools-version:6.0
import PackageDescription

// Layers, each importing only those below it:
//   CBLAS, CZstd (system libraries), CKernels (SIMD kernels with run-time dispatch),
//   CInt8 (int8 products), CDNNL (oneDNN, optional, loaded at run time), CMPI (Open MPI,
//   optional, loaded at run time when launched by mpirun)
//   → DistilleryTensor (storage, matrix-product backends, kernels, weight formats)
//   → DistilleryFormats (safetensors, zstd checkpoints), DistilleryText (tokenizer, data)
//   → DistilleryModels (configs, parameter layout, forward/backward, Hugging Face names)
//   → DistilleryQuant (the int8 format, loading any model file)
//   → DistilleryEvaluation (held-out metrics, comparison)
//   → DistilleryTraining (losses, AdamW, students, trainer)
//   → DistilleryRecipes (TOML) → DistilleryCLI (one file a subcommand) → distill
// DistilleryBenchmarks (what `distill bench` measures) sits beside the CLI, and DistilleryFuzzing
// (what the fuzzers in Tests/Fuzz exercise) beside the tests, both outside the library.
let package = Package(
    name: "Distillery",
    products: [
        .library(name: "Distillery", targets: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels",
            "DistilleryQuant", "DistilleryEvaluation", "DistilleryTraining", "DistilleryRecipes",
        ]),
        .executable(name: "distill", targets: ["distill"]),
        // For the fuzz harnesses in Tests/Fuzz (not part of the library).
        .library(name: "DistilleryFuzzing", targets: ["DistilleryFuzzing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // int8 dot-product microkernels (VNNI, AVX2) with a portable reference.
        .target(name: "CInt8"),
        // exp/erf-heavy row kernels (softmax, GELU, LayerNorm, losses, attention products):
        // AVX-512, AVX2+FMA and generic copies of one source, chosen at run time.
        .target(name: "CKernels", exclude: ["kernels_impl.h", "kernels_vmath.h"]),
        // oneDNN, loaded at run time when installed (no build-time dependency on dnnl.h).
        .target(name: "CDNNL"),
        // Open MPI, loaded at run time under mpirun (data-parallel training; see Sources/CMPI).
        .target(name: "CMPI"),
        .target(name: "DistilleryTensor", dependencies: ["CBLAS", "CKernels", "CDNNL"]),
        .target(name: "DistilleryFormats", dependencies: ["DistilleryTensor", "CZstd"]),
        .target(name: "DistilleryText", dependencies: ["DistilleryTensor"]),
        .target(name: "DistilleryModels", dependencies: ["DistilleryTensor", "DistilleryFormats"]),
        .target(name: "DistilleryQuant", dependencies: ["DistilleryTensor", "DistilleryFormats", "DistilleryModels", "CInt8", "CDNNL"]),
        .target(name: "DistilleryEvaluation", dependencies: ["DistilleryTensor", "DistilleryText", "DistilleryModels", "DistilleryQuant"]),
        .target(name: "DistilleryTraining", dependencies: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels", "DistilleryQuant", "DistilleryEvaluation",
            "CMPI",
        ]),
        .target(name: "DistilleryRecipes", dependencies: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels", "DistilleryTraining",
        ]),
        .target(name: "DistilleryBenchmarks", dependencies: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels", "DistilleryTraining",
        ]),
        .target(name: "DistilleryCLI", dependencies: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels", "DistilleryQuant",
            "DistilleryEvaluation", "DistilleryTraining", "DistilleryRecipes", "DistilleryBenchmarks",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "distill", dependencies: ["DistilleryCLI"]),
        // What the fuzzers feed bytes to; the tests replay what once broke them.
        .target(name: "DistilleryFuzzing", dependencies: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels", "DistilleryQuant", "DistilleryRecipes",
        ]),
        .testTarget(name: "DistilleryTests", dependencies: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels", "DistilleryQuant",
            "DistilleryEvaluation", "DistilleryTraining", "DistilleryRecipes", "DistilleryCLI", "DistilleryBenchmarks",
            "DistilleryFuzzing", "CInt8", "CDNNL",
        ], exclude: ["Fixtures"]),
    ]
)
