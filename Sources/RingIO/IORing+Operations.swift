import CURing
import Glibc
import RingSystem

/// Typed preparation of the submission entries the proxy uses. Each call queues one entry (two for
/// `connect(_:timeout:)`); nothing reaches the kernel until the next submit.
extension IORing {
    /// Accepts one connection on a listening socket.
    @inlinable @inline(__always)
    public mutating func accept(listener fd: Int32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_accept(sqe, fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        sqe.pointee.user_data = userData.rawValue
    }

    /// Accepts connections on a listening socket until cancelled: one completion per connection, each with
    /// `IORING_CQE_F_MORE` while it stays armed.
    @inlinable @inline(__always)
    public mutating func acceptMultishot(listener fd: Int32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_multishot_accept(sqe, fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        sqe.pointee.user_data = userData.rawValue
    }

    /// Receives into a buffer the kernel picks from provided-buffer group `group`: at most `maximumLength`
    /// bytes of it (0: the whole buffer).
    /// `pollFirst` skips the first non-blocking attempt when the socket is known to be empty.
    @inlinable @inline(__always)
    public mutating func recv(from fd: Int32, bufferGroup group: UInt16, pollFirst: Bool, maximumLength: UInt32 = 0, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_recv(sqe, fd, nil, Int(maximumLength), 0)
        Self.selectBuffer(sqe, group: group, pollFirst: pollFirst, userData: userData)
    }

    /// Receives until cancelled: a completion, with a buffer from group `group`, for each chunk that arrives,
    /// with `IORING_CQE_F_MORE` while it stays armed. It ends by itself at end of stream, on an error, or when
    /// the group has no buffer left (`-ENOBUFS`).
    @inlinable @inline(__always)
    public mutating func recvMultishot(from fd: Int32, bufferGroup group: UInt16, pollFirst: Bool, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_recv_multishot(sqe, fd, nil, 0, 0)
        Self.selectBuffer(sqe, group: group, pollFirst: pollFirst, userData: userData)
    }

    @inlinable @inline(__always)
    static func selectBuffer(_ sqe: UnsafeMutablePointer<io_uring_sqe>, group: UInt16, pollFirst: Bool, userData: UserData) {
        sqe.pointee.flags |= curing_sqe_buffer_select
        sqe.pointee.buf_group = group
        if pollFirst { sqe.pointee.ioprio |= UInt16(IORING_RECVSEND_POLL_FIRST) }
        sqe.pointee.user_data = userData.rawValue
    }

    /// Sends `length` bytes at `bytes`. `MSG_WAITALL` makes the kernel finish a partial send itself.
    @inlinable @inline(__always)
    public mutating func send(to fd: Int32, bytes: UnsafeRawPointer, length: UInt32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_send(sqe, fd, bytes, Int(length), Int32(MSG_NOSIGNAL) | Int32(MSG_WAITALL))
        sqe.pointee.user_data = userData.rawValue
    }

    /// Sends the bytes `message`'s vectors point at, in order, as one stream (`IORING_OP_SENDMSG`); `MSG_WAITALL`
    /// as for `send`. The message and its vectors must stay in place, unchanged, until the send completes.
    @inlinable @inline(__always)
    public mutating func sendMessage(to fd: Int32, _ message: UnsafePointer<msghdr>, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_sendmsg(sqe, fd, message, UInt32(MSG_NOSIGNAL) | UInt32(MSG_WAITALL))
        sqe.pointee.user_data = userData.rawValue
    }

    /// Sends `length` bytes at `bytes` without copying them into the socket (`IORING_OP_SEND_ZC`): the kernel
    /// lends the pages to the device. Two completions: the send's result (with `IORING_CQE_F_MORE`), then a
    /// notification (`IORING_CQE_F_NOTIF`) once the kernel no longer reads the memory — only then may it be reused.
    @inlinable @inline(__always)
    public mutating func sendZeroCopy(to fd: Int32, bytes: UnsafeRawPointer, length: UInt32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_send_zc(sqe, fd, bytes, Int(length), Int32(MSG_NOSIGNAL) | Int32(MSG_WAITALL), 0)
        sqe.pointee.user_data = userData.rawValue
    }

    /// Connects `fd` to `address`, bounded by a linked timeout: two completions, the connect's and the
    /// timeout's. `address` and `timeout` must stay valid until the next submit.
    @inlinable @inline(__always)
    public mutating func connect(
        _ fd: Int32, to address: UnsafePointer<sockaddr>, length: socklen_t,
        timeout: UnsafeMutablePointer<__kernel_timespec>, userData: UserData, timeoutUserData: UserData
    ) {
        reserve(2)
        let connect = nextSubmission()
        io_uring_prep_connect(connect, fd, address, length)
        connect.pointee.flags |= curing_sqe_io_link
        connect.pointee.user_data = userData.rawValue
        let limit = nextSubmission()
        io_uring_prep_link_timeout(limit, timeout, 0)
        limit.pointee.user_data = timeoutUserData.rawValue
    }

    @inlinable @inline(__always)
    public mutating func shutdown(_ fd: Int32, how: Int32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_shutdown(sqe, fd, how)
        sqe.pointee.user_data = userData.rawValue
    }

    /// Cancels every operation in flight on `fd`; the cancelled ones complete with `-ECANCELED`.
    @inlinable @inline(__always)
    public mutating func cancelAll(on fd: Int32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_cancel_fd(sqe, fd, UInt32(IORING_ASYNC_CANCEL_ALL))
        sqe.pointee.flags |= curing_sqe_cqe_skip_success
        sqe.pointee.user_data = userData.rawValue
    }

    /// Cancels the operation submitted with `target` (with `all`, every one submitted with it).
    @inlinable @inline(__always)
    public mutating func cancel(_ target: UserData, all: Bool = false, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_cancel64(sqe, target.rawValue, all ? Int32(IORING_ASYNC_CANCEL_ALL) : 0)
        sqe.pointee.flags |= curing_sqe_cqe_skip_success
        sqe.pointee.user_data = userData.rawValue
    }

    /// Closes `fd`; posts a completion only if the close fails.
    @inlinable @inline(__always)
    public mutating func close(_ fd: Int32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_close(sqe, fd)
        sqe.pointee.flags |= curing_sqe_cqe_skip_success
        sqe.pointee.user_data = userData.rawValue
    }

    /// Completes after `interval` (which must stay valid until the next submit).
    @inlinable @inline(__always)
    public mutating func timeout(_ interval: UnsafeMutablePointer<__kernel_timespec>, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_timeout(sqe, interval, 0, 0)
        sqe.pointee.user_data = userData.rawValue
    }

    /// Reads up to `length` bytes from `fd` into `into` (used for the control eventfd).
    @inlinable @inline(__always)
    public mutating func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, length: UInt32, userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_read(sqe, fd, buffer, length, 0)
        sqe.pointee.user_data = userData.rawValue
    }

    /// A no-op that completes at once (used by tests and to wake a waiting loop).
    @inlinable @inline(__always)
    public mutating func nop(userData: UserData) {
        let sqe = nextSubmission()
        io_uring_prep_nop(sqe)
        sqe.pointee.user_data = userData.rawValue
    }
}
