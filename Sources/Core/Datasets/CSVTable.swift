// CSVTable: a CSV file of numeric feature columns and one label column, read in one streaming
// pass into Floats — no line or field is kept as a String, so a file of a million rows takes the
// memory of its Floats (rows × features × 4 bytes) and of a 1 MiB read buffer.
//
// The format: a header row naming the columns; then one row per sample, comma-separated, fields
// optionally double-quoted ("a ""b""" is a, "b"), blank lines skipped, CRLF accepted. Every feature
// must be a finite number; the label may be anything (its text is the class). Every problem is one
// line naming the file and the place: line and column. Not here: what the labels mean as classes
// (DataSource), scaling (InputTransform).
import CoreSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A CSV file's features and label texts.
public struct CSVTable {
    /// The feature columns' names, in file order.
    public var featureNames: [String]
    /// `rows × featureNames.count` Floats.
    public var features: [Float]
    /// Each row's label as an index into `labelTexts` (distinct texts in first-seen order); empty
    /// when the file has no label column and none was required.
    public var labelCodes: [UInt32]
    public var labelTexts: [String]
    /// For each row, its line in the file (1-based; for messages about a row).
    public var lines: [Int32]
    public var rows: Int { lines.count }

    /// Reads `path`; `labelColumn` must be a column unless `labelOptional` (predict's input, where
    /// a label column is ignored if present).
    public init(path: String, labelColumn: String, labelOptional: Bool = false) throws {
        var parser = CSVParser(path: path)
        try parser.run(labelColumn: labelColumn, labelOptional: labelOptional)
        featureNames = parser.featureNames
        features = parser.features
        labelCodes = parser.labelCodes
        labelTexts = parser.labelTexts
        lines = parser.lines
        if rows == 0 { throw TrainerError("\(path): no data rows after the header") }
    }
}

/// The streaming parser behind CSVTable.
struct CSVParser {
    let path: String
    var featureNames: [String] = []
    var features: [Float] = []
    var labelCodes: [UInt32] = []
    var labelTexts: [String] = []
    var lines: [Int32] = []
    var labelIndex: Int? = nil
    var columnCount = 0
    private var codes: [String: UInt32] = [:]
    private var field: [UInt8] = []
    private var fields: [Range<Int>] = []
    private var lineNumber = 0

    init(path: String) { self.path = path }

