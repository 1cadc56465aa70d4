// ExactSum: sums over the rows of a batch that come out bit for bit the same however the rows are
// divided among ranks and in whatever order the parts are added — the reason a run's numbers do not
// depend on the number of processes, threads or hosts that computed them.
//
// Floating-point addition is not associative, so a sum split into rank partials differs in its last
// bits from the sum in one piece. It is associative when every term lies on a common grid and every
// partial sum fits the mantissa: then no addition rounds. Two uses of that here (Demmel & Nguyen's
// "pre-rounding to a grid set by a maximum"):
//  - Row sums in Double (BatchNorm's Σa, Σa², Σdy, Σdy·x̂, the Dense bias gradients, the loss): each
//    term is rounded to a grid 53 − ⌈log₂ rows⌉ bits below a limit, so any partial sum of the batch's
//    rows is an integer number of grid steps below 2⁵³. The limit must be known before the sum, on
//    every rank alike: it is the column's maximum of the previous step with `sumHeadroomBits` bits
//    of headroom. After the reduction every rank knows the true maximum (it travels with the sums);
//    if it broke the limit the sum is redone on a grid from that maximum (rare: a column that grew
//    256× in one step, and the first step of a run).
//  - The weight-gradient products: both operands are rounded to `productBits(rows:)` bits below
//    their column's maximum over the global batch, so every product is an integer of ≤ 2·s bits on
//    the grid of its (row, column) pair and every partial sum of up to `rows` of them stays below
//    2²⁴: oneDNN's float32 accumulation, in whatever blocking and thread split, and the reduction
//    across ranks, are exact. Such operands have ≤ 8 significant bits, so bf16 holds them exactly,
//    and a bf16 product (each product exact, float32 accumulation) gives the same bits at about
//    twice the speed: training runs these products in bf16 wherever the CPU has bf16 arithmetic.
// Not here: which sums a step makes and when (Network), the reductions (Collectives).

/// Bits of headroom of a row sum's limit over the previous step's maximum.
public let sumHeadroomBits = 8

/// ⌈log₂ n⌉ for n ≥ 1 (0 for n ≤ 1).
@inline(__always)
public func ceilLog2(_ n: Int) -> Int { n <= 1 ? 0 : Int.bitWidth - (n - 1).leadingZeroBitCount }

/// The grid of an exact row sum of up to `rows` terms whose magnitudes are at most `bound` times
/// 2^`headroom`: a term times `scale` (a power of two), rounded to the nearest integer, is its number
/// of grid steps; `limit` is the largest magnitude the grid holds exactly. A bound of 0 (no history)
/// gives limit 0, so any non-zero term calls for a redo; a non-finite bound (a diverged run) gives
/// an unlimited grid of scale 1, where nothing is exact any more and nothing is redone.
@inline(__always)
public func sumGrid(bound: Double, rows: Int, headroom: Int = sumHeadroomBits) -> (scale: Double, limit: Double) {
    guard bound.isFinite else { return (1, .infinity) }
    guard bound > 0 else { return (1, 0) }
    let e = binaryExponent(bound) + 1 + headroom  // bound < 2^(exponent + 1)
    // One bit of slack below 2⁵³: a term at the limit rounds to at most half the steps a partial
    // sum may hold, so no partial sum of ≤ rows terms can round.
    let gridExponent = e + ceilLog2(rows) - 52
    return (powerOfTwo(-gridExponent), powerOfTwo(e))
}

/// The binary exponent of a positive finite Double (`Double.exponent`, read from the bits for the
/// normal numbers every bound here is: this runs for every column of every step).
@inline(__always)
func binaryExponent(_ v: Double) -> Int {
    let biased = Int((v.bitPattern >> 52) & 0x7FF)
    return biased == 0 ? Int(v.exponent) : biased - 1023
}

/// 2^k, built from its bits where it is a normal Double.
@inline(__always)
func powerOfTwo(_ k: Int) -> Double {
    (-1022...1023).contains(k) ? Double(bitPattern: UInt64(k + 1023) << 52) : Double(sign: .plus, exponent: k, significand: 1)
}

