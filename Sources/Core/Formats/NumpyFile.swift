// NumpyFile: writing a Float32 matrix as a NumPy .npy file (format version 1.0).
//
// Used to export logits so that other tools (NumPy, the pickle exporter's test) can compare them;
// it writes only what that needs: little-endian float32, C order, any shape.

/// The bytes of a .npy file holding `values` with `shape` (row-major, float32).
public func encodeNpy(_ values: [Float], shape: [Int]) -> [UInt8] {
    precondition(values.count == shape.reduce(1, *))
    let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
    // Magic (6) + version (2) + header length (2) + header + newline, padded to 64 bytes.
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
    let length = UInt16(header.utf8.count)
    bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
    bytes += Array(header.utf8)
    for v in values {
        let bits = v.bitPattern.littleEndian
        bytes += [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
    }
    return bytes
}
