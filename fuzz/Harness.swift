// Harness: libFuzzer entry points for dist-trainer's parsers of untrusted files — IDX data files,
// gzip, safetensors, and checkpoints (the metadata, the model tensors and the resume state with
// its validation). Built by scripts/fuzz.sh against Core's modules (compiled by it in their
// layering order), with libFuzzer and AddressSanitizer (`swiftc -sanitize=fuzzer,address`); FUZZ_TARGET picks the parser.
//
// A parser may reject any input with a TrainerError; a crash, a trap (overflow, out-of-bounds), a
// hang or a memory error is a finding. Not part of the trainer's build.
import Datasets
import Formats
import Foundation

nonisolated(unsafe) let target = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? "idx"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch target {
    case "idx":
        _ = try? parseIDX(bytes, name: "fuzz", expectedRank: 1)
        _ = try? parseIDX(bytes, name: "fuzz", expectedRank: 3)
    case "gzip":
        // A small limit keeps a bomb from exhausting the fuzzer's memory; the limit is what is tested.
        _ = try? gunzip(bytes, name: "fuzz", limit: 1 << 24)
    case "safetensors":
        _ = try? decodeSafetensors(bytes, name: "fuzz")
    case "checkpoint":
        fuzzCheckpoint(bytes)
    default:
        fatalError("FUZZ_TARGET must be idx, gzip, safetensors or checkpoint, found \(target)")
    }
    return 0
}

/// A checkpoint read as `evaluate` and `--resume` read one: header, model, resume state, and the
/// validation of the resume state against the checkpoint's own configuration.
func fuzzCheckpoint(_ bytes: [UInt8]) {
    guard let file = try? decodeSafetensors(bytes, name: "fuzz") else { return }
    if let model = try? ModelCheckpoint(file, path: "fuzz") { _ = try? model.network(capacity: 4) }
    guard let last = try? LastCheckpoint(file, path: "fuzz") else { return }
    _ = try? last.snapshot.sweep.validate(config: last.header.config, savedEpochs: last.header.config.epochs, stepsPerEpoch: 7, path: "fuzz")
}
