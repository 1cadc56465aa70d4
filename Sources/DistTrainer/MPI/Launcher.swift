// Launcher: what mpirun, srun or a PMI launcher tell a process through its environment, read
// before (or without) MPI: the job size to check MPI against, and the rank that prints argument
// errors.
import Foundation

/// The number of processes the launcher says the job has, from the environment: Open MPI's mpirun
/// (OMPI_COMM_WORLD_SIZE), a PMI launcher (PMI_SIZE), or Slurm's srun (SLURM_STEP_NUM_TASKS, only
/// inside an srun task). nil when the process was not started by a launcher.
func launcherWorldSize(_ env: [String: String] = ProcessInfo.processInfo.environment) -> (size: Int, variable: String)? {
    for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
        if let v = env[variable].flatMap(Int.init) { return (v, variable) }
    }
    if env["SLURM_PROCID"] != nil, let v = env["SLURM_STEP_NUM_TASKS"].flatMap(Int.init) {
        return (v, "SLURM_STEP_NUM_TASKS")
    }
    return nil
}

/// This process's rank according to the launcher's environment (0 when not launched), used before
/// MPI is up: for example to print argument errors once rather than once per rank.
func launcherRank(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Int {
    for variable in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"] {
        if let v = env[variable].flatMap(Int.init) { return v }
    }
    return 0
}
