// Safetensors: reading and writing the safetensors file format (Hugging Face), F32 tensors only.
//
// Layout:
//   bytes 0-7   header length N, unsigned 64-bit little-endian
//   N bytes     UTF-8 JSON object: tensor name → {"dtype": "F32", "shape": [d0, d1, …],
//               "data_offsets": [begin, end]}, plus an optional "__metadata__" object of strings
//   then        the data region; offsets are relative to its start; each tensor is row-major,
//               little-endian, and the tensors tile the region exactly (no gaps, no overlaps)
// A shape [] is a scalar (1 element); a dimension of 0 is allowed (0 elements). Like the reference
// implementation we pad the header with spaces so the data region starts at an 8-byte aligned
// offset, and reject files whose data region has bytes no tensor covers.
//
// This file reads and writes only F32 (other dtypes are reported, not converted) and knows nothing
// about what the tensors mean; checkpoints and models name and check them.
import CoreSupport
import Foundation

// MARK: - Types

/// One named F32 tensor.
public struct Tensor: Equatable, Sendable {
    /// The tensor's name, the key in the header.
    public var name: String
    /// Dimension sizes, outermost first; `[]` is a scalar.
    public var shape: [Int]
    /// The `shape.reduce(1, *)` elements, row-major.
    public var values: [Float]

