// Median: the middle of a list of measurements — how epoch times are summarised, since one slow
// epoch on a shared machine should not move the figure the way it moves a mean.

/// Median of a list (mean of the middle two for an even count); 0 for an empty one.
public func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
