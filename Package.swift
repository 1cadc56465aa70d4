// swift-tools-version:6.0
// dist-trainer: a data-parallel trainer for fully-connected networks on Open MPI.
//
// Targets:
//   CBLAS, CZlib, CMPI  system libraries (OpenBLAS, zlib, Open MPI), each behind a tiny shim header
//   Core                 the math, data, metrics and training loop; never imports MPI
//   DistTrainer          the `dist-trainer` executable: CLI, MPI collective, files
import PackageDescription

// Release builds of the hot loops want no bounds or exclusivity checks; the loops are
// written against raw buffers whose sizes are validated once at set-up.
let fastMath: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "dist-trainer",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dist-trainer", targets: ["DistTrainer"]),
        .library(name: "Core", targets: ["Core"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"]), .brew(["open-mpi"])]),
        .target(name: "Core", dependencies: ["CBLAS", "CZlib"], swiftSettings: fastMath),
        .executableTarget(
            name: "DistTrainer",
            dependencies: [
                "Core", "CMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastMath),
        .testTarget(name: "CoreTests", dependencies: ["Core"]),
        .testTarget(name: "DistTrainerTests", dependencies: ["Core"]),
    ]
)
