// Architecture: the shape of a network, i.e. which blocks it has and where dropout is applied.
//
// A network is a stack of hidden blocks, Dense → ReLU → BatchNorm → (Dropout), followed by a Dense
// head producing class logits. The three presets are the seed notebook's Models 1–3, including its
// irregular dropout placement: Models 1 and 2 have no dropout after their last hidden block, Model 3
// has one after every block (ModelPreset.swift). This file holds shapes only; the numbers live in
// ParameterLayout.

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

    /// Number of parameters, or nil when it would overflow or exceeds `limit` — for architectures
    /// read from files, checked before anything is sized from them.
    public func parameterCount(limit: Int) -> Int? {
        var total = 0
        for l in 0...blockCount {
            let (i, o) = (fanIn(l), fanOut(l))
            guard i > 0, o > 0 else { return nil }
            let (weights, overflow) = i.multipliedReportingOverflow(by: o)
            guard !overflow else { return nil }
            // Dense weight and bias, and a hidden block's BatchNorm scale and shift.
            let (sum, overflow2) = total.addingReportingOverflow(weights + o + (l < blockCount ? 2 * o : 0))
            guard !overflow2, sum <= limit else { return nil }
            total = sum
        }
        return total
    }
}
