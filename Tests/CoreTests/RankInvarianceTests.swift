// RankInvarianceTests: the guarantee of issue 18 in process — with SyncBatchNorm a run ends with
// bitwise the same replica (parameters, running statistics, Adam's moments, every epoch's numbers,
// the best model's) whatever the number of ranks (1 to 8, uneven shards), the number of threads
// per rank, and the recipe features in use (bf16 products, accumulation, augmentation, schedules,
// AdamW, label smoothing, early stopping); and a run stopped mid-epoch on one rank count and
// resumed on another ends with exactly the uninterrupted run's bits.
//
// Not here: the same through mpirun and real processes (DistTrainerTests/RankInvarianceTests), the
// exactness of each sum (ExactSumTests).
@testable import Collectives
import Foundation
@testable import Kernels
@testable import Model
import TestSupport
@testable import Training
import XCTest

final class RankInvarianceTests: XCTestCase {
    typealias Suite = DataParallelTrainerTests

    /// Every recipe feature at once (bf16 is its own test: not every CPU has it).
    static func everything(_ c: inout TrainingConfig) {
        c.lrSchedule = .cosine
        c.warmupEpochs = 0.5
        c.weightDecay = 0.05
        c.labelSmoothing = 0.1
        c.augmentShift = 1
        c.augmentFlip = true
        c.accumulate = 2
        c.epochs = 3
    }

    /// Trains `config` on `n` ranks with `threads` compute threads and returns rank 0's replica
    /// (after checking that every rank holds the same one).
    func replica(_ config: TrainingConfig, ranks n: Int, threads: Int = 1, sharedMemory: Bool = false,
                 file: StaticString = #filePath, line: UInt = #line) throws -> Replica {
        let before = computeThreads()
        setComputeThreads(threads)
        defer { setComputeThreads(before) }
        let data = Suite.data
        let replicas = try runRanks(n, sharedMemory: sharedMemory) { c in
            let trainer = try Trainer(config: config, split: data, collective: c)
            // Sharing memory, ranks whose products read bf16 copies share those copies' weight-gradient
            // operands too, and compute their parts of the gradients from them (no reduce-scatter).
            let shares = sharedMemory && Network.usesBF16Products(precision: config.precision)
            XCTAssertEqual(trainer.network.sharedOperands != nil, shares, "\(n) ranks: shared weight-gradient operands", file: file, line: line)
            return Replica(trainer, outcome: try trainer.run())
        }
        for (r, other) in replicas.enumerated().dropFirst() {
            XCTAssertEqual(other, replicas[0], "\(n) ranks: rank \(r) differs from rank 0", file: file, line: line)
        }
        return replicas[0]
    }

    func assertInvariant(_ config: TrainingConfig, _ what: String, ranks: [Int] = Array(2...8), file: StaticString = #filePath, line: UInt = #line) throws {
        let reference = try replica(config, ranks: 1)
        XCTAssertFalse(reference.history.isEmpty, what, file: file, line: line)
        XCTAssertTrue(reference.history.allSatisfy { $0.values.allSatisfy(\.isFinite) }, "\(what): \(reference.history)", file: file, line: line)
        for n in ranks {
            let other = try replica(config, ranks: n)
            XCTAssertEqual(other, reference, "\(what): \(n) ranks are not bit for bit the one-rank run", file: file, line: line)
        }
    }

    // MARK: - Rank and thread counts

    func testEveryRecipeFeatureIsBitwiseOnOneToEightRanks() throws {
        try assertInvariant(Suite.config(Self.everything), "every recipe feature")
    }

    func testBF16IsBitwiseOnOneToEightRanks() throws {
        try XCTSkipUnless(cpuHasBF16, "this CPU has no bf16 arithmetic (oneDNN finds \(cpuInstructionSet()))")
        try assertInvariant(Suite.config { $0.precision = .bf16 }, "bf16")
        try assertInvariant(Suite.config { $0.precision = .bf16; Self.everything(&$0) }, "bf16 with every recipe feature", ranks: [3, 8])
    }

    /// The weight-gradient products from bf16 copies of their exact operands (the default where the
    /// CPU has bf16 arithmetic) give the bits of float32 products (a CPU without it), so a cluster
    /// of both kinds of machines trains as one.
    func testExactProductsGiveTheSameBitsInBothFormats() throws {
        try XCTSkipUnless(cpuHasBF16, "this CPU has no bf16 arithmetic (oneDNN finds \(cpuInstructionSet()))")
        let config = Suite.config(Self.everything)
        XCTAssertTrue(ExactProducts.bf16ByDefault)
        let bf16 = try replica(config, ranks: 3)
        setenv("DIST_TRAINER_EXACT_PRODUCTS", "fp32", 1)
        defer { unsetenv("DIST_TRAINER_EXACT_PRODUCTS") }
        XCTAssertFalse(ExactProducts.bf16ByDefault)
        XCTAssertEqual(try replica(config, ranks: 1), bf16, "float32 products on 1 rank against bf16 copies on 3")
        XCTAssertEqual(try replica(config, ranks: 2), bf16, "float32 products on 2 ranks against bf16 copies on 3")
    }