    mutating func run(labelColumn: String, labelOptional: Bool) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TrainerError("\(path): cannot open: \(systemReason())") }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        // A first pass counts the lines, so that the Floats are allocated once at their final size
        // (a growing array would briefly hold twice the data).
        lineTotal = try countLines(fd, chunk: &chunk)
        var line: [UInt8] = []
        var sawHeader = false
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { throw TrainerError("\(path): reading failed: \(systemReason())") }
            if n == 0 { break }
            var start = 0
            for i in 0..<n where chunk[i] == 0x0A {
                line.append(contentsOf: chunk[start..<i])
                try take(&line, sawHeader: &sawHeader, labelColumn: labelColumn, labelOptional: labelOptional)
                start = i + 1
            }
            line.append(contentsOf: chunk[start..<n])
        }
        if !line.isEmpty { try take(&line, sawHeader: &sawHeader, labelColumn: labelColumn, labelOptional: labelOptional) }
        if !sawHeader { throw TrainerError("\(path): empty file (expected a header row naming the columns, then the rows)") }
    }

    /// One line (without its newline): the header, or a row.
    private mutating func take(_ line: inout [UInt8], sawHeader: inout Bool, labelColumn: String, labelOptional: Bool) throws {
        lineNumber += 1
        defer { line.removeAll(keepingCapacity: true) }
        if line.last == 0x0D { line.removeLast() }
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
        try split(line)
        if !sawHeader {
            sawHeader = true
            try header(labelColumn: labelColumn, labelOptional: labelOptional)
        } else {
            try row()
        }
    }

    /// Splits `line` into `field` (the unquoted bytes, concatenated) and `fields` (their ranges).
    private mutating func split(_ line: [UInt8]) throws {
        field.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
        var (i, start, quoted) = (0, 0, false)
        while i <= line.count {
            let c: UInt8 = i < line.count ? line[i] : 0x2C
            if quoted {
                guard i < line.count else { throw TrainerError("\(path):\(lineNumber): a quoted field is not closed") }
                if c == 0x22 {
                    if i + 1 < line.count && line[i + 1] == 0x22 { field.append(0x22); i += 1 } else { quoted = false }
                } else {
                    field.append(c)
                }
            } else if c == 0x2C {
                fields.append(start..<field.count)
                start = field.count
            } else if c == 0x22 && field.count == start {
                quoted = true
            } else {
                field.append(c)
            }
            i += 1
        }
    }

    private func text(_ r: Range<Int>) -> String {
        String(decoding: field[r], as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    private var lineTotal = 0

    /// The number of newlines in the file (then back to its start).
    private func countLines(_ fd: Int32, chunk: inout [UInt8]) throws -> Int {
        var total = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { throw TrainerError("\(path): reading failed: \(systemReason())") }
            if n == 0 { break }
            for i in 0..<n where chunk[i] == 0x0A { total += 1 }
        }
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw TrainerError("\(path): cannot read it twice (not a regular file?): \(systemReason())") }
        return total + 1
    }

    private mutating func header(labelColumn: String, labelOptional: Bool) throws {
        let names = fields.map(text)
        columnCount = names.count
        labelIndex = names.firstIndex(of: labelColumn)
        if labelIndex == nil && !labelOptional {
            throw TrainerError("\(path):1: no column '\(labelColumn)' (the label column; --label-column names another) among \(names.prefix(12).joined(separator: ", "))\(names.count > 12 ? ", …" : "")")
        }
        featureNames = names.enumerated().filter { $0.offset != labelIndex }.map(\.element)
        if featureNames.isEmpty { throw TrainerError("\(path):1: no feature columns besides the label column '\(labelColumn)'") }
        features.reserveCapacity(lineTotal * featureNames.count)
        lines.reserveCapacity(lineTotal)
        if labelIndex != nil { labelCodes.reserveCapacity(lineTotal) }
    }

    private mutating func row() throws {
        guard fields.count == columnCount else {
            throw TrainerError("\(path):\(lineNumber): \(fields.count) fields, the header has \(columnCount) columns")
        }
        lines.append(Int32(truncatingIfNeeded: lineNumber))
        var feature = 0
        for (j, r) in fields.enumerated() {
            if j == labelIndex {
                let label = text(r)
                if let code = codes[label] {
                    labelCodes.append(code)
                } else {
                    let code = UInt32(labelTexts.count)
                    codes[label] = code
                    labelTexts.append(label)
                    labelCodes.append(code)
                }
            } else {
                features.append(try number(r, column: featureNames[feature]))
                feature += 1
            }
        }
    }

    /// The field's value: a finite number, with nothing else in it but surrounding spaces.
    private func number(_ r: Range<Int>, column: String) throws -> Float {
        var bytes = Array(field[r])
        while bytes.last == 0x20 || bytes.last == 0x09 { bytes.removeLast() }
        bytes.append(0)
        // strtof reads the longest number at the start; the whole field must be that number.
        let (value, whole): (Float, Bool) = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { c in
                var end: UnsafeMutablePointer<CChar>?
                let v = strtof(c.baseAddress!, &end)
                let used = end.map { $0 - UnsafeMutablePointer(mutating: c.baseAddress!) } ?? 0
                return (v, used > 0 && used == c.count - 1)
            }
        }
        let shown = String(decoding: field[r], as: UTF8.self)
        guard whole else {
            throw TrainerError("\(path):\(lineNumber): column '\(column)': expected a number, found '\(shown)'")
        }
        guard value.isFinite else {
            throw TrainerError("\(path):\(lineNumber): column '\(column)': \(shown) (features must be finite numbers)")
        }
        return value
    }
}
