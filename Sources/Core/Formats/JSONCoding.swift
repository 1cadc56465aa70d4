// JSONCoding: the one JSON configuration of every file this project writes and reads.
//
// Keys are snake case on disk (`val_macro_f1`, `batch_size`) from camel-case Swift names, sorted so
// files are deterministic and diff well; slashes are not escaped (paths stay readable). A non-finite
// number, which JSON cannot express, is written as the string "nan", "inf" or "-inf" instead of
// crashing the writer. Run files, checkpoint metadata and the evaluation report all go through here.
import CoreSupport
import Foundation

public enum JSONCoding {
    /// The encoder: snake-case keys, sorted; compact (one line) unless `pretty`.
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    /// The matching decoder.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    /// `value` as JSON text. Encoding a plain Codable value cannot fail with this configuration
    /// (non-finite numbers become strings); a failure is reported as a TrainerError naming `what`.
    public static func text<T: Encodable>(_ value: T, pretty: Bool = false, what: String = "JSON") throws -> String {
        do { return String(decoding: try encoder(pretty: pretty).encode(value), as: UTF8.self) } catch {
            throw TrainerError("\(what): cannot encode as JSON (\(error))")
        }
    }

    /// Decodes `text`; a failure is one line naming `what` and the first problem.
    public static func decode<T: Decodable>(_ type: T.Type, from text: some Sequence<UInt8>, what: String) throws -> T {
        do { return try decoder().decode(type, from: Data(text)) } catch {
            throw TrainerError("\(what) is not valid (\(describe(error)))")
        }
    }

    /// One line for a DecodingError: what was wrong and where.
    static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.isEmpty ? "top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error as? DecodingError {
        case .typeMismatch(let type, let c)?: return "\(path(c.codingPath)): expected \(type)"
        case .valueNotFound(let type, let c)?: return "\(path(c.codingPath)): missing \(type)"
        case .keyNotFound(let key, let c)?: return "\(path(c.codingPath + [key])): missing"
        case .dataCorrupted(let c)?: return "\(path(c.codingPath)): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}
