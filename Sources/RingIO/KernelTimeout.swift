import CURing
import Glibc
import RingSystem

/// A duration at a fixed address, for the kernel to read when a timeout that names it is submitted (a tick,
/// a connect's linked timeout). Owned by the ring's owner and changed in place (a reload changes the connect
/// timeout).
public struct KernelTimeout: ~Copyable {
    @usableFromInline let value: FixedArray<__kernel_timespec>

    public init(_ duration: Duration) {
        value = FixedArray(repeating: Self.timespec(duration), count: 1)
    }

    /// Changes the duration; timeouts submitted from now on read the new one.
    public func set(_ duration: Duration) { value[0] = Self.timespec(duration) }

    static func timespec(_ duration: Duration) -> __kernel_timespec {
        let (seconds, attoseconds) = duration.components
        return __kernel_timespec(tv_sec: seconds, tv_nsec: attoseconds / 1_000_000_000)
    }
}

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
