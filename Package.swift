// swift-tools-version:6.0
// dist-trainer: a data-parallel trainer for fully-connected networks on Open MPI.
//
// Targets, bottom to top; a target imports only targets listed above it, and the compiler holds
// that (the layering of Sources/Core, whose folders are these targets, never imports MPI):
//   CDNNL, CZlib, CMPI   system libraries (oneDNN, zlib, Open MPI), each behind a tiny shim header
//   BuildInfo            refuses to start on a CPU without the build's vector level; the revision
//   CoreSupport          Sources/Core/Support: the error type, checked system calls, files, version
//   Kernels              Sources/Core/Kernels: matrix products (oneDNN) and the layer kernels
//   Collectives          Sources/Core/Collectives: the Collective protocol, single process, agreement
//   Model                Sources/Core/Model: architecture, layouts, the network, in-memory data
//   Training             Sources/Core/Training: settings, optimizers, the training loop, evaluation, checks
//   Formats              Sources/Core/Formats: safetensors, checkpoints, JSON, gzip, SHA-256, TensorBoard
//   Datasets             Sources/Core/Datasets: Fashion-MNIST's IDX files and their download
//   DistTrainer          the `dist-trainer` executable: CLI, MPI collective, run files
import PackageDescription

// Release builds of the hot loops want no bounds or exclusivity checks (the loops run on raw
// buffers whose sizes are validated once at set-up) and vectorised square roots: Swift's
// Float.squareRoot() goes through a C shim that keeps errno semantics, and errno blocks
// vectorisation unless the shim is compiled with -fno-math-errno.
//
// On x86-64 the Swift code targets the vector level of the machine that builds it: AVX-512
// (skylake-avx512: F, CD, BW, DQ, VL, which Intel since Skylake-SP and AMD since Zen 4 have) or AVX2
// and FMA (haswell), else the baseline. Nodes of a cluster run the binary of one build, so
// DIST_TRAINER_TARGET_CPU sets the CPU for the oldest one among them (haswell, x86-64, znver4, ...;
// "" for the compiler's default). The BuildInfo target refuses, with one line, to start on a CPU
// that lacks what the build needs instead of dying on an illegal instruction (BuildInfo).
import Foundation

/// The CPU to compile for on this machine (its x86-64 level, v4 or v3), from /proc/cpuinfo's flags.
func buildMachineLevel() -> String {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return "" }
    let flags = Set(line.split(separator: " ").map(String.init))
    if ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma", "bmi2"].allSatisfy(flags.contains) { return "skylake-avx512" }
    if ["avx2", "fma", "bmi1", "bmi2", "movbe"].allSatisfy(flags.contains) { return "haswell" }
    return ""
}

var releaseFlags = ["-Ounchecked", "-enforce-exclusivity=unchecked", "-Xcc", "-fno-math-errno"]
#if arch(x86_64)
let targetCPU = ProcessInfo.processInfo.environment["DIST_TRAINER_TARGET_CPU"] ?? buildMachineLevel()
#else
let targetCPU = ProcessInfo.processInfo.environment["DIST_TRAINER_TARGET_CPU"] ?? ""
#endif
if !targetCPU.isEmpty { releaseFlags += ["-target-cpu", targetCPU] }
// LLVM gives skylake-avx512 a preference for 256-bit vectors (Skylake-SP clocked down on 512-bit
// ones); Zen 4 and later Intel cores run 512-bit vectors at full clock, and oneDNN uses them anyway.
// Adam, bound by the divider, measured 1.5x faster with 512-bit vectors on Zen 4 (docs/performance.md).
if targetCPU.contains("avx512") || targetCPU.hasPrefix("znver4") || targetCPU.hasPrefix("znver5") {
    releaseFlags += ["-Xcc", "-Xclang", "-Xcc", "-target-feature", "-Xcc", "-Xclang", "-Xcc", "-prefer-256-bit"]
}

let fastMath: [SwiftSetting] = [.unsafeFlags(releaseFlags, .when(configuration: .release))]

/// Sources/Core's targets, bottom to top.
let coreTargets: [Target.Dependency] = ["CoreSupport", "Kernels", "Collectives", "Model", "Training", "Formats", "Datasets"]

/// A target of Sources/Core: its folder (by default its name) and the targets below it that it uses.
func coreTarget(_ name: String, folder: String? = nil, dependencies: [Target.Dependency] = []) -> Target {
    .target(name: name, dependencies: dependencies, path: "Sources/Core/\(folder ?? name)", swiftSettings: fastMath)
}

let package = Package(
    name: "dist-trainer",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dist-trainer", targets: ["DistTrainer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // oneDNN has no pkg-config file in Debian; its header and library are on the default paths.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"]), .brew(["onednn"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"]), .brew(["open-mpi"])]),
        // The build's facts: the CPU level the Swift code targets (checked at start-up; this C
        // target is compiled for the baseline) and the source revision.
        .target(
            name: "BuildInfo",
            cSettings: [.define("DIST_TRAINER_TARGET_CPU", to: "\"\(targetCPU.isEmpty ? "default" : targetCPU)\"", .when(configuration: .release))]),
        coreTarget("CoreSupport", folder: "Support"),
        coreTarget("Kernels", dependencies: ["CoreSupport", "CDNNL"]),
        coreTarget("Collectives", dependencies: ["CoreSupport", "Kernels"]),
        coreTarget("Model", dependencies: ["CoreSupport", "Kernels", "Collectives"]),
        coreTarget("Training", dependencies: ["CoreSupport", "Kernels", "Collectives", "Model"]),
        coreTarget("Formats", dependencies: ["CoreSupport", "Model", "Training", "CZlib"]),
        coreTarget("Datasets", dependencies: ["CoreSupport", "Model", "Formats"]),
        .executableTarget(
            name: "DistTrainer",
            dependencies: coreTargets + [
                "CMPI", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastMath),
        // What the test targets share: running processes, the Python oracles, seeded test data, an
        // in-process collective of any number of ranks.
        .target(name: "TestSupport", dependencies: ["CoreSupport", "Collectives"], path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: coreTargets + ["TestSupport"]),
        .testTarget(name: "DistTrainerTests", dependencies: coreTargets + ["TestSupport"]),
    ]
)
