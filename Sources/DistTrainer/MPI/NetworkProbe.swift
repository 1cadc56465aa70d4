// NetworkProbe: what the network between the ranks costs — latency and bandwidth of point-to-point
// messages between rank 0 and every other rank, and the latency of a small allreduce — measured
// with the job's own MPI (`dist-trainer check --network`). These are the α and β of the scaling
// model (scripts/scaling_model.py) and a quick answer to "is this cluster's network what I think?".
import CMPI
import Core
import Foundation

/// One peer's ping-pong figures, seen from rank 0.
struct LinkMeasurement: Codable {
    var rank: Int
    var host: String
    /// Half a round trip of an 8-byte message, in seconds (α).
    var latency: Double
    /// Bytes per second of a 4 MiB message, one way (β).
    var bandwidth: Double
}

/// Everything `check --network` measures.
struct NetworkMeasurement: Codable {
    var ranks: Int
    var hosts: Int
    var links: [LinkMeasurement]
    /// One 8-byte Double allreduce over all ranks, in seconds (median).
    var smallAllreduce: Double
}

extension MPICollective {
    /// Ping-pong between rank 0 and each other rank in turn (collective: every rank must call it).
    func probeNetwork() throws -> NetworkMeasurement {
        var links: [LinkMeasurement] = []
        for peer in 1..<max(size, 1) {
            let latency = try pingPong(peer: peer, bytes: 8, repeats: 200) / 2
            let large = 4 << 20
            let roundTrip = try pingPong(peer: peer, bytes: large, repeats: 10)
            links.append(LinkMeasurement(rank: peer, host: hostNames[peer], latency: latency, bandwidth: Double(large) / (roundTrip / 2)))
        }
        var samples: [Double] = []
        for _ in 0..<200 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try allreduceMinMax(1)
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return NetworkMeasurement(ranks: size, hosts: nodeCount, links: links, smallAllreduce: median(samples))
    }

    /// The median round trip of `bytes` between rank 0 and `peer` (other ranks only synchronise).
    private func pingPong(peer: Int, bytes: Int, repeats: Int) throws -> Double {
        var buffer = [UInt8](repeating: 1, count: bytes)
        var times: [Double] = []
        try barrier()
        guard rank == 0 || rank == peer else { try barrier(); return 0 }
        let other = Int32(rank == 0 ? peer : 0)
        for _ in 0..<(repeats + 2) {
            let start = DispatchTime.now().uptimeNanoseconds
            if rank == 0 {
                try MPICollective.check(MPI_Send(&buffer, Int32(bytes), cmpi_uint8(), other, 9, world), "MPI_Send")
                try MPICollective.check(MPI_Recv(&buffer, Int32(bytes), cmpi_uint8(), other, 9, world, cmpi_status_ignore()), "MPI_Recv")
            } else {
                try MPICollective.check(MPI_Recv(&buffer, Int32(bytes), cmpi_uint8(), other, 9, world, cmpi_status_ignore()), "MPI_Recv")
                try MPICollective.check(MPI_Send(&buffer, Int32(bytes), cmpi_uint8(), other, 9, world), "MPI_Send")
            }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        try barrier()
        return median(Array(times.dropFirst(2)))
    }
}
