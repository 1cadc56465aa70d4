// ResumePoint: the `last.safetensors` of a run being resumed, read once into a typed value.
//
// Rank 0 reads the file (the run directory need exist only on rank 0's host) and sends its bytes
// to every rank; every rank decodes them, so every rank fails alike on a bad file. Everything the
// resume needs afterwards — settings, data directory, threads, the sweep state — comes from here.
import Collectives
import CoreSupport
import Formats
import Foundation

struct ResumePoint {
    /// The run directory being resumed (where the run goes on writing).
    var runDirectory: String
    /// Its last.safetensors, as named in messages.
    var path: String
    var checkpoint: LastCheckpoint

    /// Reads `runDirectory`'s last checkpoint on rank 0 and decodes it on every rank (collective).
    static func read(runDirectory: String, mpi: Collective) throws -> ResumePoint {
        let path = runDirectory + "/" + RunFiles.last
        let bytes = try mpi.rootReads { try checkpointBytes(runDirectory: runDirectory, path: path) }
        let checkpoint = try mpi.agreeing { try LastCheckpoint(decodeSafetensors(bytes, name: path), path: path) }
        return ResumePoint(runDirectory: runDirectory, path: path, checkpoint: checkpoint)
    }

    /// The bytes of a run's last checkpoint, with errors that say what is wrong with the directory.
    static func checkpointBytes(runDirectory run: String, path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: run, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainerError("--resume \(run): no such run directory")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainerError("--resume \(run): no \(RunFiles.last) in the directory (the run never finished an epoch, or this is not a run directory)")
        }
        return try readFile(path)
    }
}
