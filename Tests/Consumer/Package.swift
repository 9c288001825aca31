// swift-tools-version:6.0
// A package that uses Distillery the way another project would: by URL and version. CI tags a
// clone of this repository and builds this against it (.ci/consumer); the URL comes from
// DISTILLERY_URL (default: that clone).
import PackageDescription

let url = Context.environment["DISTILLERY_URL"] ?? "file:///tmp/distillery-consumer-remote"
// SwiftPM names a package by its URL's last component.
var identity = String(url.split(separator: "/").last ?? "distillery")
if identity.hasSuffix(".git") { identity.removeLast(4) }

let package = Package(
    name: "DistilleryConsumer",
    dependencies: [
        .package(url: url, from: "0.1.0"),
    ],
    targets: [
        .executableTarget(name: "consumer", dependencies: [.product(name: "Distillery", package: identity)]),
    ]
)
