// Architecture: the shape of a network, i.e. which blocks it has and where dropout is applied.
//
// A network is a stack of hidden blocks, Dense → ReLU → BatchNorm → (Dropout), followed by a Dense
// head producing class logits. The three presets are the seed notebook's Models 1–3, including its
// irregular dropout placement: Models 1 and 2 have no dropout after their last hidden block, Model 3
// has one after every block. This file holds shapes only; the numbers live in ParameterLayout.

/// The shape of a fully-connected classifier.
public struct Architecture: Codable, Equatable, Sendable {
    /// Pixels per input image.
    public var inputWidth: Int
    /// Width of each hidden block.
    public var hidden: [Int]
    /// For each hidden block, whether Dropout follows its BatchNorm.
    public var dropoutAfter: [Bool]
    /// Number of classes (width of the logits).
    public var classCount: Int

    public init(inputWidth: Int, hidden: [Int], dropoutAfter: [Bool], classCount: Int) {
        precondition(hidden.count == dropoutAfter.count)
        self.inputWidth = inputWidth
        self.hidden = hidden
        self.dropoutAfter = dropoutAfter
        self.classCount = classCount
    }

    /// Number of hidden blocks.
    public var blockCount: Int { hidden.count }

    /// Input width of hidden block `l` (or of the head when `l == blockCount`).
    public func fanIn(_ l: Int) -> Int { l == 0 ? inputWidth : hidden[l - 1] }

    /// Output width of hidden block `l` (or of the head when `l == blockCount`).
    public func fanOut(_ l: Int) -> Int { l == blockCount ? classCount : hidden[l] }

    /// "784-512-128-64-10", as the seed names its models.
    public var widthsDescription: String {
        ([inputWidth] + hidden + [classCount]).map(String.init).joined(separator: "-")
    }
}

// MARK: - The seed's presets

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

/// Parses `--hidden 512,128,64`: one or more positive widths separated by commas.
public func parseHiddenWidths(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let widths = parts.map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw TrainerError("--hidden: expected positive layer widths separated by commas (e.g. 512,128,64), found '\(text)'")
    }
    return widths.map { $0! }
}

import Foundation
