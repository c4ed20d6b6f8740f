import RingSystem

/// Byte buffers that grow on demand, one per slot of a table (a connection's held first bytes): allocated on
/// first use, grown by doubling (contents kept), freed by the owner or with the table. The floors above reach
/// them by slot and offset only; sends read them in place (`IORing.send(to:from:slot:offset:length:userData:)`).
///
/// Like `FixedArray`, the table is owned by one thread, which lends it to the functions that update it (the
/// updating methods are `nonmutating`).
public struct SlotBytes: ~Copyable {
    @usableFromInline let starts: MappedArray<UnsafeMutableRawPointer?>
    @usableFromInline let capacities: MappedArray<Int>
    public let count: Int
    /// The smallest buffer allocated.
    public static let minimumCapacity = 1024

    public init(count: Int, purpose: String) {
        starts = MappedArray(count: count, purpose: purpose)
        capacities = MappedArray(count: count, purpose: purpose)
        self.count = count
    }

    deinit {
        for slot in 0..<count where starts[slot] != nil { starts[slot]!.deallocate() }
    }

    /// Whether `slot` has a buffer.
    @inlinable @inline(__always)
    public func holds(_ slot: UInt32) -> Bool { starts[Int(slot)] != nil }

    /// Makes room for at least `byteCount` bytes in `slot`'s buffer, keeping its first `keeping` bytes: a new
    /// buffer of twice the old capacity or more (`minimumCapacity` at least). Returns the bytes newly allocated.
    public func reserve(_ slot: UInt32, _ byteCount: Int, keeping: Int) -> Int {
        let old = capacities[Int(slot)]
        guard byteCount > old else { return 0 }
        precondition(keeping >= 0 && keeping <= old, "keeping \(keeping) bytes of a buffer of \(old)")
        let capacity = Swift.max(byteCount, old * 2, Self.minimumCapacity)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        if let previous = starts[Int(slot)] {
            memory.copyMemory(from: previous, byteCount: keeping)
            previous.deallocate()
        }
        starts[Int(slot)] = memory
        capacities[Int(slot)] = capacity
        return capacity - old
    }

    /// Copies the first `count` bytes of receive buffer `buffer` of `ring` to `offset` of `slot`'s buffer.
    @inlinable
    public func copy(from ring: borrowing BufferRing, buffer: UInt16, count: Int, to offset: Int, in slot: UInt32) {
        precondition(count >= 0 && count <= Int(ring.size), "a copy past the end of a receive buffer")
        precondition(offset >= 0 && offset + count <= capacities[Int(slot)], "a copy past the end of a slot's bytes")
        (starts[Int(slot)]! + offset).copyMemory(from: ring.bytes(of: buffer), byteCount: count)
    }

    /// Copies `bytes` to `offset` of `slot`'s buffer.
    public func copy(_ bytes: [UInt8], to offset: Int, in slot: UInt32) {
        precondition(offset >= 0 && offset + bytes.count <= capacities[Int(slot)], "a copy past the end of a slot's bytes")
        bytes.withUnsafeBytes { (starts[Int(slot)]! + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// A view of `count` bytes of `slot`'s buffer from `offset`, valid until the buffer is grown or freed
    /// (empty when the slot has none).
    @inlinable
    public func view(_ slot: UInt32, from offset: Int, count: Int) -> ByteView {
        guard let start = starts[Int(slot)] else { return .empty }
        precondition(offset >= 0 && count >= 0 && offset + count <= capacities[Int(slot)], "a view past the end of a slot's bytes")
        return ByteView(UnsafeRawBufferPointer(start: start + offset, count: count))
    }

    /// Frees `slot`'s buffer; returns the bytes that gave back.
    @discardableResult
    public func free(_ slot: UInt32) -> Int {
        guard let start = starts[Int(slot)] else { return 0 }
        start.deallocate()
        let freed = capacities[Int(slot)]
        starts[Int(slot)] = nil
        capacities[Int(slot)] = 0
        return freed
    }
}

extension IORing {
    /// Sends `length` bytes of `slot`'s buffer in `bytes` from `offset` (the buffer must stay, unchanged and
    /// not freed, until the send completes).
    @inlinable @inline(__always)
    public mutating func send(to fd: Int32, from bytes: borrowing SlotBytes, slot: UInt32, offset: Int, length: UInt32, userData: UserData) {
        precondition(offset >= 0 && offset + Int(length) <= bytes.capacities[Int(slot)], "a send past the end of a slot's bytes")
        send(to: fd, bytes: UnsafeRawPointer(bytes.starts[Int(slot)]!) + offset, length: length, userData: userData)
    }
}
