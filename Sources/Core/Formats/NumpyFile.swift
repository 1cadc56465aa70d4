// NumpyFile: NumPy's .npy format — writing a Float32 matrix (exported logits), and reading the
// arrays of a data set (.npz members: images, features, labels).
//
// Writing does only what exporting needs: little-endian float32, C order, any shape. Reading takes
// versions 1–3 of the format, C order, little-endian (or byte-sized) integers, floats and booleans;
// anything else (Fortran order, big-endian, objects, strings) is refused in one line naming the
// array and what was found.
import CoreSupport

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

// MARK: - Reading

/// The element types a data set's arrays may have.
public enum NpyType: String, Sendable {
    case bool = "b1", int8 = "i1", uint8 = "u1", int16 = "i2", uint16 = "u2", int32 = "i4", uint32 = "u4"
    case int64 = "i8", uint64 = "u8", float32 = "f4", float64 = "f8"

    var size: Int { Int(rawValue.dropFirst())! }
    public var isInteger: Bool { ![.float32, .float64].contains(self) }
}

/// One array of a .npy file: its type, shape and little-endian element bytes.
public struct NpyArray: Sendable {
    public var type: NpyType
    public var shape: [Int]
    let data: [UInt8]

    public var count: Int { shape.reduce(1, *) }

    /// Parses a .npy file's bytes (`name` is blamed in errors).
    public init(_ bytes: [UInt8], name: String) throws {
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw TrainerError("\(name): not a .npy array (no NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int, start: Int
        if major == 1 {
            (headerLength, start) = (Int(bytes[8]) | Int(bytes[9]) << 8, 10)
        } else if major == 2 || major == 3, bytes.count >= 12 {
            (headerLength, start) = (Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24, 12)
        } else {
            throw TrainerError("\(name): .npy format version \(major), expected 1 to 3")
        }
        guard start + headerLength <= bytes.count else { throw TrainerError("\(name): .npy header runs past the end of the array") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let k = header.range(of: "'\(key)':") else { return nil }
            return String(header[k.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = field("descr").flatMap({ $0.split(separator: "'").first.map(String.init) }) else {
            throw TrainerError("\(name): .npy header without 'descr': \(header)")
        }
        let order = descr.first.map { "<|>=".contains($0) } == true ? String(descr.dropFirst()) : descr
        guard let type = NpyType(rawValue: order), descr.first != ">" || type.size == 1 else {
            throw TrainerError("\(name): array of type '\(descr)', expected little-endian integers, float32, float64 or bool")
        }
        if field("fortran_order")?.hasPrefix("True") == true { throw TrainerError("\(name): a Fortran-order array; save it in C order") }
        guard let shapeText = field("shape"), let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")") else {
            throw TrainerError("\(name): .npy header without a shape: \(header)")
        }
        let dims = shapeText[shapeText.index(after: open)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let shape = try dims.filter { !$0.isEmpty }.map { d -> Int in
            guard let v = Int(d), v >= 0 else { throw TrainerError("\(name): .npy shape (\(dims.joined(separator: ","))) is not a list of sizes") }
            return v
        }
        let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        let payload = bytes.count - start - headerLength
        guard count < Int.max / type.size, payload == count * type.size else {
            throw TrainerError("\(name): shape \(shape) of \(type.rawValue) needs \(count == Int.max ? "too many" : String(count * type.size)) bytes, the array holds \(payload)")
        }
        (self.type, self.shape) = (type, shape)
        data = Array(bytes[(start + headerLength)...])
    }

    /// The elements as Floats (exact for bytes and small integers; float64 rounded to float32).
    public func floats() -> [Float] {
        data.withUnsafeBytes { raw in
            (0..<count).map { i -> Float in
                switch type {
                case .float32: return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case .float64: return Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                default: return Float(integer(raw, i))
                }
            }
        }
    }

    /// The elements as integers (integer and bool types only).
    public func integers() -> [Int] {
        precondition(type.isInteger)
        return data.withUnsafeBytes { raw in (0..<count).map { integer(raw, $0) } }
    }

    /// The raw bytes of a uint8 array.
    public var bytes: [UInt8] { precondition(type == .uint8); return data }

    private func integer(_ raw: UnsafeRawBufferPointer, _ i: Int) -> Int {
        switch type {
        case .bool, .uint8: return Int(raw[i])
        case .int8: return Int(Int8(bitPattern: raw[i]))
        case .int16: return Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .uint16: return Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .int32: return Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .uint32: return Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .int64: return Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
        case .uint64: return Int(truncatingIfNeeded: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
        case .float32, .float64: return 0
        }
    }
}

/// The arrays of a .npz archive by name (the member names without ".npy").
public func readNpz(_ bytes: [UInt8], name: String) throws -> [String: NpyArray] {
    let archive = try ZipArchive(bytes, name: name)
    var arrays: [String: NpyArray] = [:]
    for entry in archive.entries where entry.name.hasSuffix(".npy") {
        let key = String(entry.name.dropLast(4))
        arrays[key] = try NpyArray(try archive.contents(of: entry), name: "\(name): array \(key)")
    }
    return arrays
}
