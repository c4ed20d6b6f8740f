import CURing
import Glibc

/// The `msghdr` and `iovec`s of gathered sends: one message of up to `vectorsPerMessage` vectors per entry (a
/// connection slot's direction), mapped once (`MAP_NORESERVE`: only the entries of connections that gathered
/// a send ever get pages). An entry must stay unchanged from its send's submission to its completion; with
/// one send in flight per direction, its owner writes it only for the next send.
///
/// The floors above name buffers of a `BufferRing` by id, offset and length; the addresses are computed, and
/// bounds-checked, here.
public struct SendMessages: ~Copyable {
    @usableFromInline let headers: MappedArray<msghdr>
    @usableFromInline let vectors: MappedArray<iovec>
    public let vectorsPerMessage: Int

    public init(messages: Int, vectorsPerMessage: Int) {
        precondition(vectorsPerMessage > 0, "a message needs a vector")
        headers = MappedArray(count: messages, purpose: "the gathered sends' headers")
        vectors = MappedArray(count: messages * vectorsPerMessage, purpose: "the gathered sends' vectors")
        self.vectorsPerMessage = vectorsPerMessage
    }

    @inlinable public var count: Int { headers.count }

    /// Sets vector `index` of message `message` to `length` bytes of buffer `buffer` of `ring` from `offset`.
    @inlinable @inline(__always)
    public func set(
        _ message: Int, vector index: Int, to ring: borrowing BufferRing, buffer: UInt16, offset: UInt32, length: UInt32
    ) {
        precondition(message >= 0 && message < headers.count && index >= 0 && index < vectorsPerMessage,
                     "vector \(index) of message \(message) is out of the table")
        precondition(UInt64(offset) + UInt64(length) <= UInt64(ring.size), "a vector past the end of a receive buffer")
        vectors[message * vectorsPerMessage + index] = iovec(iov_base: ring.bytes(of: buffer) + Int(offset), iov_len: Int(length))
    }
}

extension SendMessages: @unchecked Sendable {}

extension IORing {
    /// Sends the first `vectorCount` vectors of message `message` as one `IORING_OP_SENDMSG` (in order, as one
    /// stream of bytes; `sendMessage(to:_:userData:)`).
    @inlinable @inline(__always)
    public mutating func sendMessage(
        to fd: Int32, _ messages: borrowing SendMessages, message: Int, vectorCount: Int, userData: UserData
    ) {
        precondition(message >= 0 && message < messages.count && vectorCount > 0 && vectorCount <= messages.vectorsPerMessage,
                     "a message of \(vectorCount) vectors at \(message) is out of the table")
        // The mapping starts zeroed: no name, no control data, no flags; only the vectors change.
        let header = messages.headers.base + message
        header.pointee.msg_iov = messages.vectors.base + message * messages.vectorsPerMessage
        header.pointee.msg_iovlen = vectorCount
        sendMessage(to: fd, header, userData: userData)
    }
}
