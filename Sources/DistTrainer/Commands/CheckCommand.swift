// Check: `dist-trainer check`, a self-test of the MPI job before you spend hours training on it.
//
// Run it exactly as you would train (`mpirun -np N dist-trainer check`). It verifies, with exact
// expected values, that sum-allreduce (Float, Double, and the 16-bit ring of --grad-compression),
// min/max, broadcast of buffers and bytes and error agreement work across all ranks; that a
// data-parallel gradient computed on shards equals the single-process gradient of the whole
// batch; and that BatchNorm running statistics merge exactly in both `sync` and `local` modes.
// Rank 0 prints one line per check; exit status 1 if any check fails on any rank. The checks are
// Core's (Training/Checks, tested on in-process ranks); the network probe is MPI's (NetworkProbe).
import ArgumentParser
import CoreSupport
import Formats
import Foundation
import Kernels
import Training

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify the MPI job: collectives, error agreement, sharded gradients, BatchNorm merging.")

    @Option(help: "Global batch of the sharded-gradient check (at least the number of ranks).")
    var batchSize: Int = 37

    @Flag(help: "Also measure the network: latency and bandwidth between rank 0 and every other rank, a small allreduce's latency, whether a non-blocking allreduce progresses while the ranks compute, and a training step's reduce-scatter and allgather at Model 2's size.")
    var network = false

    @Flag(help: "With --network: print the measurement as one JSON object (for scripts/scaling_model.py).")
    var json = false

    /// The largest `--batch-size`: the check's samples are made up, so more shows nothing new.
    static let largestBatch = 65_536

    func validate() throws {
        if !(1...CheckCommand.largestBatch).contains(batchSize) {
            throw ValidationError("--batch-size: expected 1 to \(CheckCommand.largestBatch), found \(batchSize)")
        }
    }

    func run() throws {
        try withMPIJob { mpi in
            setComputeThreads(1)
            do {
                try JobCheck.validate(batchSize: batchSize, ranks: mpi.size)
            } catch let e as SettingError {
                // Every rank refuses alike: one line, from rank 0.
                throw TrainerError("--batch-size: \(e.problem)", agreed: true)
            }
            if mpi.rank == 0 { print("dist-trainer check: \(mpi.size) rank(s) on \(mpi.nodeCount) host(s)") }
            let outcomes = try JobCheck.runAll(collective: mpi, batchSize: batchSize) { o in
                if mpi.rank == 0 { print("\(o.passed ? "ok  " : "FAIL") \(o.name): max error \(o.maxError) (tolerance \(o.tolerance))") }
            }
            let failures = outcomes.filter { !$0.passed }.count
            if failures > 0 { throw TrainerError("\(failures) check(s) failed", agreed: true) }
            if mpi.rank == 0 { print("all checks passed") }
            if network { try reportNetwork(mpi) }
        }
    }

    /// `--network`: latency and bandwidth to every rank, and a small allreduce's latency.
    func reportNetwork(_ mpi: MPICollective) throws {
        let m = try mpi.probeNetwork()
        guard mpi.rank == 0 else { return }
        if json { return print(try JSONCoding.text(m)) }
        for l in m.links {
            print(String(format: "network: rank 0 (%@) <-> rank %d (%@): latency %.1f µs, bandwidth %.2f GB/s",
                         mpi.hostNames[0], l.rank, l.host, l.latency * 1e6, l.bandwidth / 1e9))
        }
        print(String(format: "network: 8-byte allreduce over %d ranks: %.1f µs", m.ranks, m.smallAllreduce * 1e6))
        print(String(format: "network: 4 MiB allreduce: %.2f ms; started non-blocking before as long a computation, %.0f %% of it was hidden%@",
                     m.largeAllreduce * 1e3, 100 * m.overlapHidden,
                     m.overlapHidden < 0.25 ? " (MPI moves little data outside MPI calls here, so overlapping reductions with compute hides little)" : ""))
        if let s = m.stepCollectives {
            print(String(format: "network: a training step's collectives for Model 2 (%d parameters, %.1f MB), no rank waiting: reduce-scatter %.0f µs, allgather %.0f µs",
                         s.parameters, Double(4 * s.parameters) / 1e6, s.reduceScatter * 1e6, s.allgather * 1e6))
        }
    }
}