    /// The notebook's Adam, a wider model with dropout after every block (Model 3) and a batch whose
    /// shards are uneven on most rank counts.
    func testModelThreeAndTheSeedsAdamAreBitwise() throws {
        let config = Suite.config {
            $0.model = .model3
            $0.hidden = [16, 12, 8]
            $0.optimizer = .adamSeed
            $0.batchSize = 29
        }
        try assertInvariant(config, "model 3, adam-seed, batch 29")
    }

    /// Two compute threads per rank give the bits of one (oneDNN's row- and thread-invariant
    /// products, and sums that do not depend on how the rows are blocked).
    /// (Wide enough layers that oneDNN splits the products between the two threads.)
    func testThreadCountDoesNotChangeTheBits() throws {
        let config = Suite.config { Self.everything(&$0); $0.hidden = [256, 128] }
        let one = try replica(config, ranks: 1, threads: 1)
        XCTAssertEqual(try replica(config, ranks: 1, threads: 2), one, "1 rank, 2 threads")
        XCTAssertEqual(try replica(config, ranks: 3, threads: 2), one, "3 ranks, 2 threads")
        // Every pass between the products split across the threads too (Parallel.swift; this
        // model's passes are below the size at which they are split), in parts of uneven sizes.
        let threshold = parallelWorkPerThread
        parallelWorkPerThread = 0
        defer { parallelWorkPerThread = threshold }
        XCTAssertEqual(try replica(config, ranks: 1, threads: 2), one, "1 rank, 2 threads, every pass split")
        XCTAssertEqual(try replica(config, ranks: 1, threads: 3), one, "1 rank, 3 threads, every pass split")
        XCTAssertEqual(try replica(config, ranks: 2, threads: 3), one, "2 ranks, 3 threads, every pass split")
    }

    /// The check is not vacuous: the unrounded weight-gradient products (what every trainer computes)
    /// do depend on the split, and so the run does.
    func testUnroundedProductsWouldDependOnTheSplit() throws {
        let config = Suite.config()
        let data = Suite.data
        func unrounded(_ n: Int) throws -> Replica {
            try runRanks(n) { c in
                let trainer = try Trainer(config: config, split: data, collective: c)
                trainer.network.roundsProductOperands = false
                return Replica(trainer, outcome: try trainer.run())
            }[0]
        }
        let (one, three) = (try unrounded(1), try unrounded(3))
        XCTAssertNotEqual(one.parameters, three.parameters, "the unrounded products happened to agree: the invariance tests would prove nothing")
    }

    // MARK: - Resume on another rank count

    /// Stopped by a vote after `steps` steps on `n` ranks; rank 0's snapshot.
    func interrupted(_ config: TrainingConfig, ranks n: Int, afterStep steps: Int) throws -> TrainingSnapshot {
        let data = Suite.data
        return try runRanks(n) { c -> TrainingSnapshot in
            let trainer = try Trainer(config: config, split: data, collective: c)
            var polls = 0
            trainer.stopRequested = { polls += 1; return polls == steps }
            XCTAssertEqual(try trainer.run(), .interrupted)
            return trainer.snapshot()
        }[0]
    }

    /// The snapshot restored on `n` ranks and trained to the end.
    func resumed(_ snapshot: TrainingSnapshot, ranks n: Int, sharedMemory: Bool = false) throws -> Replica {
        let data = Suite.data
        let replicas = try runRanks(n, sharedMemory: sharedMemory) { c -> Replica in
            let trainer = try Trainer(config: snapshot.config, split: data, collective: c)
            try trainer.restore(from: snapshot, path: "snapshot")
            return Replica(trainer, outcome: try trainer.run())
        }
        for other in replicas.dropFirst() { XCTAssertEqual(other, replicas[0]) }
        return replicas[0]
    }

    /// Ranks that keep one copy of the parameters (and in bf16 of their bf16 copy) for all, as MPI
    /// ranks on one node do: each rank's Adam writes its part where the others read it, and every
    /// other write (each learning rate's fresh weights, a resume) is rank 0's alone between fences.
    /// The bits are those of one rank, through a sweep of two learning rates and a resume.
    func testOneSharedCopyOfTheParametersGivesTheSameBits() throws {
        var configs = [(Suite.config(Self.everything), "every feature")]
        if cpuHasBF16 { configs.append((Suite.config { $0.precision = .bf16 }, "bf16")) }
        for (config, what) in configs {
            XCTAssertEqual(config.learningRates.count, 2, "the sweep should start a second learning rate")
            let reference = try replica(config, ranks: 1)
            for n in [2, 3, 5] {
                XCTAssertEqual(try replica(config, ranks: n, sharedMemory: true), reference, "\(what): \(n) ranks sharing one copy")
            }
            let snapshot = try interrupted(config, ranks: 2, afterStep: 7)
            XCTAssertEqual(try resumed(snapshot, ranks: 3, sharedMemory: true), reference, "\(what): resumed on 3 ranks sharing one copy")
        }
    }

