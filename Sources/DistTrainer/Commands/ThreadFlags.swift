// ThreadFlags: the --threads option of the commands that only run a model (evaluate, predict) and
// how it sets the products' threads. (train has its own: its default also weighs the binding.)
import ArgumentParser
import Kernels

struct ThreadFlags: ParsableArguments {
    @Option(help: "Threads per process for the products (default: $OMP_NUM_THREADS, else cores on the node / ranks on the node).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads: expected at least 1, found \(threads)") }
    }

    /// Sets the products' threads of this rank of `mpi`'s job.
    func apply(_ mpi: MPICollective) {
        setComputeThreads(threads ?? mpi.defaultThreadsPerRank)
    }
}