    /// Precondition: every dimension is non-negative and `values.count == product(shape)`.
    public init(name: String, shape: [Int], values: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor \(name): negative dimension in \(shape)")
        precondition(values.count == shape.reduce(1, *),
                     "Tensor \(name): \(values.count) values for shape \(shape)")
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// The contents of a safetensors file.
public struct SafetensorsFile: Sendable {
    /// The tensors, in file order (by data offset; empty tensors at the same offset by name).
    public var tensors: [Tensor]
    /// The "__metadata__" string map; empty when the file has none.
    public var metadata: [String: String]

    public init(tensors: [Tensor], metadata: [String: String]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor named `name`, or nil.
    public subscript(name: String) -> Tensor? {
        tensors.first { $0.name == name }
    }

    /// The tensor `name` with exactly `shape`, else TrainerError naming `file`, the tensor, expected
    /// vs found shape (or "missing tensor").
    public func tensor(_ name: String, shape: [Int], file: String) throws -> Tensor {
        guard let t = self[name] else {
            throw TrainerError("\(file): missing tensor '\(name)', expected shape \(shape)")
        }
        guard t.shape == shape else {
            throw TrainerError("\(file): tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return t
    }

    /// Metadata value for key, else TrainerError("<file>: missing metadata '<key>'").
    public func metadata(_ key: String, file: String) throws -> String {
        guard let value = metadata[key] else {
            throw TrainerError("\(file): missing metadata '\(key)'")
        }
        return value
    }
}

/// The header key that holds the metadata instead of a tensor.
let safetensorsMetadataKey = "__metadata__"

// MARK: - Encoding

/// A tensor to write whose values stay where they are (a slice of a larger buffer): what a
/// checkpoint written in the background streams to its file without copying the state again.
public struct TensorSlice: Sendable {
    public var name: String
    public var shape: [Int]
    public var values: ArraySlice<Float>

    public init(name: String, shape: [Int], values: ArraySlice<Float>) {
        precondition(values.count == shape.reduce(1, *), "Tensor \(name): values do not match shape")
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// The first 8 + N bytes of a file of tensors `named` (name, shape) in this order: the length and
/// the space-padded header, keys sorted (so the bytes are deterministic), without the metadata entry
/// when it is empty. Precondition: names are unique and none is "__metadata__".
func safetensorsPrologue(_ tensors: [(name: String, shape: [Int])], metadata: [String: String]) -> [UInt8] {
    var header = [String: Any]()
    if !metadata.isEmpty { header[safetensorsMetadataKey] = metadata }
    var offset = 0
    for t in tensors {
        precondition(t.name != safetensorsMetadataKey, "a tensor cannot be named \(safetensorsMetadataKey)")
        precondition(header[t.name] == nil, "duplicate tensor name \(t.name)")
        let size = t.shape.reduce(1, *) * MemoryLayout<Float>.size
        header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + size]] as [String: Any]
        offset += size
    }
    var json: [UInt8]
    do {
        let options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        json = Array(try JSONSerialization.data(withJSONObject: header, options: options))
    } catch {
        preconditionFailure("safetensors header cannot be serialised: \(error)")  // only strings and ints
    }
    // Pad with spaces (valid JSON whitespace) so that 8 + N is a multiple of 8.
    json += repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
    return withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
}

/// Hands the bytes of a safetensors file of `slices` and `metadata` to `put`, in order: the
/// prologue, then each slice's values from where they are (what both streaming writers write).
private func putSafetensors(_ slices: [TensorSlice], metadata: [String: String], _ put: (UnsafeRawBufferPointer) throws -> Void) throws {
    let prologue = safetensorsPrologue(slices.map { ($0.name, $0.shape) }, metadata: metadata)
    try prologue.withUnsafeBytes { try put($0) }
    for t in slices where !t.values.isEmpty {
        #if _endian(big)
        let values = t.values.map { Float(bitPattern: $0.bitPattern.byteSwapped) }
        try values.withUnsafeBytes { try put($0) }
        #else
        try t.values.withUnsafeBytes { try put($0) }
        #endif
    }
}

/// Writes the tensors `slices` and `metadata` as a safetensors file at `path`, atomically (see
/// writeFileAtomically, also for `keepingPrevious`), streaming each slice's values from where they
/// are: the same bytes as `encodeSafetensors` of the same tensors, without building them in memory.
public func writeSafetensors(_ slices: [TensorSlice], metadata: [String: String], path: String, keepingPrevious: String? = nil) throws {
    try writeFileAtomically(path, keepingPrevious: keepingPrevious) { put in try putSafetensors(slices, metadata: metadata, put) }
}

/// Writes the tensors `slices` and `metadata` as a safetensors file at `path` through `staging` (a
/// reused aligned buffer of a few blocks the file passes through, written with O_DIRECT where the
/// file system allows: see writeFileAtomically(_:staging:keepingPrevious:_:)): the same bytes as the
/// other writers, for a fraction of the CPU time of a write through the page cache, and without the
/// file's image in memory. Returns whether O_DIRECT was used.
@discardableResult
public func writeSafetensors(_ slices: [TensorSlice], metadata: [String: String], path: String, keepingPrevious: String? = nil,
                             through staging: AlignedBytes) throws -> Bool {
    try writeFileAtomically(path, staging: staging, keepingPrevious: keepingPrevious) { put in
        try putSafetensors(slices, metadata: metadata, put)
    }
}

/// Encodes `file`: the tensors in the order given, contiguously, after a space-padded header whose
/// keys are sorted (so the bytes are deterministic). The metadata entry is omitted when empty.
/// Precondition: tensor names are unique and none is "__metadata__".
public func encodeSafetensors(_ file: SafetensorsFile) -> [UInt8] {
    for t in file.tensors { precondition(t.values.count == t.shape.reduce(1, *), "Tensor \(t.name): values do not match shape") }
    let prologue = safetensorsPrologue(file.tensors.map { ($0.name, $0.shape) }, metadata: file.metadata)
    let offset = file.tensors.reduce(0) { $0 + $1.values.count * MemoryLayout<Float>.size }
    let dataStart = prologue.count
    let total = dataStart + offset

    return [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
        let base = UnsafeMutableRawPointer(out.baseAddress!)
        prologue.withUnsafeBytes { _ = memcpy(base, $0.baseAddress!, $0.count) }
        var at = dataStart
        for t in file.tensors where !t.values.isEmpty {
            t.values.withUnsafeBytes { _ = memcpy(base + at, $0.baseAddress!, $0.count) }
            #if _endian(big)
            let words = (base + at).bindMemory(to: UInt32.self, capacity: t.values.count)
            for i in 0..<t.values.count { words[i] = words[i].byteSwapped }
            #endif
            at += t.values.count * MemoryLayout<Float>.size
        }
        initialized = total
    }
}

/// Encodes and writes atomically with writeFileAtomically.
public func writeSafetensors(_ file: SafetensorsFile, path: String) throws {
    try writeFileAtomically(path, encodeSafetensors(file))
}

// MARK: - Decoding

/// Reads and decodes the file at `path` (errors name the path; a missing/unreadable file gives one
/// clear line).
public func readSafetensors(path: String) throws -> SafetensorsFile {
    try decodeSafetensors(try readFile(path), name: path)
}

/// Parses bytes read from the file named `name` (used in error messages).
///
/// Checks, each reported in one line naming `name`: the length prefix and header fit in the file; the
/// header is UTF-8 JSON, an object; every tensor entry has a string dtype (only "F32" is accepted),
/// an integer shape with non-negative dimensions and two integer data_offsets that lie in the data
/// region and span exactly the shape's bytes; the metadata values are strings; and the tensors tile
/// the data region with no overlap and no uncovered bytes.
public func decodeSafetensors(_ bytes: [UInt8], name: String) throws -> SafetensorsFile {
    let (header, dataStart) = try decodeSafetensorsHeader(bytes, name: name)
    let dataSize = bytes.count - dataStart
    let metadata = try decodeSafetensorsMetadata(header, name: name)
    // By name, so that of several bad entries the same one is always reported.
    let entries = try header.keys.sorted().filter { $0 != safetensorsMetadataKey }.map {
        try TensorEntry($0, header[$0]!, dataSize: dataSize, file: name)
    }.sorted { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
    try checkTiling(entries, dataSize: dataSize, name: name)
    let tensors = bytes.withUnsafeBytes { raw in
        entries.map { e -> Tensor in
            let count = (e.end - e.begin) / 4
            let values = [Float](unsafeUninitializedCapacity: count) { out, initialized in
                if count > 0 {
                    memcpy(out.baseAddress!, raw.baseAddress! + dataStart + e.begin, count * 4)
                    #if _endian(big)
                    for i in 0..<count { out[i] = Float(bitPattern: out[i].bitPattern.byteSwapped) }
                    #endif
                }
                initialized = count
            }
            return Tensor(name: e.name, shape: e.shape, values: values)
        }
    }
    return SafetensorsFile(tensors: tensors, metadata: metadata)
}

/// The header object and the offset where the data region starts: the length prefix fits the
/// file, and the header is UTF-8 JSON, an object.
private func decodeSafetensorsHeader(_ bytes: [UInt8], name: String) throws -> (header: [String: Any], dataStart: Int) {
    func failure(_ problem: String) -> TrainerError { TrainerError("\(name): \(problem)") }
    guard bytes.count >= 8 else {
        throw failure("truncated: \(bytes.count) bytes, a safetensors file has at least 8")
    }
    var headerLength: UInt64 = 0
    for i in (0..<8).reversed() { headerLength = headerLength << 8 | UInt64(bytes[i]) }
    guard headerLength <= UInt64(bytes.count - 8) else {
        throw failure("header length \(headerLength) exceeds the file size \(bytes.count) "
                      + "(at most \(bytes.count - 8) bytes follow the 8-byte length)")
    }
    let dataStart = 8 + Int(headerLength)
    let headerBytes = bytes[8..<dataStart]
    guard isValidUTF8(headerBytes) else {
        throw failure("header (\(headerLength) bytes) is not valid UTF-8, so not valid JSON")
    }
    // NUL is never valid in JSON text; rejecting it also stops JSONSerialization guessing UTF-16/32.
    guard !headerBytes.contains(0),
          let parsed = try? JSONSerialization.jsonObject(with: Data(headerBytes), options: [])
    else {
        throw failure("header is not valid JSON (\(headerLength) bytes starting \(preview(headerBytes)))")
    }
    guard let header = parsed as? [String: Any] else {
        throw failure("header is not a JSON object, found \(jsonKind(parsed))")
    }
    return (header, dataStart)
}

/// The "__metadata__" entry: absent, null, or an object of strings.
private func decodeSafetensorsMetadata(_ header: [String: Any], name: String) throws -> [String: String] {
    var metadata = [String: String]()
    guard let raw = header[safetensorsMetadataKey], !(raw is NSNull) else { return metadata }
    guard let object = raw as? [String: Any] else {
        throw TrainerError("\(name): \"\(safetensorsMetadataKey)\" is \(jsonKind(raw)), expected an object of strings")
    }
    for (key, value) in object {
        guard let string = value as? String else {
            throw TrainerError("\(name): metadata '\(key)' is \(jsonKind(value)), expected a string")
        }
        metadata[key] = string
    }
    return metadata
}

/// One tensor's header entry, checked: F32, a shape of non-negative integers, data_offsets inside
/// the data region spanning exactly the shape's bytes.
private struct TensorEntry {
    var name: String
    var shape: [Int]
    var begin: Int
    var end: Int

    init(_ name: String, _ raw: Any, dataSize: Int, file: String) throws {
        func bad(_ problem: String) -> TrainerError { TrainerError("\(file): tensor '\(name)' \(problem)") }
        guard let entry = raw as? [String: Any] else {
            throw bad("is \(jsonKind(raw)), expected an object with dtype, shape and data_offsets")
        }
        for key in ["dtype", "shape", "data_offsets"] where entry[key] == nil {
            throw bad("is missing \"\(key)\"")
        }
        guard let dtype = entry["dtype"] as? String else {
            throw bad("has dtype \(jsonKind(entry["dtype"]!)), expected a string such as \"F32\"")
        }
        guard dtype == "F32" else { throw bad("has dtype \(dtype); only F32 is supported") }
        guard let shapeArray = entry["shape"] as? [Any], let shape = integers(shapeArray) else {
            throw bad("has shape \(jsonText(entry["shape"]!)), expected an array of integers")
        }
        if let negative = shape.first(where: { $0 < 0 }) {
            throw bad("has a negative dimension \(negative) in shape \(shape)")
        }
        guard let offsetArray = entry["data_offsets"] as? [Any], let offsets = integers(offsetArray), offsets.count == 2 else {
            throw bad("has data_offsets \(jsonText(entry["data_offsets"]!)), expected [begin, end] integers")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, end >= begin else { throw bad("has data_offsets [\(begin), \(end)], expected 0 <= begin <= end") }
        guard end <= dataSize else {
            throw bad("has data_offsets [\(begin), \(end)] beyond the data region of \(dataSize) bytes")
        }
        var elements = 1, overflow = false
        for d in shape {
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            elements = p
            overflow = overflow || o
        }
        let (byteCount, o) = elements.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        guard !overflow, !o else {
            throw TrainerError("\(file): tensor '\(name)': shape \(shape) is too large (its byte count overflows)")
        }
        guard byteCount == end - begin else {
            throw TrainerError("\(file): tensor '\(name)': shape \(shape) needs \(byteCount) bytes, data_offsets give \(end - begin)")
        }
        (self.name, self.shape, self.begin, self.end) = (name, shape, begin, end)
    }
}

/// The entries (sorted by offset) tile the data region: no overlap, no uncovered bytes.
private func checkTiling(_ entries: [TensorEntry], dataSize: Int, name: String) throws {
    var cursor = 0, uncovered = 0
    var previous: TensorEntry?
    for e in entries {
        if e.begin < cursor, let p = previous {
            throw TrainerError("\(name): tensors '\(p.name)' (data_offsets [\(p.begin), \(p.end)]) and '\(e.name)' "
                               + "(data_offsets [\(e.begin), \(e.end)]) overlap")
        }
        uncovered += e.begin - cursor
        cursor = e.end
        previous = e
    }
    uncovered += dataSize - cursor
    guard uncovered == 0 else {
        throw TrainerError("\(name): data region has \(uncovered) bytes not covered by any tensor (\(dataSize) bytes in all)")
    }
}

// MARK: - Helpers

/// The JSON integers in `array`, or nil if any element is not an integer (booleans and numbers
/// written with a fraction or exponent do not count, as in the reference implementation).
private func integers(_ array: [Any]) -> [Int]? {
    var out = [Int]()
    out.reserveCapacity(array.count)
    for element in array {
        guard let n = element as? NSNumber, !(element is NSDecimalNumber) else { return nil }
        // JSONSerialization gives integers an integer type and booleans "c" (char).
        guard "ilqsILQS".utf8.contains(UInt8(bitPattern: n.objCType.pointee)), let v = element as? Int else {
            return nil
        }
        out.append(v)
    }
    return out
}

/// True when `bytes` is well-formed UTF-8.
private func isValidUTF8(_ bytes: ArraySlice<UInt8>) -> Bool {
    var codec = UTF8()
    var iterator = bytes.makeIterator()
    while true {
        switch codec.decode(&iterator) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}

/// A short description of a parsed JSON value's kind, for messages.
private func jsonKind(_ value: Any) -> String {
    switch value {
    case is NSNull: return "null"
    case is String: return "a string"
    case is [Any]: return "an array"
    case is [String: Any]: return "an object"
    case let n as NSNumber: return n.objCType.pointee == CChar(UInt8(ascii: "c")) ? "a boolean" : "a number"
    default: return "\(type(of: value))"
    }
}

/// A parsed JSON value written back as compact JSON (at most 60 characters), for messages.
private func jsonText(_ value: Any) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes]),
          let text = String(data: data, encoding: .utf8)
    else { return jsonKind(value) }
    let inner = String(text.dropFirst().dropLast())
    return inner.count <= 60 ? inner : String(inner.prefix(57)) + "..."
}

/// The first bytes of the header, printable ASCII kept and the rest escaped, for messages.
private func preview(_ bytes: ArraySlice<UInt8>) -> String {
    var s = ""
    for b in bytes.prefix(24) {
        s += (0x20..<0x7f).contains(b) && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\")
            ? String(UnicodeScalar(b)) : String(format: "\\x%02x", b)
    }
    return "\"" + s + (bytes.count > 24 ? "...\"" : "\"")
}
