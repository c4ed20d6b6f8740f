import CURing

/// One completion queue entry, copied out of the ring so the ring slot can be released at once.
public struct Completion: Sendable {
    public let userData: UserData
    /// The operation's result: a byte count, a file descriptor, 0, or a negated errno.
    public let result: Int32
    public let flags: UInt32

    @inlinable @inline(__always)
    public init(userData: UserData, result: Int32, flags: UInt32) {
        self.userData = userData
        self.result = result
        self.flags = flags
    }

    @inlinable @inline(__always)
    init(_ cqe: UnsafePointer<io_uring_cqe>) {
        self.init(userData: UserData(rawValue: cqe.pointee.user_data), result: cqe.pointee.res, flags: cqe.pointee.flags)
    }

    /// The provided buffer the kernel filled, when the operation selected one.
    @inlinable @inline(__always) public var bufferID: UInt16? {
        flags & IORING_CQE_F_BUFFER != 0 ? UInt16(truncatingIfNeeded: flags >> IORING_CQE_BUFFER_SHIFT) : nil
    }

    /// A multishot operation stays armed and will post more completions.
    @inlinable @inline(__always) public var hasMore: Bool { flags & IORING_CQE_F_MORE != 0 }

    /// A zero-copy send's notification: the kernel is done with the memory the send read.
    @inlinable @inline(__always) public var isNotification: Bool { flags & IORING_CQE_F_NOTIF != 0 }

    /// The socket still had data queued when this recv completed.
    @inlinable @inline(__always) public var socketHasMoreData: Bool { flags & IORING_CQE_F_SOCK_NONEMPTY != 0 }
}
