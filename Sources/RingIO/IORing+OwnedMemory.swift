import CURing
import Glibc
import RingSystem

// Operations whose memory is a fixed array, a mapped region or a kernel timeout of this floor's: the floors
// above hand over the owner and an index or offset, never a pointer; these take the address, and check the
// bounds, here.

extension IORing {
    /// Completes after `interval`.
    @inlinable @inline(__always)
    public mutating func timeout(_ interval: borrowing KernelTimeout, userData: UserData) {
        timeout(interval.value.base, userData: userData)
    }

    /// Connects `fd` to the socket address at `address` (`length` bytes, memory that stays valid until the
    /// next submit), bounded by the linked timeout `timeout`: two completions, the connect's and the timeout's.
    @inlinable @inline(__always)
    public mutating func connect(
        _ fd: Int32, to address: UnsafeRawPointer, length: socklen_t,
        timeout: borrowing KernelTimeout, userData: UserData, timeoutUserData: UserData
    ) {
        connect(fd, to: address.assumingMemoryBound(to: sockaddr.self), length: length, timeout: timeout.value.base,
                userData: userData, timeoutUserData: timeoutUserData)
    }

    /// Connects `fd` to `addresses[index]` (memory that stays in place until the submit), bounded by the linked
    /// timeout `timeout`.
    @inlinable @inline(__always)
    public mutating func connect(
        _ fd: Int32, to addresses: borrowing FixedArray<SocketAddress>, at index: Int,
        timeout: borrowing KernelTimeout, userData: UserData, timeoutUserData: UserData
    ) {
        precondition(index >= 0 && index < addresses.count, "no address \(index) of \(addresses.count)")
        let address = UnsafeRawPointer(addresses.base + index) + SocketAddress.sockaddrOffset
        connect(fd, to: address, length: addresses[index].length, timeout: timeout, userData: userData,
                timeoutUserData: timeoutUserData)
    }

    /// Reads into `target` (as many bytes as its elements take; used for the control eventfd's counter).
    @inlinable @inline(__always)
    public mutating func read<T>(_ fd: Int32, into target: borrowing FixedArray<T>, userData: UserData) {
        read(fd, into: UnsafeMutableRawPointer(target.base), length: UInt32(target.count * MemoryLayout<T>.stride),
             userData: userData)
    }

    /// Copies up to one batch of ready completions into `sink` (at most its count) and releases their ring
    /// slots. Returns how many were copied.
    @inlinable @inline(__always)
    public func reapCompletions(into sink: borrowing FixedArray<Completion>) -> Int {
        reapCompletions(into: sink.base, capacity: sink.count)
    }
}

extension IORing {
    /// Sends `length` bytes of `region` from `offset` (memory that stays in place until the send completes).
    @inlinable @inline(__always)
    public mutating func send(to fd: Int32, from region: borrowing MappedRegion, offset: Int, length: UInt32, userData: UserData) {
        precondition(offset >= 0 && offset + Int(length) <= region.byteCount, "a send past the end of a mapped region")
        send(to: fd, bytes: UnsafeRawPointer(region.base + offset), length: length, userData: userData)
    }

    /// Connects `fd` to the socket address kept at `offset` in `region` (`length` bytes), bounded by the linked
    /// timeout `timeout`.
    @inlinable @inline(__always)
    public mutating func connect(
        _ fd: Int32, to region: borrowing MappedRegion, at offset: Int, length: socklen_t,
        timeout: borrowing KernelTimeout, userData: UserData, timeoutUserData: UserData
    ) {
        precondition(offset >= 0 && offset + Int(length) <= region.byteCount, "an address past the end of a mapped region")
        connect(fd, to: UnsafeRawPointer(region.base + offset), length: length, timeout: timeout, userData: userData,
                timeoutUserData: timeoutUserData)
    }
}

extension IORing {
    /// Sends `length` bytes of `bytes` from `offset` (memory that stays in place until the send completes).
    @inlinable @inline(__always)
    public mutating func send(to fd: Int32, from bytes: borrowing FixedArray<UInt8>, offset: Int, length: UInt32, userData: UserData) {
        precondition(offset >= 0 && offset + Int(length) <= bytes.count, "a send past the end of a fixed array")
        send(to: fd, bytes: UnsafeRawPointer(bytes.base + offset), length: length, userData: userData)
    }
}
