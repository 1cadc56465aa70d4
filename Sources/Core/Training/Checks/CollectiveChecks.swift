// CollectiveChecks: the checks of the collective operations themselves and of error agreement,
// with values whose exact results are known on every rank (part of JobCheck).
import Collectives
import CoreSupport
import Kernels

extension JobCheck {
    /// Sums, min/max and broadcasts with values whose exact results are known.
    mutating func checkCollectives() throws {
        let n = 1000
        let (r, s) = (collective.rank, collective.size)
        // Small integers are exact in Float, so the sums must be exact too.
        let f = Buffer<Float>(count: n)
        for i in 0..<n { f.pointer[i] = Float((r + 1) * (i % 13)) }
        try collective.allreduceSum(f.all)
        var err = 0.0
        for i in 0..<n { err = max(err, abs(Double(f.pointer[i]) - Double(s * (s + 1) / 2 * (i % 13)))) }
        try report("allreduce sum (Float, \(n))", err, tolerance: 0)

        let d = Buffer<Double>(count: n)
        for i in 0..<n { d.pointer[i] = Double(r) + Double(i) * 0.5 }
        try collective.allreduceSum(d.all)
        err = 0
        for i in 0..<n { err = max(err, abs(d.pointer[i] - (Double(s * (s - 1) / 2) + Double(s) * Double(i) * 0.5))) }
        try report("allreduce sum (Double, \(n))", err, tolerance: 0)

        let (lo, hi) = try collective.allreduceMinMax(Double(r) * 1.5 - 2)
        try report("allreduce min/max", max(abs(lo + 2), abs(hi - (Double(s - 1) * 1.5 - 2))), tolerance: 0)

        let root = s - 1
        let b = Buffer<Float>(count: n)
        for i in 0..<n { b.pointer[i] = r == root ? Float(i) * 0.25 : -1 }
        try collective.broadcast(b.all, root: root)
        err = 0
        for i in 0..<n { err = max(err, abs(Double(b.pointer[i]) - Double(i) * 0.25)) }
        try report("broadcast buffer from rank \(root)", err, tolerance: 0)

        var bytes: [UInt8] = r == root ? Array("from rank \(root): ünïcödé".utf8) : [1, 2, 3]
        try collective.broadcast(&bytes, root: root)
        try report("broadcast bytes from rank \(root)", String(decoding: bytes, as: UTF8.self) == "from rank \(root): ünïcödé" ? 0 : 1, tolerance: 0)
        try collective.barrier()
    }

    /// The 16-bit ring of --grad-compression: small integers are exact in bf16 and fp16, so their
    /// sums must be exact (an uneven length gives unequal ring parts); values that do round must
    /// stay within one 16-bit rounding per hop, and every rank must end with the same sums.
    mutating func checkCompressedAllreduce() throws {
        let (r, s) = (collective.rank, collective.size)
        let m = 1001 + s
        for format in [GradientCompression.bf16, .fp16] {
            let g = Buffer<Float>(count: m)
            for i in 0..<m { g.pointer[i] = Float((r + 1) * (i % 7)) }
            try collective.allreduceSumCompressed(g.all, format: format)
            var err = 0.0
            for i in 0..<m { err = max(err, abs(Double(g.pointer[i]) - Double(s * (s + 1) / 2 * (i % 7)))) }
            try report("allreduce sum in \(format) (ring, \(m))", err, tolerance: 0)

            for i in 0..<m { g.pointer[i] = 1 / Float(1 + i + r) }
            try collective.allreduceSumCompressed(g.all, format: format)
            err = 0
            var checksum = 0.0
            for i in 0..<m {
                let exact = (0..<s).reduce(0.0) { $0 + Double(1 / Float(1 + i + $1)) }
                err = max(err, abs(Double(g.pointer[i]) - exact) / exact)
                checksum += Double(g.pointer[i]) * Double(i % 11 + 1)
            }
            let unit = format == .bf16 ? 0x1p-8 : 0x1p-11  // relative rounding of one conversion
            try report("allreduce sum in \(format), rounded values: relative error", err, tolerance: unit * Double(s))
            let (low, high) = try collective.allreduceMinMax(checksum)
            try report("allreduce sum in \(format): every rank holds the same sums", high - low, tolerance: 0)
        }
    }

    /// A failure on one rank only must reach every rank, with that rank's message.
    mutating func checkAgreement() throws {
        var ok = true
        do { try collective.agree(nil) } catch { ok = false }
        try report("agreement without errors", ok ? 0 : 1, tolerance: 0)

        let culprit = collective.size - 1
        let local = collective.rank == culprit ? TrainerError("file x: expected 1, found 2") : nil
        var message = ""
        do { try collective.agree(local) } catch let e as TrainerError { message = e.message }
        let expected = collective.size == 1 ? "file x: expected 1, found 2" : "rank \(culprit): file x: expected 1, found 2"
        try report("agreement on rank \(culprit)'s error", message == expected ? 0 : 1, tolerance: 0)
    }
}
