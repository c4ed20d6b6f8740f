/// A fixed number of elements, allocated and initialised once and freed with the array: the tables that never
/// grow (per buffer of a ring, per backend of a pool, a batch of completions). Elements are reached in place,
/// so `table[index].field = value` writes one field and copies nothing.
///
/// The array owns its memory like a class owns its fields: elements can be written through any access to
/// it, a borrow included (the setter is `nonmutating`), since each table is owned by one thread, which lends it
/// to the functions that update it. Indices are checked in debug builds only, as on the data path before.
public struct FixedArray<Element>: ~Copyable {
    @usableFromInline let base: UnsafeMutablePointer<Element>
    public let count: Int

    @inlinable
    public init(repeating value: Element, count: Int) {
        precondition(count >= 0, "a fixed array cannot have \(count) elements")
        base = .allocate(capacity: Swift.max(1, count))
        base.initialize(repeating: value, count: count)
        self.count = count
    }

    /// The elements of `elements`, in order.
    @inlinable
    public init(_ elements: some Collection<Element>) {
        count = elements.count
        base = .allocate(capacity: Swift.max(1, count))
        _ = UnsafeMutableBufferPointer(start: base, count: count).initialize(from: elements)
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    @inlinable
    public subscript(index: Int) -> Element {
        @inline(__always) unsafeAddress {
            assert(index >= 0 && index < count, "index \(index) out of a fixed array of \(count)")
            return UnsafePointer(base + index)
        }
        @inline(__always) nonmutating unsafeMutableAddress {
            assert(index >= 0 && index < count, "index \(index) out of a fixed array of \(count)")
            return base + index
        }
    }
}

extension FixedArray: @unchecked Sendable where Element: Sendable {}

extension FixedArray where Element == UInt8 {
    /// Copies `count` bytes from `source` to `index`.
    @inlinable @inline(__always)
    public func copy(from source: UnsafeRawPointer, count: Int, to index: Int) {
        precondition(index >= 0 && index + count <= self.count, "a copy past the end of a fixed array")
        UnsafeMutableRawPointer(base + index).copyMemory(from: source, byteCount: count)
    }
}