/// `sumGrid` for every column: `scale[j]`, `limit[j]` from `bounds[j]`, the same values. A step
/// makes grids for every column of every block several times (about 3 500 for Model 2), so this is
/// `sumGrid`'s arithmetic on the bits in a loop the compiler vectorises, for the bounds a step has:
/// 0, non-finite, or normal with grids of normal powers of two; any other bound sends the whole
/// call through `sumGrid` one column at a time.
public func sumGrids(bounds: UnsafePointer<Double>, count: Int, rows: Int, headroom: Int = sumHeadroomBits,
                     scale: UnsafeMutablePointer<Double>, limit: UnsafeMutablePointer<Double>) {
    let (limitShift, gridShift) = (Int64(1 + headroom), Int64(1 + headroom + ceilLog2(rows) - 52))
    var outside: UInt64 = 0
    for j in 0..<count {
        let b = bounds[j]
        let biased = Int64(truncatingIfNeeded: (b.bitPattern >> 52) & 0x7FF)
        // The limit 2^e with e = exponent + 1 + headroom, the scale 2^-(e + ⌈log₂ rows⌉ − 52), as
        // biased exponents.
        let (limitBiased, scaleBiased) = (biased + limitShift, 2046 - biased - gridShift)
        let (finite, positive) = (biased != 0x7FF, b > 0)
        let representable = biased >= 1 && limitBiased >= 1 && limitBiased <= 2046 && scaleBiased >= 1 && scaleBiased <= 2046
        outside |= finite && positive && !representable ? 1 : 0
        scale[j] = finite && positive ? Double(bitPattern: UInt64(truncatingIfNeeded: scaleBiased) << 52) : 1
        limit[j] = !finite ? .infinity : positive ? Double(bitPattern: UInt64(truncatingIfNeeded: limitBiased) << 52) : 0
    }
    if outside != 0 {
        for j in 0..<count { (scale[j], limit[j]) = sumGrid(bound: bounds[j], rows: rows, headroom: headroom) }
    }
}

/// Whether every column's maximum is within its limit (the sums on that grid were exact).
public func withinLimits(_ maxima: UnsafePointer<Double>, _ limit: UnsafePointer<Double>, count: Int) -> Bool {
    for j in 0..<count where !(maxima[j] <= limit[j]) { return false }
    return true
}

/// The steps of a term on its grid: round to nearest, ties to even (one instruction, exact).
@inline(__always)
public func gridSteps(_ v: Double, _ scale: Double) -> Double { (v * scale).rounded(.toNearestOrEven) }

/// Four terms' grid steps added among themselves: exact in any order, which is what lets a column
/// sum take four rows at a time (BatchNorm's passes) and touch its accumulator once for them.
@inline(__always)
public func gridSteps(_ a: Double, _ b: Double, _ c: Double, _ d: Double, _ scale: Double) -> Double {
    (gridSteps(a, scale) + gridSteps(b, scale)) + (gridSteps(c, scale) + gridSteps(d, scale))
}

/// The largest magnitude of four terms (a maximum does not depend on the order either).
@inline(__always)
public func largestMagnitude(_ a: Double, _ b: Double, _ c: Double, _ d: Double) -> Double {
    max(max(abs(a), abs(b)), max(abs(c), abs(d)))
}

// MARK: - Operands of exact products

/// Bits below their column's maximum to which a product's operands are rounded so that sums of up to
/// `rows` products stay exact in float32 (2·s + ⌈log₂ rows⌉ ≤ 24), at most 8 (bf16's precision).
public func productBits(rows: Int) -> Int { min(8, (24 - ceilLog2(rows)) / 2) }

/// Per-column maxima of |m| over the rows of a [rows × width] matrix, merged into `maxima` (which the
/// caller initialises, to 0 for a fresh maximum). NaNs are skipped (a diverged run is caught by its
/// loss), so that a maximum stays an ordinary number every rank can compare.
/// The maxima are taken in Float (exact: a maximum of Floats is one of them) in `scratch` (width
/// Floats), which keeps the loop to one vector max per element.
public func columnMaxima(_ m: UnsafePointer<Float>, rows: Int, width: Int, into maxima: UnsafeMutablePointer<Double>,
                         scratch: UnsafeMutablePointer<Float>) {
    parallelForColumns(width, rows: rows) { c in
        for j in c { scratch[j] = Float(maxima[j]) }
        for i in 0..<rows {
            let row = m + i * width
            for j in c { scratch[j] = max(scratch[j], abs(row[j])) }
        }
        for j in c { maxima[j] = Double(scratch[j]) }
    }
}

