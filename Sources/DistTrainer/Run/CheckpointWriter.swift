// CheckpointWriter: writes rank 0's in-epoch checkpoints on a background thread, so that training
// does not wait for the encoding, the write and the disk's fsync.
//
// The trainer hands over a snapshot (a copy of the state, taken between two steps); the thread
// encodes it and replaces last.safetensors atomically, keeping the one before as
// last.prev.safetensors. At most one write is in flight: a checkpoint due while the previous one is
// still being written waits for it (so no checkpoint is skipped and the newest on disk is never
// more than one interval behind the one being written). A failed write is reported by the next
// call on the training thread (`submit`, `finish`), which ends the run with ExitStatus.cannotWrite.
// Not here: what a checkpoint holds (Formats/Checkpoint), when one is due (Trainer).
import CoreSupport
import Foundation
import Formats
import Training

final class CheckpointWriter: @unchecked Sendable {
    /// Guards `pending`, `busy` and `failure`; signalled when a write ends or one is queued.
    private let condition = NSCondition()
    private var pending: (snapshot: TrainingSnapshot, header: CheckpointHeader, path: String)?
    private var busy = false
    private var failure: TrainerError?
    /// Seconds the training thread waited for a previous write, over the run (a slow disk shows here).
    private(set) var waitedSeconds = 0.0

    init() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "dist-trainer checkpoint writer"
        thread.start()
    }

    /// The aligned buffer each checkpoint passes through on its way to the disk (allocated once; used
    /// by the writer thread only). A few blocks, not the file: the snapshot is the one copy of the
    /// state a checkpoint holds in memory (1 MiB here against 7.7 MB for Model 2's whole file).
    private let staging = AlignedBytes(capacity: 1 << 20)
    /// The snapshot of the last write, once written: its arrays are reused by the next snapshot.
    private var recycled: TrainingSnapshot?

    /// Queues the snapshot `take` makes (from the last written one's memory, when there is one)
    /// for `path`, after the write in flight, if any, has finished; rethrows that write's failure.
    func submit(header: CheckpointHeader, path: String, _ take: (inout TrainingSnapshot?) -> TrainingSnapshot) throws {
        try finish()
        var old = condition.withLock { recycled.take() }
        let snapshot = take(&old)
        condition.withLock {
            pending = (snapshot, header, path)
            busy = true
            condition.broadcast()
        }
    }

    /// Waits until nothing is being written; throws the failure of a background write.
    func finish() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let error: TrainerError? = condition.withLock {
            while busy { condition.wait() }
            defer { failure = nil }
            return failure
        }
        waitedSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if let error { throw error }
    }

    private func loop() {
        while true {
            var job = condition.withLock {
                while pending == nil { condition.wait() }
                return pending.take()
            }
            let failed = write(job!.snapshot, header: job!.header, path: job!.path)
            // The snapshot goes back for reuse, and this thread keeps no reference to it, so the next
            // snapshot can write into its arrays in place.
            var written = job.take()?.snapshot
            condition.withLock {
                if let failed { failure = failed.exiting(ExitStatus.cannotWrite) }
                recycled = written.take()
                busy = false
                condition.broadcast()
            }
        }
    }

    /// Writes one checkpoint, streaming the snapshot's arrays; the failure, if any.
    private func write(_ snapshot: TrainingSnapshot, header: CheckpointHeader, path: String) -> TrainerError? {
        do {
            let (tensors, metadata) = try Checkpoint.lastParts(snapshot, header: header)
            try writeSafetensors(tensors, metadata: metadata, path: path, keepingPrevious: RunFiles.previous(of: path), through: staging)
            return nil
        } catch let e as TrainerError {
            return e
        } catch {
            return TrainerError("\(path): \(error)")
        }
    }
}
