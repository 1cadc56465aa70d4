// swift-tools-version:6.0
// dist-trainer: a data-parallel trainer for fully-connected networks on Open MPI.
//
// Targets:
//   CBLAS, CZlib, CMPI  system libraries (OpenBLAS, zlib, Open MPI), each behind a tiny shim header
//   Core                 the math, data, metrics and training loop; never imports MPI
//   DistTrainer          the `dist-trainer` executable: CLI, MPI collective, files
import PackageDescription

// Release builds of the hot loops want no bounds or exclusivity checks (the loops run on raw
// buffers whose sizes are validated once at set-up) and vectorised square roots: Swift's
// Float.squareRoot() goes through a C shim that keeps errno semantics, and errno blocks
// vectorisation unless the shim is compiled with -fno-math-errno. On x86-64 the elementwise loops
// also target AVX2/FMA (Haswell, 2013, and later; every AVX-512 machine has them);
// DIST_TRAINER_TARGET_CPU overrides the CPU (e.g. znver4, or "" for the compiler's default).
import Foundation

var releaseFlags = ["-Ounchecked", "-enforce-exclusivity=unchecked", "-Xcc", "-fno-math-errno"]
#if arch(x86_64)
let targetCPU = ProcessInfo.processInfo.environment["DIST_TRAINER_TARGET_CPU"] ?? "haswell"
#else
let targetCPU = ProcessInfo.processInfo.environment["DIST_TRAINER_TARGET_CPU"] ?? ""
#endif
if !targetCPU.isEmpty { releaseFlags += ["-target-cpu", targetCPU] }

let fastMath: [SwiftSetting] = [.unsafeFlags(releaseFlags, .when(configuration: .release))]

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
        // What both test targets share: running processes, the Python oracles, seeded test data.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: ["Core", "TestSupport"]),
        .testTarget(name: "DistTrainerTests", dependencies: ["Core", "TestSupport"]),
    ]
)
