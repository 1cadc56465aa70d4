// SHA256: SHA-256 as specified in FIPS 180-4, section 6.2, for checking downloaded data sets.
//
// Written out here so the trainer needs no crypto library (Foundation has none on Linux; CryptoKit is
// Apple-only). It hashes a whole in-memory buffer in one call; there is no incremental API, HMAC, or
// any other hash. Speed matters a little (the train images are 47 MB), so the compression function
// reads blocks straight from the input buffer and writes its 64-word message schedule into one buffer
// allocated once per call, not per block.

// MARK: - Public API

/// The SHA-256 digest of `data` as 64 lowercase hex digits.
public func sha256Hex(_ data: [UInt8]) -> String {
    let digest = sha256(data)
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(64)
    for word in digest {
        for shift in stride(from: 28, through: 0, by: -4) {
            out.append(digits[Int((word >> UInt32(shift)) & 0xf)])
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// The SHA-256 digest of `data` as eight big-endian words H0...H7.
func sha256(_ data: [UInt8]) -> [UInt32] {
    // FIPS 180-4 §5.3.3: the initial hash value.
    var h: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    let schedule = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)
    defer { schedule.deallocate() }

    // Whole blocks straight from the input.
    let fullBlocks = data.count / 64
    data.withUnsafeBytes { raw in
        h.withUnsafeMutableBufferPointer { hp in
            for b in 0..<fullBlocks {
                compress(hp.baseAddress!, raw.baseAddress! + 64 * b, schedule)
            }
        }
    }

    // §5.1.1 padding: the tail, a 1 bit, zeros, then the message length in bits as a 64-bit big-endian
    // integer, filling one block if the tail is ≤ 55 bytes and two otherwise.
    let tailCount = data.count - 64 * fullBlocks
    var tail = [UInt8](repeating: 0, count: tailCount <= 55 ? 64 : 128)
    for i in 0..<tailCount { tail[i] = data[64 * fullBlocks + i] }
    tail[tailCount] = 0x80
    let bitLength = UInt64(data.count) &* 8
    for i in 0..<8 { tail[tail.count - 1 - i] = UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i))) }
    tail.withUnsafeBytes { raw in
        h.withUnsafeMutableBufferPointer { hp in
            for b in 0..<(raw.count / 64) {
                compress(hp.baseAddress!, raw.baseAddress! + 64 * b, schedule)
            }
        }
    }
    return h
}

// MARK: - Compression function

/// FIPS 180-4 §4.2.2: the 64 round constants, the first 32 bits of the fractional parts of the cube
/// roots of the first 64 primes.
private let roundConstants: [UInt32] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
    0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
    0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
    0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
    0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
    0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
    0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
]

@inline(__always)
private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 &- n)) }

/// Processes one 64-byte block at `block` into the hash state `h[0..<8]` (§6.2.2).
/// `w` is scratch space for the 64-word message schedule.
@inline(__always)
private func compress(_ h: UnsafeMutablePointer<UInt32>, _ block: UnsafeRawPointer, _ w: UnsafeMutablePointer<UInt32>) {
    // Step 1: the message schedule. Words 0-15 are the block read big-endian; the rest mix earlier words.
    for t in 0..<16 {
        w[t] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self))
    }
    for t in 16..<64 {
        let x = w[t - 15], y = w[t - 2]
        let s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3)
        let s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >> 10)
        w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
    }

    // Steps 2-3: 64 rounds on the working variables a...h.
    var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
    roundConstants.withUnsafeBufferPointer { k in
        for t in 0..<64 {
            let bigSigma1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ bigSigma1 &+ ch &+ k[t] &+ w[t]
            let bigSigma0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = bigSigma0 &+ maj
            hh = g
            g = f
            f = e
            e = d &+ t1
            d = c
            c = b
            b = a
            a = t1 &+ t2
        }
    }

    // Step 4: add the compressed block into the running hash.
    h[0] = h[0] &+ a
    h[1] = h[1] &+ b
    h[2] = h[2] &+ c
    h[3] = h[3] &+ d
    h[4] = h[4] &+ e
    h[5] = h[5] &+ f
    h[6] = h[6] &+ g
    h[7] = h[7] &+ hh
}
