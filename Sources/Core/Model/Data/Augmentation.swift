// Augmentation: random translations (and optionally horizontal flips) of training images, applied
// while a batch is gathered, drawn from the counter-based generator keyed by (seed, epoch, the
// image's index in the training split) — so an image is transformed the same way on whichever
// rank holds it, and a resumed run draws the same transforms.
//
// Translation by (dx, dy) pixels moves the content; what moves in from outside is zero (black, the
// background of Fashion-MNIST). Not a general image library: integer shifts and flips only.
import Kernels

/// The transforms of one epoch's training images.
public struct Augmentation: Sendable {
    /// Key of this epoch's transforms.
    public var key: RandomKey
    /// Largest shift in pixels, each direction.
    public var shift: Int
    public var flip: Bool

    public init(seed: UInt64, epoch: Int, shift: Int, flip: Bool) {
        key = RandomKey(seed: seed, .augmentation).with(epoch)
        self.shift = shift
        self.flip = flip
    }

    /// The shift (dx, dy) and flip of the image with index `index`.
    public func transform(of index: Int) -> (dx: Int, dy: Int, flip: Bool) {
        let bits = key.bits(index)
        let span = UInt64(2 * shift + 1)
        return (Int(bits % span) - shift, Int((bits >> 20) % span) - shift, flip && (bits >> 40) & 1 == 1)
    }

    /// Writes image `pixels` [rows × cols], transformed, scaled by 1/255, into `out`.
    public func apply(_ pixels: UnsafePointer<UInt8>, rows: Int, cols: Int, index: Int, into out: UnsafeMutablePointer<Float>) {
        let (dx, dy, flip) = transform(of: index)
        let scale: Float = 1.0 / 255.0
        for r in 0..<rows {
            let sr = r - dy
            let dst = out + r * cols
            guard sr >= 0 && sr < rows else {
                dst.update(repeating: 0, count: cols)
                continue
            }
            let src = pixels + sr * cols
            for c in 0..<cols {
                let sc = (flip ? cols - 1 - c : c) - dx
                dst[c] = sc >= 0 && sc < cols ? Float(src[sc]) * scale : 0
            }
        }
    }
}
