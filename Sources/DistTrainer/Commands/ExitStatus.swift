// ExitStatus: what dist-trainer's exit status says about a failure, so that a script can tell a
// job worth starting again (a host was lost) from one that would fail the same way again (bad
// input, a refused flag, a diverged run, a user's Ctrl-C).
//
// The values follow sysexits.h where one fits. scripts/train.sh's elastic restarts and
// scripts/slurm/train.sbatch act on them; the README's table lists them. Not here: how each
// failure is detected (MPIJob, Watchdog, TrainCommand).
import CoreSupport

enum ExitStatus {
    /// Anything not classified below (a bug, an unexpected system error): not worth a restart.
    static let failure: Int32 = 1
    /// Every learning rate of the run diverged (the loss became non-finite): there is no model.
    static let diverged: Int32 = 3
    /// A bad or refused flag (EX_USAGE, also ArgumentParser's status for invalid arguments): a
    /// resumed run given a flag that changes one of its settings, a value out of range.
    static let usage: Int32 = 64
    /// Bad input (EX_DATAERR): a data, checkpoint or `--config` file, or a run directory that cannot
    /// be used (occupied, not writable).
    static let badInput: Int32 = 65
    /// A rank or host was lost (EX_UNAVAILABLE): a collective failed or did not complete within
    /// `--collective-timeout`, or the job was torn down around a waiting rank. The one failure a
    /// restart on the remaining hosts can fix.
    static let peerLost: Int32 = 69
    /// A checkpoint or run file could not be written during training (EX_IOERR: a full disk).
    static let cannotWrite: Int32 = 74
    /// Stopped by SIGUSR1 with the state saved: requeue the job (EX_TEMPFAIL; see StopSignal).
    static let requeue: Int32 = 75
    // 130 and 143: stopped by SIGINT and SIGTERM with the state saved (128 + the signal).
}

extension TrainerError {
    /// This error, ending the process with `status` unless it already names a status of its own.
    func exiting(_ status: Int32) -> TrainerError {
        guard exitCode == ExitStatus.failure else { return self }
        var e = self
        e.exitCode = status
        return e
    }
}
