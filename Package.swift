// swift-tools-version:6.0
import PackageDescription

// Layers, each importing only those below it:
//   CBLAS, CZstd (C shims), CInt8 (int8 SIMD microkernels)
//   → DistilleryTensor (storage, the one sgemm wrapper, kernels)
//   → DistilleryFormats (safetensors, zstd checkpoints), DistilleryText (tokenizer, data)
//   → DistilleryModels (configs, parameter layout, forward/backward, Hugging Face names)
//   → DistilleryQuant (int8) → DistilleryTraining (losses, AdamW, trainer, students)
//   → DistilleryRecipes (TOML) → DistilleryCLI (one file a subcommand) → distill
// The numeric kernels use 8-lane float SIMD; on x86-64 let the compiler emit AVX2 and FMA for
// them (Intel Haswell / AMD Zen and later). Other architectures use their default.
#if arch(x86_64)
let simd: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let simd: [SwiftSetting] = []
#endif

let package = Package(
    name: "Distillery",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Distillery", targets: [
            "DistilleryTensor", "DistilleryFormats", "DistilleryText", "DistilleryModels",
            "DistilleryQuant", "DistilleryTraining", "DistilleryRecipes", "DistilleryCLI",
        ]),
        .executable(name: "distill", targets: ["distill"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // int8 dot-product microkernels (VNNI, AVX2) with a portable reference; the only C.
        // -ffp-contract=off: every kernel must round exactly as the reference does.
        .target(name: "CInt8", cSettings: [.unsafeFlags(["-O2", "-ffp-contract=off"])]),
        .target(name: "DistilleryTensor", dependencies: ["CBLAS"], swiftSettings: simd),
        .target(name: "DistilleryFormats", dependencies: ["DistilleryTensor", "CZstd"]),
        .target(name: "DistilleryText", dependencies: ["DistilleryTensor"]),
        .target(name: "DistilleryModels", dependencies: ["DistilleryTensor", "DistilleryFormats"], swiftSettings: simd),
        .target(name: "DistilleryQuant", dependencies: ["DistilleryModels", "CInt8"], swiftSettings: simd),
        .target(name: "DistilleryTraining", dependencies: [
            "DistilleryModels", "DistilleryText", "DistilleryQuant",
        ], swiftSettings: simd),
        .target(name: "DistilleryRecipes", dependencies: [
            "DistilleryTraining", .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        .target(name: "DistilleryCLI", dependencies: [
            "DistilleryRecipes",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "distill", dependencies: ["DistilleryCLI"]),
        .testTarget(name: "DistilleryTests", dependencies: ["DistilleryCLI"], exclude: ["Fixtures"]),
    ]
)
