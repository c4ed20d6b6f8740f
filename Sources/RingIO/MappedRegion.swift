import Glibc

/// Anonymous memory mapped once and unmapped with the region: a table sized for its capacity up front, zero
/// until written, whose pages the kernel provides only as they are first touched (`MAP_NORESERVE`), so a
/// table for 100 000 connections costs what the connections in use touch.
public struct MappedRegion: ~Copyable {
    @usableFromInline let base: UnsafeMutableRawPointer
    public let byteCount: Int

    /// Maps `byteCount` bytes; `purpose` names the table in the message if the kernel refuses.
    public init(byteCount: Int, purpose: String) {
        let memory = mmap(nil, Swift.max(1, byteCount), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        precondition(memory != MAP_FAILED && memory != nil, "cannot map \(byteCount) bytes for \(purpose)")
        base = memory!
        self.byteCount = Swift.max(1, byteCount)
    }

    deinit { munmap(base, byteCount) }

    /// The address of the byte at `offset`, for memory the kernel reads or writes (a send's bytes, a connect's
    /// address): it stays valid, and in place, as long as the region.
    @inlinable @inline(__always)
    public func address(at offset: Int) -> UnsafeMutableRawPointer {
        assert(offset >= 0 && offset < byteCount, "offset \(offset) out of a region of \(byteCount) bytes")
        return base + offset
    }

    /// Copies `count` bytes from `source` to `offset`.
    @inlinable @inline(__always)
    public func copy(from source: UnsafeRawPointer, count: Int, to offset: Int) {
        assert(offset >= 0 && offset + count <= byteCount, "a copy past the end of a region")
        (base + offset).copyMemory(from: source, byteCount: count)
    }

    /// Copies `bytes` to `offset`.
    @inlinable @inline(__always)
    public func copy(_ bytes: [UInt8], to offset: Int) {
        precondition(offset >= 0 && offset + bytes.count <= byteCount, "a copy past the end of a region")
        bytes.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Sets `count` bytes from `offset` to zero.
    @inlinable @inline(__always)
    public func zero(count: Int, at offset: Int) {
        assert(offset >= 0 && offset + count <= byteCount, "zeroing past the end of a region")
        (base + offset).initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }
}

/// `count` elements of a trivial type (no references, nothing to destroy: checked at init) in a `MappedRegion`, reached in place like a `FixedArray`'s. An element
/// never written reads as all-zero bits: either zero is a valid value of `Element`, or the owner reads only
/// what it wrote (the connection table reads slots below its high-water mark only).
public struct MappedArray<Element>: ~Copyable {
    @usableFromInline let region: MappedRegion
    @usableFromInline let base: UnsafeMutablePointer<Element>
    public let count: Int

    public init(count: Int, purpose: String) {
        precondition(_isPOD(Element.self), "a mapped array holds trivial elements only, never destroyed")
        region = MappedRegion(byteCount: count * MemoryLayout<Element>.stride, purpose: purpose)
        base = region.base.bindMemory(to: Element.self, capacity: count)
        self.count = count
    }

    @inlinable
    public subscript(index: Int) -> Element {
        @inline(__always) unsafeAddress {
            assert(index >= 0 && index < count, "index \(index) out of a mapped array of \(count)")
            return UnsafePointer(base + index)
        }
        @inline(__always) nonmutating unsafeMutableAddress {
            assert(index >= 0 && index < count, "index \(index) out of a mapped array of \(count)")
            return base + index
        }
    }
}

extension MappedArray: @unchecked Sendable where Element: Sendable {}
extension MappedRegion: @unchecked Sendable {}
