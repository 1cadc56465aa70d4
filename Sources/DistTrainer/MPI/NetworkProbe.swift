// NetworkProbe: what the network between the ranks costs — latency and bandwidth of point-to-point
// messages between rank 0 and every other rank, the latency of a small allreduce, and the optimizer
// step's two collectives at Model 2's size with no rank waiting for another — measured with the
// job's own MPI (`dist-trainer check --network`). These are the α and β of the scaling
// model (scripts/scaling_model.py) and a quick answer to "is this cluster's network what I think?".
import CMPI
import Collectives
import CoreSupport
import Foundation
import Kernels
import Model
import Training

/// One peer's ping-pong figures, seen from rank 0.
struct LinkMeasurement: Codable {
    var rank: Int
    var host: String
    /// Half a round trip of an 8-byte message, in seconds (α).
    var latency: Double
    /// Bytes per second, one way, of a stream of 4 MiB messages (β): sustained, as training's
    /// traffic is, rather than one message that a token bucket's burst would carry faster.
    var bandwidth: Double
}

/// Everything `check --network` measures.
struct NetworkMeasurement: Codable {
    var ranks: Int
    var hosts: Int
    var links: [LinkMeasurement]
    /// One 8-byte Double allreduce over all ranks, in seconds (median).
    var smallAllreduce: Double
    /// A blocking allreduce of 4 MiB of Floats over all ranks, in seconds (median).
    var largeAllreduce: Double
    /// The share of that allreduce's time hidden when it is started non-blocking (MPI_Iallreduce)
    /// and the rank computes for as long before waiting for it: 1 when MPI moves the data while the
    /// rank computes, 0 when it moves it only inside MPI calls (no asynchronous progress), in which
    /// case overlapping the gradient reduction with backward cannot pay.
    var overlapHidden: Double
    /// The optimizer step's collectives at the seed's model (Model 2 on 784 inputs and 10 classes),
    /// as training runs them, on ranks synchronised just before: their cost without waiting.
    var stepCollectives: StepCollectivesMeasurement?
}

/// The weight gradients' reduce-scatter and the parameters' allgather of one optimizer step.
struct StepCollectivesMeasurement: Codable {
    /// Float32 values in the buffer (the model's parameters).
    var parameters: Int
    /// Median seconds of the ring reduce-scatter, the summing of the arriving parts included.
    var reduceScatter: Double
    /// Median seconds of the allgather.
    var allgather: Double
}

extension MPICollective {
    /// Ping-pong between rank 0 and each other rank in turn (collective: every rank must call it).
    func probeNetwork() throws -> NetworkMeasurement {
        var links: [LinkMeasurement] = []
        for peer in 1..<max(size, 1) {
            let latency = try pingPong(peer: peer, bytes: 8, repeats: 200) / 2
            let (large, count) = (4 << 20, 8)
            let seconds = try stream(peer: peer, bytes: large, messages: count, repeats: 3)
            links.append(LinkMeasurement(rank: peer, host: hostNames[peer], latency: latency, bandwidth: Double(large * count) / seconds))
        }
        var samples: [Double] = []
        for _ in 0..<200 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try allreduceMinMax(1)
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let (large, hidden) = try probeOverlap()
        return NetworkMeasurement(ranks: size, hosts: nodeCount, links: links, smallAllreduce: median(samples),
                                  largeAllreduce: large, overlapHidden: hidden, stepCollectives: try probeStepCollectives())
    }

    /// The reduce-scatter and allgather of a training step at Model 2's size (the same calls as
    /// ShardedAdam), each after a barrier, so that no rank waits for a slower one: what a step's
    /// communication costs at the least (medians of 30 after 3 untimed; collective).
    private func probeStepCollectives() throws -> StepCollectivesMeasurement? {
        guard size > 1 else { return nil }
        let count = ParameterLayout(TrainingConfig().architecture(inputWidth: 784, classCount: 10)).count
        let buffer = Buffer<Float>(count: count)
        let partition = Partition(count: count, parts: size)
        var (scatter, gather): ([Double], [Double]) = ([], [])
        for i in 0..<33 {
            try barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try reduceScatterSum(buffer.all, partition: partition)
            let middle = DispatchTime.now().uptimeNanoseconds
            try barrier()
            let again = DispatchTime.now().uptimeNanoseconds
            try allgather(buffer.all, partition: partition)
            let end = DispatchTime.now().uptimeNanoseconds
            if i >= 3 {
                scatter.append(Double(middle - start) / 1e9)
                gather.append(Double(end - again) / 1e9)
            }
        }
        return StepCollectivesMeasurement(parameters: count, reduceScatter: median(scatter), allgather: median(gather))
    }

