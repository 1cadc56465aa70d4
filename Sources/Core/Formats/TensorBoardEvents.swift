// TensorBoardEvents: TensorBoard's event files, written natively — scalar summaries as `Event`
// protocol buffers in TFRecord framing — so that `tensorboard --logdir runs` shows a run while it
// trains, without a TensorFlow or protobuf dependency.
//
// A file is a sequence of records: length (uint64 LE), masked CRC-32C of the length (uint32 LE),
// the serialized Event, masked CRC-32C of the Event. An Event here has wall_time (field 1, double),
// step (field 2, int64) and either file_version (field 3, "brain.Event:2", the first record) or a
// Summary (field 5) holding Summary.Value entries {tag (1, string), simple_value (2, float)}.
// Only what scalars need; not images, histograms or a reader.
import CoreSupport
import Foundation

// MARK: - Encoding

/// The bytes of one event file record holding the serialized `event`.
public func tfRecord(_ event: [UInt8]) -> [UInt8] {
    var length = [UInt8]()
    appendLittleEndian(&length, UInt64(event.count))
    var record = length
    appendLittleEndian(&record, maskedCRC32C(length))
    record += event
    appendLittleEndian(&record, maskedCRC32C(event))
    return record
}

/// An Event with `wallTime`, `step`, and the scalar values (tag → value), serialized.
public func scalarEvent(wallTime: Double, step: Int, values: [(tag: String, value: Float)]) -> [UInt8] {
    var summary = [UInt8]()
    for (tag, value) in values {
        var entry = [UInt8]()
        appendField(&entry, 1, bytes: Array(tag.utf8))
        appendKey(&entry, 2, wireType: 5)
        appendLittleEndian(&entry, value.bitPattern)
        appendField(&summary, 1, bytes: entry)
    }
    var event = eventHeader(wallTime: wallTime, step: step)
    appendField(&event, 5, bytes: summary)
    return event
}

/// The first Event of every file: its format version.
public func fileVersionEvent(wallTime: Double) -> [UInt8] {
    var event = eventHeader(wallTime: wallTime, step: 0)
    appendField(&event, 3, bytes: Array("brain.Event:2".utf8))
    return event
}

private func eventHeader(wallTime: Double, step: Int) -> [UInt8] {
    var event = [UInt8]()
    appendKey(&event, 1, wireType: 1)
    appendLittleEndian(&event, wallTime.bitPattern)
    appendKey(&event, 2, wireType: 0)
    appendVarint(&event, UInt64(bitPattern: Int64(step)))
    return event
}

// MARK: - Protocol buffer wire format

private func appendVarint(_ out: inout [UInt8], _ value: UInt64) {
    var v = value
    while v >= 0x80 {
        out.append(UInt8(v & 0x7F) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
}

private func appendKey(_ out: inout [UInt8], _ field: Int, wireType: UInt64) {
    appendVarint(&out, UInt64(field) << 3 | wireType)
}

/// A length-delimited field (strings, bytes, embedded messages).
private func appendField(_ out: inout [UInt8], _ field: Int, bytes: [UInt8]) {
    appendKey(&out, field, wireType: 2)
    appendVarint(&out, UInt64(bytes.count))
    out += bytes
}

private func appendLittleEndian<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
    withUnsafeBytes(of: value.littleEndian) { out += $0 }
}

// MARK: - CRC-32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses.
public func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes { crc = crc32cTable[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
    return crc ^ 0xFFFF_FFFF
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC of data that
/// contains CRCs is not itself trivially a CRC.
func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
    let crc = crc32c(bytes)
    return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

private let crc32cTable: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
    return c
}

// MARK: - A live writer

/// Appends scalar events to one event file, flushing to disk at most every `flushSeconds` (and on
/// `flush`), so TensorBoard sees a run while it trains at no measurable cost per step.
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle
    private var pending: [UInt8] = []
    private var lastFlush = Date()
    private let flushSeconds: Double

    /// Creates `directory` (if needed) and a new event file in it named as TensorBoard expects
    /// (events.out.tfevents.<seconds>.<host>).
    public init(directory: String, flushSeconds: Double = 2) throws {
        try makeDirectories(directory)
        let now = Date().timeIntervalSince1970
        path = directory + "/events.out.tfevents.\(Int(now)).\(ProcessInfo.processInfo.hostName).dist-trainer"
        guard FileManager.default.createFile(atPath: path, contents: Data(tfRecord(fileVersionEvent(wallTime: now)))),
              let h = FileHandle(forWritingAtPath: path) else {
            throw TrainerError("\(path): cannot create the TensorBoard event file (\(systemReason()))")
        }
        handle = h
        handle.seekToEndOfFile()
        self.flushSeconds = flushSeconds
    }

    deinit { try? flush() }

    /// Adds scalars at `step` (written out at the next flush).
    public func add(step: Int, _ values: [(tag: String, value: Float)]) {
        pending += tfRecord(scalarEvent(wallTime: Date().timeIntervalSince1970, step: step, values: values))
        if Date().timeIntervalSince(lastFlush) >= flushSeconds { try? flush() }
    }

    /// Writes out what is pending.
    public func flush() throws {
        lastFlush = Date()
        guard !pending.isEmpty else { return }
        do { try handle.write(contentsOf: Data(pending)) } catch {
            throw TrainerError("\(path): writing TensorBoard events failed (\(error.localizedDescription))")
        }
        pending.removeAll(keepingCapacity: true)
    }
}
