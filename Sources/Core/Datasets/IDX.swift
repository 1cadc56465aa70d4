// IDX: the tiny array format MNIST and Fashion-MNIST are distributed in.
//
// Layout (all integers big-endian):
//   bytes 0-1   zero
//   byte  2     data type (0x08 unsigned byte, 0x09 signed byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double)
//   byte  3     rank (number of dimensions)
//   then        rank × UInt32 dimension sizes, outermost first
//   then        the elements, row-major
// So a label file starts with magic 0x00000801 and an image file with 0x00000803. We only read and
// write unsigned bytes (0x08), the only type Fashion-MNIST uses. This file knows nothing about gzip
// or about what the dimensions mean; Dataset.swift does.
import CoreSupport

// MARK: - Types

/// An unsigned-byte IDX array: its dimensions (outermost first) and its elements, row-major.
public struct IDXArray: Sendable, Equatable {
    /// Dimension sizes, outermost first: `[count]` for labels, `[count, rows, cols]` for images.
    public var dims: [Int]
    /// The `dims.reduce(1, *)` elements.
    public var bytes: [UInt8]

    public init(dims: [Int], bytes: [UInt8]) {
        self.dims = dims
        self.bytes = bytes
    }
}

/// The IDX data type byte for unsigned bytes, the only one supported.
public let idxUnsignedByte: UInt8 = 0x08

// MARK: - Parsing

/// Parses an unsigned-byte IDX file of rank `expectedRank`.
///
/// Every check names `name` and says what was expected and what was found: short file, nonzero leading
/// bytes, data type other than 0x08, wrong rank (e.g. a label file where images were expected),
/// truncated header, payload shorter (truncated) or longer (trailing bytes) than the dimensions say.
///
/// - Parameters:
///   - data: the whole (uncompressed) file.
///   - name: how to name the file in error messages, e.g. "t10k-labels-idx1-ubyte".
///   - expectedRank: 1 for labels, 3 for images.
public func parseIDX(_ data: consuming [UInt8], name: String, expectedRank: Int) throws -> IDXArray {
    precondition((1...255).contains(expectedRank), "IDX rank must be 1...255")
    try checkIDXMagic(data, name: name, expectedRank: expectedRank)
    let (dims, product) = try readIDXDimensions(data, name: name, rank: expectedRank)
    let headerSize = 4 + 4 * expectedRank
    let shape = dims.map(String.init).joined(separator: "×")
    let payload = data.count - headerSize
    if payload < product {
        throw TrainerError(
            "\(name): truncated IDX payload (\(payload) bytes after the header, expected \(shape) = \(product))")
    }
    if payload > product {
        throw TrainerError(
            "\(name): \(payload - product) trailing bytes after the IDX payload "
                + "(\(payload) bytes after the header, expected \(shape) = \(product))")
    }
    // Drop the header in place: the payload (47 MB for the training images) is not copied.
    var payloadBytes = data
    payloadBytes.removeFirst(headerSize)
    return IDXArray(dims: dims, bytes: payloadBytes)
}

/// The first four bytes: two zeros, data type 0x08 (unsigned byte), the expected rank.
private func checkIDXMagic(_ data: [UInt8], name: String, expectedRank: Int) throws {
    let expectedMagic = 0x0800 | expectedRank
    let what = expectedRank == 1 ? "labels" : expectedRank == 3 ? "images" : "rank \(expectedRank)"
    guard data.count >= 4 else {
        throw TrainerError(
            "\(name): \(data.count) bytes, too short for an IDX header (expected at least 4 bytes, magic 0x\(hex32(expectedMagic)))")
    }
    let magic = Int(data[0]) << 24 | Int(data[1]) << 16 | Int(data[2]) << 8 | Int(data[3])
    let found = "\(name): IDX magic 0x\(hex32(magic)), expected 0x\(hex32(expectedMagic)) (\(what)); "
    guard data[0] == 0, data[1] == 0 else {
        throw TrainerError(found + "the first two bytes must be zero, so this is not an IDX file")
    }
    guard data[2] == idxUnsignedByte else {
        throw TrainerError(found + "data type 0x\(hex8(data[2])) is not supported, only 0x08 (unsigned byte)")
    }
    guard Int(data[3]) == expectedRank else {
        throw TrainerError(found + "rank \(data[3]) instead of \(expectedRank)")
    }
}

/// The `rank` big-endian dimensions after the magic and their product (checked for overflow).
private func readIDXDimensions(_ data: [UInt8], name: String, rank: Int) throws -> (dims: [Int], product: Int) {
    let headerSize = 4 + 4 * rank
    guard data.count >= headerSize else {
        throw TrainerError(
            "\(name): truncated IDX header (\(data.count) bytes, expected \(headerSize) for rank \(rank))")
    }
    var dims = [Int]()
    var product = 1
    var overflow = false
    for d in 0..<rank {
        let o = 4 + 4 * d
        let size = Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3])
        dims.append(size)
        if !overflow { (product, overflow) = product.multipliedReportingOverflow(by: size) }
    }
    guard !overflow else {
        throw TrainerError("\(name): IDX dimensions \(dims.map(String.init).joined(separator: "×")) are too large (element count overflows)")
    }
    return (dims, product)
}

// MARK: - Encoding

/// Encodes an unsigned-byte IDX file: magic `0x00 0x00 0x08 rank`, the dimensions, the bytes.
/// The inverse of `parseIDX`; used for round trips and test fixtures.
public func encodeIDX(dims: [Int], bytes: [UInt8]) -> [UInt8] {
    precondition((1...255).contains(dims.count), "IDX rank must be 1...255")
    precondition(dims.allSatisfy { (0...Int(UInt32.max)).contains($0) }, "IDX dimensions must fit in UInt32")
    precondition(dims.reduce(1, *) == bytes.count, "IDX bytes must match the dimensions")
    var out = [UInt8]()
    out.reserveCapacity(4 + 4 * dims.count + bytes.count)
    out += [0, 0, idxUnsignedByte, UInt8(dims.count)]
    for d in dims {
        out += [UInt8(truncatingIfNeeded: d >> 24), UInt8(truncatingIfNeeded: d >> 16),
                UInt8(truncatingIfNeeded: d >> 8), UInt8(truncatingIfNeeded: d)]
    }
    out += bytes
    return out
}

// MARK: - Helpers

private func hex32(_ v: Int) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}

private func hex8(_ v: UInt8) -> String {
    let s = String(v, radix: 16)
    return s.count == 1 ? "0" + s : s
}