    /// A 4 MiB allreduce blocking, then started with MPI_Iallreduce before computing for as long as
    /// the blocking one took (arithmetic, no MPI calls) and MPI_Wait: the share of the allreduce's
    /// time that disappeared (medians of 5; collective).
    private func probeOverlap() throws -> (seconds: Double, hidden: Double) {
        var buffer = [Float](repeating: 1, count: 1 << 20)
        func everyRankTimed(_ body: () throws -> Void) throws -> Double {
            var times: [Double] = []
            for _ in 0..<6 {
                try barrier()
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return median(Array(times.dropFirst()))
        }
        let count = Int32(buffer.count)
        let blocking = try everyRankTimed {
            try MPICollective.check(MPI_Allreduce(cmpi_in_place(), &buffer, count, cmpi_float(), cmpi_op_sum(), world), "MPI_Allreduce")
        }
        var sink = 1.0
        let overlapped = try everyRankTimed {
            var request: MPI_Request?
            try MPICollective.check(MPI_Iallreduce(cmpi_in_place(), &buffer, count, cmpi_float(), cmpi_op_sum(), world, &request), "MPI_Iallreduce")
            let until = DispatchTime.now().uptimeNanoseconds + UInt64(blocking * 1e9)
            while DispatchTime.now().uptimeNanoseconds < until {
                for _ in 0..<1000 { sink = sink * 1.000_000_1 + 1e-9 }
            }
            try MPICollective.check(MPI_Wait(&request, cmpi_status_ignore()), "MPI_Wait")
        }
        if sink == 0 { print("") }  // keeps the compute loop from being optimised away
        return (blocking, min(max((2 * blocking - overlapped) / blocking, 0), 1))
    }

    /// The median time for rank 0 to stream `messages` messages of `bytes` to `peer` and hear back
    /// (a 1-byte acknowledgement). A stream, not a ping-pong: on a shaped link a ping-pong leaves
    /// each direction idle half the time, the token bucket refills, and the probe read 1.36× the
    /// sustained rate of a 1 Gbit/s tbf link. (An exchange in both directions at once was tried
    /// too: with 4 MiB messages it read 0.07 GB/s on that link, where the training rings move
    /// 0.13 GB/s each way.)
    private func stream(peer: Int, bytes: Int, messages: Int, repeats: Int) throws -> Double {
        var buffer = [UInt8](repeating: 1, count: bytes)
        var ack = [UInt8](repeating: 0, count: 1)
        return try timed(with: peer, repeats: repeats, warmUp: 1) { other in
            for _ in 0..<messages {
                if rank == 0 { try send(&buffer, to: other, tag: 10) } else { try receive(&buffer, from: other, tag: 10) }
            }
            if rank == 0 { try receive(&ack, from: other, tag: 11) } else { try send(&ack, to: other, tag: 11) }
        }
    }

    /// The median round trip of `bytes` between rank 0 and `peer`.
    private func pingPong(peer: Int, bytes: Int, repeats: Int) throws -> Double {
        var buffer = [UInt8](repeating: 1, count: bytes)
        return try timed(with: peer, repeats: repeats, warmUp: 2) { other in
            if rank == 0 {
                try send(&buffer, to: other, tag: 9)
                try receive(&buffer, from: other, tag: 9)
            } else {
                try receive(&buffer, from: other, tag: 9)
                try send(&buffer, to: other, tag: 9)
            }
        }
    }

    /// The median time of `body` on rank 0 and `peer` (given the other end's rank), over `repeats`
    /// runs after `warmUp` untimed ones; the other ranks only synchronise (collective).
    private func timed(with peer: Int, repeats: Int, warmUp: Int, _ body: (Int32) throws -> Void) throws -> Double {
        try barrier()
        guard rank == 0 || rank == peer else { try barrier(); return 0 }
        let other = Int32(rank == 0 ? peer : 0)
        var times: [Double] = []
        for _ in 0..<(warmUp + repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            try body(other)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        try barrier()
        return median(Array(times.dropFirst(warmUp)))
    }

    private func send(_ bytes: inout [UInt8], to other: Int32, tag: Int32) throws {
        try MPICollective.check(MPI_Send(&bytes, Int32(bytes.count), cmpi_uint8(), other, tag, world), "MPI_Send")
    }

    private func receive(_ bytes: inout [UInt8], from other: Int32, tag: Int32) throws {
        try MPICollective.check(MPI_Recv(&bytes, Int32(bytes.count), cmpi_uint8(), other, tag, world, cmpi_status_ignore()), "MPI_Recv")
    }
}
