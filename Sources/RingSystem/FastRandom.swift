import CURing
import Glibc

/// wyrand: a small, fast, non-cryptographic generator, one per worker so picks never contend.
public struct FastRandom: RandomNumberGenerator, Sendable {
    @usableFromInline var state: UInt64

    @inlinable public init(seed: UInt64) { state = seed }

    /// Seeded from the kernel's entropy pool.
    public init() {
        var seed: UInt64 = 0
        if curing_getrandom(&seed, MemoryLayout<UInt64>.size, 0) != MemoryLayout<UInt64>.size {
            seed = UInt64(UInt(bitPattern: time(nil))) ^ 0x9E37_79B9_7F4A_7C15
        }
        state = seed
    }

    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0xA076_1D64_78BD_642F
        let product = state.multipliedFullWidth(by: state ^ 0xE703_7ED1_A0B4_28DB)
        return product.high ^ product.low
    }

    /// A uniform value in 0..<bound (bound > 0), by Lemire's multiply-shift (bias below 2^-32 for our bounds).
    @inlinable @inline(__always)
    public mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(bound)).high)
    }
}