/// Rounds every column of a [rows × width] matrix in place to `bits` bits below `maxima[j]` (the
/// column's maximum magnitude over the global batch, as every rank knows it): the values become
/// multiples of 2^(e − bits) where maxima[j] < 2^e. A column whose maximum is 0 holds zeros already.
/// `scratch` holds 2 × width floats. With `bf16`, the rounded values go there instead, as bfloat16
/// (exact: they have at most `bits` ≤ 8 significant bits, and normal exponents), and `m` is left as
/// it was: what a bf16 product reads, made in the same pass instead of a second one. With
/// `bf16Blocks` instead, each block gets its columns of every row, likewise (a column in two
/// blocks goes to both).
public func roundColumns(_ m: UnsafeMutablePointer<Float>, rows: Int, width: Int, maxima: UnsafePointer<Double>, bits: Int,
                         scratch: UnsafeMutablePointer<Float>, bf16: UnsafeMutablePointer<UInt16>? = nil, bf16Blocks: [ColumnBlock]? = nil) {
    precondition((bf16 == nil && bf16Blocks == nil) || bits <= 8, "bfloat16 holds 8 significant bits")
    let (up, down) = (scratch, scratch + width)
    for j in 0..<width {
        let e = maxima[j] > 0 && maxima[j].isFinite ? Int(maxima[j].exponent) + 1 : 0
        if e - bits < -63 {
            // A column below 2^-56: the product of two grid steps below 2^-63 could fall below
            // float32's normal range, which bf16 dot-product instructions flush to zero (and
            // float32 ones do not), so the two formats would no longer agree, nor every split of
            // the rows. Values that small make weight gradients far below Adam's ε (1e-8), which
            // move no weight; the column becomes zeros, on every rank.
            (up[j], down[j]) = (0, 0)
        } else {
            up[j] = Float(sign: .plus, exponent: bits - e, significand: 1)
            down[j] = Float(sign: .plus, exponent: e - bits, significand: 1)
        }
    }
    let (upFactors, downFactors) = (UnsafePointer(up), UnsafePointer(down))
    parallelFor(rows, grain: 4, work: rows * width) { part in
        for i in part {
            let row = m + i * width
            @inline(__always) func rounded(_ j: Int) -> Float { (row[j] * upFactors[j]).rounded(.toNearestOrEven) * downFactors[j] }
            if let bf16 {
                // The upper half of a Float is its bfloat16 when it fits bfloat16's precision exactly.
                let out = bf16 + i * width
                for j in 0..<width { out[j] = UInt16(truncatingIfNeeded: rounded(j).bitPattern >> 16) }
            } else if let bf16Blocks {
                for block in bf16Blocks {
                    let out = block.base + i * block.columns.count - block.columns.lowerBound
                    for j in block.columns { out[j] = UInt16(truncatingIfNeeded: rounded(j).bitPattern >> 16) }
                }
            } else {
                for j in 0..<width { row[j] = rounded(j) }
            }
        }
    }
}

/// Some columns of a matrix kept apart, dense: row i's columns `columns` at `base + i · columns.count`.
public struct ColumnBlock {
    public let columns: Range<Int>
    public let base: UnsafeMutablePointer<UInt16>
    public init(columns: Range<Int>, base: UnsafeMutablePointer<UInt16>) { (self.columns, self.base) = (columns, base) }
}

/// `value` (≥ 0) as a Float rounded toward zero: the same binary exponent, so a grid made from it is
/// the grid made from `value`, and a Float is what a checkpoint stores exactly.
@inline(__always)
public func boundFloat(_ value: Double) -> Float {
    let f = Float(value)
    // Rounded up: one step toward zero, which for a positive Float is its bits less one (its
    // `nextDown`; a select, so that loops over the columns vectorise).
    return Double(f) > value ? Float(bitPattern: f.bitPattern &- 1) : f
}
