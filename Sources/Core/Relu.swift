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
