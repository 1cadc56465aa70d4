// SHA256Tests: the FIPS 180-4 / NIST example vectors plus padding edge cases around the block size.
//
// The edge-case digests were computed with Python's hashlib when the test was written, for the message
// bytes[i] = (7i + 3) mod 256 of each length.
@testable import Formats
import XCTest


final class SHA256Tests: XCTestCase {
    func testEmpty() {
        XCTAssertEqual(sha256Hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testABC() {
        XCTAssertEqual(sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func test448BitMessage() {
        // 56 bytes: the padding no longer fits in the block, so a second block is needed.
        let m = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        XCTAssertEqual(m.count * 8, 448)
        XCTAssertEqual(sha256Hex(m), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func test896BitMessage() {
        let m = Array(
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)
        XCTAssertEqual(sha256Hex(m), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    }

    func testOneMillionA() {
        let m = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(sha256Hex(m), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testLengthsAroundTheBlockBoundary() {
        // 55 is the longest tail whose padding fits in one block; 56...63 spill into a second; 64 is a
        // whole block plus a padding-only block. 119/120 and 127/128 repeat that one block later.
        let expected: [Int: String] = [
            1: "084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5",
            55: "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b",
            56: "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27",
            57: "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73",
            63: "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055",
            64: "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241",
            65: "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e",
            119: "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e",
            120: "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5",
            127: "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07",
            128: "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6",
        ]
        for (length, digest) in expected.sorted(by: { $0.key < $1.key }) {
            let m = (0..<length).map { UInt8(truncatingIfNeeded: 7 * $0 + 3) }
            XCTAssertEqual(sha256Hex(m), digest, "length \(length)")
        }
    }

    func testUnalignedInput() {
        // The compression function loads words unaligned; a slice copied to an array at an odd offset
        // must hash the same as the original bytes.
        let m = (0..<200).map { UInt8(truncatingIfNeeded: 7 * $0 + 3) }
        XCTAssertEqual(sha256Hex(Array(m[1...128])), sha256Hex((1...128).map { UInt8(truncatingIfNeeded: 7 * $0 + 3) }))
        XCTAssertEqual(sha256Hex(Array(m[0..<128])), "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6")
    }
}