    func testMidEpochResumeOnAnotherRankCountIsBitwise() throws {
        // 10 steps per epoch of batch 24 (accumulating 2: 5 steps): stops mid-epoch in epochs 1 and 2.
        for (config, what) in [(Suite.config(), "plain"), (Suite.config(Self.everything), "every feature")] {
            let reference = try replica(config, ranks: 1)
            for (first, second, step) in [(2, 3, 4), (3, 1, 7), (1, 8, 13), (5, 2, 3)] {
                let snapshot = try interrupted(config, ranks: first, afterStep: step)
                XCTAssertNotEqual(snapshot.sweep.position.stepInEpoch, 0, "\(what): the stop should fall mid-epoch")
                XCTAssertEqual(try resumed(snapshot, ranks: second), reference,
                               "\(what): stopped after step \(step) on \(first) ranks, resumed on \(second): not the uninterrupted run's bits")
            }
        }
    }
}

// MARK: - Checkpoints within an epoch

/// Rank 0's observer that keeps the snapshot of every in-epoch checkpoint, and where it was taken.
final class SnapshotKeeper: TrainingObserver {
    var snapshots: [TrainingSnapshot] = []
    func runStarted(lr: Double, lrIndex: Int, stepsPerEpoch: Int) {}
    func stepFinished(_ report: StepReport) {}
    func epochFinished(_ record: EpochRecord, isBest: Bool, trainer: Trainer) throws -> EpochDecision { .proceed }
    func diverged(lr: Double, lrIndex: Int, epoch: Int, step: Int) {}
    func interrupted(trainer: Trainer) throws {}
    func checkpointDue(trainer: Trainer) throws { snapshots.append(trainer.snapshot()) }
}

final class InEpochCheckpointTests: XCTestCase {
    typealias Suite = DataParallelTrainerTests

    /// Trains on `n` ranks with `configure` applied to every rank's trainer; rank 0's snapshots.
    func snapshots(_ config: TrainingConfig, ranks n: Int, _ configure: @escaping (Trainer) -> Void) throws -> [TrainingSnapshot] {
        let data = Suite.data
        return try runRanks(n) { c -> [TrainingSnapshot] in
            let trainer = try Trainer(config: config, split: data, collective: c)
            let keeper = SnapshotKeeper()
            if c.rank == 0 { trainer.observer = keeper }
            configure(trainer)
            XCTAssertEqual(try trainer.run(), .completed)
            return keeper.snapshots
        }[0]
    }

    /// Every 3 steps of a run of 2 × 10-step epochs, except at epoch ends (the epoch's record saves
    /// then): after run steps 3, 6, 9, 12, 15, 18 of each learning rate. Each snapshot holds every
    /// rank's moments (gathered), and resumes on another rank count to the uninterrupted run's bits.
    func testEveryNStepsSavesAResumableStateOnAnyRankCount() throws {
        let config = Suite.config()
        let reference = try runRanks(1) { c in
            let t = try Trainer(config: config, split: Suite.data, collective: c)
            return Replica(t, outcome: try t.run())
        }[0]
        let taken = try snapshots(config, ranks: 3) { $0.checkpointEvery = 3 }
        let places = taken.map { [$0.sweep.position.lrIndex, $0.sweep.position.epochsDone, $0.sweep.position.stepInEpoch] }
        XCTAssertEqual(places, [[0, 0, 3], [0, 0, 6], [0, 0, 9], [0, 1, 2], [0, 1, 5], [0, 1, 8],
                                [1, 0, 3], [1, 0, 6], [1, 0, 9], [1, 1, 2], [1, 1, 5], [1, 1, 8]])
        for (i, n) in [(1, 1), (4, 5), (7, 2)] {
            let replicas = try runRanks(n) { c -> Replica in
                let trainer = try Trainer(config: config, split: Suite.data, collective: c)
                try trainer.restore(from: taken[i], path: "snapshot \(i)")
                return Replica(trainer, outcome: try trainer.run())
            }
            XCTAssertEqual(replicas[0], reference, "snapshot \(i) at \(places[i]) resumed on \(n) ranks")
        }
    }

    /// A request on one rank (not rank 0: a timer anywhere) makes every rank checkpoint after that
    /// step; with accumulation too (the vote rides in the step's first minibatch).
    func testARequestOnAnyRankCheckpointsEveryRankTogether() throws {
        for accumulate in [1, 2] {
            let config = Suite.config { $0.accumulate = accumulate; $0.learningRates = [0.01] }
            var polls = 0
            let taken = try snapshots(config, ranks: 3) { trainer in
                guard trainer.collective.rank == 2 else { return }
                trainer.checkpointRequested = { polls += 1; return polls == 4 }
            }
            XCTAssertEqual(taken.map(\.sweep.position.stepInEpoch), [4], "accumulate \(accumulate)")
        }
    }
}
