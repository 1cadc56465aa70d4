// MPIJob: runs a subcommand's body as an MPI job, and turns failures into exit codes.
//
// Agreed errors (every rank raised the same one, see Collective.agree) are printed once by rank 0
// and every rank exits 1 after MPI_Finalize. Any other error can have happened on one rank only,
// while the others wait in a collective: it is printed with the rank and the whole job is aborted
// at once (MPI_Abort), so nothing hangs.
import CoreSupport
import Foundation

/// Runs `body` on this process's rank of the job. `collectiveTimeout`: the train command's flag;
/// every command's collectives (and MPI's start-up) are watched, see Watchdog.timeout.
func withMPIJob(collectiveTimeout: Double? = nil, _ body: (MPICollective) throws -> Void) throws {
    let mpi: MPICollective
    do {
        let timeout = try Watchdog.timeout(flag: collectiveTimeout)
        FaultInjection.beforeMPIStartup(rank: launcherRank())
        mpi = try MPICollective(timeout: timeout)
    } catch {
        printError("\(error)")
        exit(1)
    }
    do {
        if let (expected, variable) = launcherWorldSize(), expected != mpi.size {
            // MPI came up as a singleton although a launcher started N processes: the binary is not
            // linked against the launcher's MPI. Training on would run N independent copies.
            throw TrainerError("\(variable)=\(expected) but MPI reports \(mpi.size) rank\(mpi.size == 1 ? "" : "s"): "
                + "this binary's MPI does not match the launcher (use the mpirun of the Open MPI it was built with, or srun --mpi=pmix)",
                agreed: true)
        }
        try body(mpi)
    } catch let e as TrainerError where e.agreed {
        if mpi.rank == 0 { printError(e.message) }
        mpi.finalize()
        exit(e.exitCode)
    } catch {
        printError(mpi.size > 1 ? "rank \(mpi.rank): \(error)" : "\(error)")
        let code = (error as? TrainerError)?.exitCode ?? ExitStatus.failure
        if mpi.size > 1 { mpi.abort(code: code) }
        mpi.finalize()
        exit(code)
    }
    mpi.finalize()
}
