// Relu: the rectifier, max(0, z), and its gradient.
//
// The backward pass only needs to know where the output was positive, which the output itself
// tells (a > 0 exactly where z > 0), so no separate mask is stored.

/// a = max(0, z), in place over `count` elements.
public func reluForward(_ z: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { z[i] = max(z[i], 0) }
}

/// dz = da where a > 0, else 0; in place on `grad` (which holds da on entry).
public func reluBackward(_ grad: UnsafeMutablePointer<Float>, output a: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { grad[i] = a[i] > 0 ? grad[i] : 0 }
}

/// counts[j] = number of rows i with a[i, j] > 0, in a [rows × width] matrix (overwrites counts).
///
/// A unit that is active on every row normalised together has a Dense bias whose gradient is
/// exactly zero (BatchNorm removes any shift common to all rows); Network uses these counts to
/// make that zero exact instead of leaving Float rounding noise for Adam to amplify.
public func activeCounts(_ a: UnsafePointer<Float>, rows: Int, width: Int, into counts: UnsafeMutablePointer<Double>) {
    counts.update(repeating: 0, count: width)
    for i in 0..<rows {
        let row = a + i * width
        for j in 0..<width { counts[j] += row[j] > 0 ? 1 : 0 }
    }
}
