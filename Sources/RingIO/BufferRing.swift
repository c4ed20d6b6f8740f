import CURing
import Glibc
import RingSystem

/// A provided-buffer ring registered with one `IORing`: `count` buffers of `size` bytes each, from which
/// the kernel picks one per receive. A received buffer is sent as is and handed back with `recycle`; nothing
/// is copied in user space.
///
/// Returned buffers are staged and published to the kernel in one `publish()` per loop turn.
public struct BufferRing: ~Copyable {
    public let group: UInt16
    public let count: UInt32
    public let size: UInt32
    @usableFromInline let entries: UnsafeMutablePointer<io_uring_buf_ring>
    private let entriesBytes: Int
    @usableFromInline let storage: UnsafeMutableRawPointer
    private let storageBytes: Int
    @usableFromInline let mask: Int32
    @usableFromInline var staged: Int32 = 0
    /// Buffers the kernel has handed out (reported by `taken()`) and not yet given back.
    public var outstanding: Int { _outstanding }
    @usableFromInline var _outstanding = 0

    /// Registers `count` (a power of two, at most 32768) buffers of `size` bytes as group `group` of `ring`.
    public init(registeringWith ring: borrowing IORing, group: UInt16, count: UInt32, size: UInt32) throws(RingError) {
        precondition(count > 0 && count & (count - 1) == 0 && count <= 32768, "buffer count must be a power of two <= 32768")
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let entriesBytes = (Int(count) * MemoryLayout<io_uring_buf>.stride + pageSize - 1) / pageSize * pageSize
        let storageBytes = Int(count) * Int(size)
        guard let entriesMemory = Self.mapAnonymous(entriesBytes) else {
            throw RingError(operation: "mmap of the buffer ring", errno: Glibc.errno)
        }
        guard let storageMemory = Self.mapAnonymous(storageBytes) else {
            munmap(entriesMemory, entriesBytes)
            throw RingError(operation: "mmap of \(storageBytes) bytes of receive buffers", errno: Glibc.errno)
        }
        var registration = io_uring_buf_reg()
        registration.ring_addr = UInt64(UInt(bitPattern: entriesMemory))
        registration.ring_entries = count
        registration.bgid = group
        let result = io_uring_register_buf_ring(ring.raw, &registration, 0)
        guard result == 0 else {
            munmap(entriesMemory, entriesBytes)
            munmap(storageMemory, storageBytes)
            throw RingError(operation: "io_uring_register_buf_ring", errno: -result)
        }
        self.group = group
        self.count = count
        self.size = size
        self.mask = Int32(count - 1)
        self.entriesBytes = entriesBytes
        self.storageBytes = storageBytes
        self.entries = entriesMemory.bindMemory(to: io_uring_buf_ring.self, capacity: 1)
        self.storage = storageMemory
        io_uring_buf_ring_init(entries)
        for id in 0..<count { recycle(UInt16(id)) }
        publish()
        _outstanding = 0
    }

    /// The registration ends with the ring itself; only the memory is ours to release. The kernel keeps
    /// its own reference to the pages it pinned until then.
    deinit {
        munmap(entries, entriesBytes)
        munmap(storage, storageBytes)
    }

    /// The first byte of buffer `id`.
    @inlinable @inline(__always)
    public func bytes(of id: UInt16) -> UnsafeMutableRawPointer {
        storage + Int(id) * Int(size)
    }

    /// Stages buffer `id` to go back to the kernel at the next `publish()`.
    @inlinable @inline(__always)
    public mutating func recycle(_ id: UInt16) {
        io_uring_buf_ring_add(entries, bytes(of: id), size, id, mask, staged)
        staged += 1
        _outstanding -= 1
    }

    /// A completion carried one of these buffers.
    @inlinable @inline(__always)
    public mutating func taken() { _outstanding += 1 }

    /// Makes every staged buffer visible to the kernel. Returns how many were published.
    @inlinable @inline(__always) @discardableResult
    public mutating func publish() -> Int {
        let published = Int(staged)
        if published > 0 {
            io_uring_buf_ring_advance(entries, staged)
            staged = 0
        }
        return published
    }

    private static func mapAnonymous(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        return memory == MAP_FAILED ? nil : memory
    }
}
