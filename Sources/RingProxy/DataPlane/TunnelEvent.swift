/// A direction of a tunnel, named by where its bytes go.
public enum Direction: UInt8, Sendable, CaseIterable {
    /// Client to backend: received on the client socket, sent on the backend socket.
    case upstream = 0
    /// Backend to client.
    case downstream = 1

    public var source: Side { self == .upstream ? .client : .backend }
    public var destination: Side { self == .upstream ? .backend : .client }
}

/// One of a tunnel's two sockets.
public enum Side: UInt8, Sendable {
    case client, backend
}

/// What happened to a tunnel: a completion from its ring, or a decision of its worker.
public enum TunnelEvent: Sendable, Equatable {
    /// The client was accepted; find it a backend.
    case start
    /// The worker submitted a connect and its linked timeout for the chosen backend (two completions follow).
    case connectSubmitted
    /// The worker could not start a connect: no backend left to try, or no socket to be had.
    case connectUnavailable
    /// The connect finished: 0, or a negated errno (`-ECANCELED` when the linked timeout fired).
    case connectCompleted(Int32)
    /// The connect's linked timeout completed (fired, or was cancelled because the connect finished).
    case connectTimeoutCompleted
    /// A receive completed: a byte count (0 is end of stream) or a negated errno. `buffer` is the provided
    /// buffer the kernel filled; `armed` says the multishot receive stays armed (`IORING_CQE_F_MORE`).
    case received(Direction, result: Int32, buffer: UInt16?, armed: Bool)
    /// A send finished: the bytes sent, or a negated errno.
    case sent(Direction, result: Int32)
    /// The send of (part of) the PROXY protocol header finished: the bytes sent, or a negated errno.
    case headerSent(result: Int32)
    /// The worker is short of receive buffers and this direction is backed up: give its buffers up.
    case evict(Direction)
    /// The buffer ring has buffers again, for a direction that was waiting for one.
    case buffersAvailable(Direction)
    /// Nothing moved for the idle timeout.
    case idleTimeout
    /// The proxy is shutting down (or the drain timeout passed): close now.
    case terminate
    /// Backed up while the worker is short of buffers, with no spill budget left: close with RST.
    case shed
}

/// What the worker must do for a tunnel: mostly one io_uring operation each.
public enum TunnelAction: Sendable, Equatable {
    /// Choose a backend not tried yet, open a socket, submit `IORING_OP_CONNECT` + `IORING_OP_LINK_TIMEOUT`,
    /// then report `.connectSubmitted` (or `.connectUnavailable`).
    case connect
    /// The backend accepted the connection.
    case connected
    /// The connect to the current backend failed with this negated errno; count it against the backend.
    case connectFailed(Int32)
    /// Close the backend socket of a failed connect (before a retry, or before giving up).
    case closeBackend
    /// A multishot `IORING_OP_RECV` with `IOSQE_BUFFER_SELECT` on the direction's source socket.
    case recv(Direction, pollFirst: Bool)
    /// A single-shot `IORING_OP_RECV` with `IOSQE_BUFFER_SELECT`: one buffer at most (a direction that had to
    /// spill receives this way).
    case recvOnce(Direction)
    /// Cancel the direction's multishot receive (backpressure); its last completion says `-ECANCELED`.
    case cancelReceive(Direction)
    /// `IORING_OP_SEND` of `length` bytes of provided buffer `buffer`, starting at `offset`, on the
    /// direction's destination socket.
    case send(Direction, buffer: UInt16, offset: UInt32, length: UInt32)
    /// `IORING_OP_SENDMSG` of the first `count` buffers of the direction's queue, chained from `first` through
    /// the worker's `BufferLinks`, the first from `offset`: what several receives queued, in one send.
    case sendChain(Direction, first: UInt16, count: UInt16, offset: UInt32)
    /// `IORING_OP_ASYNC_CANCEL` of the direction's send in flight (its completion reports what went).
    case cancelSend(Direction)
    /// Copy `bytes` bytes out of the chain of `count` buffers from `first` (skipping `skip` bytes of the first)
    /// into memory of the connection's own, and give the buffers back.
    case spill(Direction, first: UInt16, count: UInt16, skip: UInt32, bytes: UInt32)
    /// `IORING_OP_SEND` of `length` bytes of the direction's spill, from `offset`.
    case sendSpill(Direction, offset: UInt32, length: UInt32)
    /// The spill was sent (or is no longer needed): free it.
    case freeSpill(Direction)
    /// `IORING_OP_SEND` of `length` bytes of the PROXY protocol header, from `offset`, to the backend.
    case sendHeader(offset: UInt32, length: UInt32)
    /// Give a provided buffer back to the ring.
    case recycle(buffer: UInt16)
    /// Give back `count` buffers chained from `first` (through the worker's `BufferLinks`): what a closing
    /// direction held, however long its queue had grown.
    case recycleChain(first: UInt16, count: UInt16)
    /// `shutdown(SHUT_WR)` on the direction's destination: its source ended and every byte was sent.
    case shutdownWrite(Direction)
    /// The buffer ring was empty; report `.buffersAvailable` when it is refilled.
    case waitForBuffers(Direction)
    /// `IORING_OP_ASYNC_CANCEL` of everything in flight on that side's socket.
    case cancel(Side)
    /// Close both sockets; `abortive` sends RST instead of FIN (passing a reset on).
    case close(abortive: Bool)
    /// Nothing is in flight any more: the slot can be reused.
    case release
}

/// The actions one event produced, in order. Fixed capacity, on the stack.
public struct TunnelActions: Sendable {
    public static let capacity = 16
    private var storage = InlineArray<16, TunnelAction>(repeating: .release)
    public private(set) var count = 0

    public init() {}

    @inline(__always)
    public mutating func append(_ action: TunnelAction) {
        precondition(count < Self.capacity, "a tunnel event produced more actions than fit")
        storage[count] = action
        count += 1
    }

    @inline(__always) public subscript(index: Int) -> TunnelAction { storage[index] }

    @inline(__always) public mutating func removeAll() { count = 0 }

    public var all: [TunnelAction] { (0..<count).map { storage[$0] } }
}
