// ModelPreset: the seed notebook's Models 1–3 and the hidden widths that override them.
//
// Each preset is a list of hidden widths plus the seed's dropout placement rule; the general shape
// type is Architecture.
import CoreSupport
import Foundation

/// The seed notebook's three models.
public enum ModelPreset: Int, CaseIterable, Codable, Sendable {
    case model1 = 1, model2 = 2, model3 = 3

    /// Hidden widths: Model 1 = 128-64, Model 2 = 512-128-64, Model 3 = 512-128-64-32.
    public var hidden: [Int] {
        switch self {
        case .model1: return [128, 64]
        case .model2: return [512, 128, 64]
        case .model3: return [512, 128, 64, 32]
        }
    }

    /// The seed's dropout placement for `blocks` hidden blocks: Models 1 and 2 skip dropout after
    /// the last block, Model 3 applies it after every block.
    public func dropoutPlacement(blocks: Int) -> [Bool] {
        (0..<blocks).map { self == .model3 || $0 < blocks - 1 }
    }

    /// The preset's architecture for the given input width and class count.
    public func architecture(inputWidth: Int, classCount: Int, hidden override: [Int]? = nil) -> Architecture {
        let widths = override ?? hidden
        return Architecture(
            inputWidth: inputWidth, hidden: widths,
            dropoutAfter: dropoutPlacement(blocks: widths.count), classCount: classCount)
    }
}

/// Parses hidden widths written as `512,128,64`: one or more positive widths separated by commas.
public func parseHiddenWidths(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let widths = parts.map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw SettingError("hidden", "expected positive layer widths separated by commas (e.g. 512,128,64), found '\(text)'")
    }
    return widths.map { $0! }
}
