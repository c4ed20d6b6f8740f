import CURing

/// Machine words shared between threads and touched only with atomic operations: a view into memory its
/// maker keeps alive (a `MappedRegion`), cheap to copy and free of reference counting, for the data plane.
/// Plain loads and stores are relaxed; `loadAcquire`, `fetchAdd` and `compareExchange` order as named.
public struct SharedWords: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutablePointer<Int>

    @inlinable init(base: UnsafeMutablePointer<Int>) { self.base = base }

    /// Where the first word is, as a number (for checks of the layout: which cache line it is on).
    public var address: UInt { UInt(bitPattern: base) }

    /// The words from `words` on.
    @inlinable @inline(__always)
    public func advanced(by words: Int) -> SharedWords { SharedWords(base: base + words) }

    @inlinable @inline(__always)
    public func load(_ index: Int) -> Int { curing_load_relaxed(base + index) }

    @inlinable @inline(__always)
    public func loadAcquire(_ index: Int) -> Int { curing_load_acquire(base + index) }

    @inlinable @inline(__always)
    public func store(_ value: Int, at index: Int) { curing_store_relaxed(base + index, value) }

    /// Adds `delta` (acquire-release) and returns the value before.
    @inlinable @inline(__always) @discardableResult
    public func fetchAdd(_ delta: Int, at index: Int) -> Int { curing_fetch_add(base + index, delta) }

    /// Sets the word to `desired` if it holds `expected` (acquire-release); true when it did.
    @inlinable @inline(__always)
    public func compareExchange(at index: Int, expected: Int, desired: Int) -> Bool {
        curing_compare_exchange(base + index, expected, desired) != 0
    }
}

extension MappedRegion {
    /// The region as words shared between threads (the region must outlive every view).
    @inlinable
    public var sharedWords: SharedWords {
        SharedWords(base: base.bindMemory(to: Int.self, capacity: byteCount / MemoryLayout<Int>.stride))
    }
}
