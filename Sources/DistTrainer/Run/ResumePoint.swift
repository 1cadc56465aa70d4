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
    /// When the newest cannot be used (a write cut short by a crash, a damaged disk block) and the
    /// one before it can, the run resumes from that one, with a line saying so.
    static func read(runDirectory: String, mpi: Collective) throws -> ResumePoint {
        let newest = runDirectory + "/" + RunFiles.last
        let chosen = try mpi.rootReads { Array(try usableCheckpoint(runDirectory: runDirectory, newest: newest).utf8) }
        let path = String(decoding: chosen, as: UTF8.self)
        let bytes = try mpi.rootReads { try readFile(path) }
        let checkpoint = try mpi.agreeing { try LastCheckpoint(decodeSafetensors(bytes, name: path), path: path) }
        return ResumePoint(runDirectory: runDirectory, path: path, checkpoint: checkpoint)
    }

    /// The newest checkpoint of the run that decodes: `newest`, else the one kept before it. Throws
    /// the newest's problem when neither can be used.
    static func usableCheckpoint(runDirectory: String, newest: String) throws -> String {
        let previous = RunFiles.previous(of: newest)
        do {
            _ = try LastCheckpoint(decodeSafetensors(try checkpointBytes(runDirectory: runDirectory, path: newest), name: newest), path: newest)
            return newest
        } catch let problem {
            guard FileManager.default.fileExists(atPath: previous),
                  (try? LastCheckpoint(decodeSafetensors(try readFile(previous), name: previous), path: previous)) != nil else { throw problem }
            printWarning("\(problem); resuming from the checkpoint before it, \(previous)")
            return previous
        }
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
