import Glibc

/// The state machine of one proxied connection: a client socket, a backend socket, and two independent
/// directions between them. It decides; it never calls the kernel. `handle(_:into:)` takes one event (a
/// completion, or a worker decision) and appends the operations to submit, so a unit test can drive it with
/// a scripted completion stream and the worker can drive it with real ones.
///
/// Invariants it keeps:
/// - per direction, at most one recv and one send in flight: a second send could complete first and
///   reorder the stream (liburing's proxy example calls this out);
/// - per direction, at most `BufferQueue.capacity` buffers held: a stalled reader stalls its writer;
/// - a buffer goes back to the ring only when no send can still read it;
/// - the slot is released only when no operation is in flight, so no completion outlives its tunnel.
public struct Tunnel: Sendable {
    public enum Phase: UInt8, Sendable {
        case connecting, established, closing, closed
    }

    /// One direction: what it has received and not yet sent, and which operations are in flight.
    public struct Pipe: Sendable {
        public enum State: UInt8, Sendable {
            /// Receiving and sending.
            case open
            /// The source sent EOF: send what is queued, then shut the destination's write side.
            case draining
            /// Every byte was sent and the destination was shut down for writing.
            case finished
        }
        public internal(set) var state = State.open
        public internal(set) var recvPending = false
        public internal(set) var sendPending = false
        public internal(set) var waitingForBuffers = false
        public internal(set) var queue = BufferQueue()
        /// Bytes of the head buffer already sent (a short send resumes here).
        public internal(set) var headSent: UInt32 = 0
    }

    public private(set) var phase = Phase.connecting
    public private(set) var upstream = Pipe()
    public private(set) var downstream = Pipe()
    /// Operations submitted whose completions have not arrived yet.
    public private(set) var pendingOperations: UInt8 = 0
    public private(set) var connectPending = false
    public private(set) var retriesLeft: UInt8
    /// Why the tunnel is closing (`.open` until it is).
    public private(set) var closeReason = CloseReason.open
    /// The PROXY protocol header to send to the backend before any payload (0: none), and how much of it went.
    public private(set) var headerLength: UInt8
    public private(set) var headerSent: UInt8 = 0
    /// The upstream send in flight is the header, not a buffer of the queue.
    public private(set) var sendingHeader = false

    public init(retries: Int, proxyHeaderLength: Int = 0) {
        retriesLeft = UInt8(clamping: retries)
        headerLength = UInt8(clamping: proxyHeaderLength)
    }

    public func pipe(_ direction: Direction) -> Pipe {
        direction == .upstream ? upstream : downstream
    }

    public mutating func handle(_ event: TunnelEvent, into actions: inout TunnelActions) {
        switch event {
        case .start:
            actions.append(.connect)

        case .connectSubmitted:
            pendingOperations += 2
            connectPending = true

        case .connectUnavailable:
            beginClose(.noBackend, &actions)

        case .connectCompleted(let result):
            completeOne()
            connectPending = false
            guard phase == .connecting else { return finishIfIdle(&actions) }
            if result >= 0 {
                phase = .established
                actions.append(.connected)
                if headerLength > 0 {
                    // The header goes first: upstream data queues behind it, as behind any send in flight.
                    upstream.sendPending = true
                    sendingHeader = true
                    pendingOperations += 1
                    actions.append(.sendHeader(offset: 0, length: UInt32(headerLength)))
                }
                // The client may have sent its request already; a server usually waits for it.
                receive(.upstream, pollFirst: false, &actions)
                receive(.downstream, pollFirst: true, &actions)
            } else {
                actions.append(.connectFailed(result))
                actions.append(.closeBackend)
                if retriesLeft > 0 {
                    retriesLeft -= 1
                    actions.append(.connect)
                } else {
                    beginClose(.connectFailed, &actions)
                }
            }

        case .connectTimeoutCompleted:
            completeOne()
            finishIfIdle(&actions)

        case .received(let direction, let result, let buffer, let moreData):
            completeOne()
            update(direction) { $0.recvPending = false }
            guard phase == .established else {
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                return finishIfIdle(&actions)
            }
            if result > 0, let buffer {
                update(direction) { $0.queue.append(buffer: buffer, length: UInt32(result)) }
                if !pipe(direction).sendPending { sendHead(direction, &actions) }
                if !pipe(direction).queue.isFull { receive(direction, pollFirst: !moreData, &actions) }
            } else if result == 0 {
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                update(direction) { $0.state = .draining }
                if !pipe(direction).sendPending { finish(direction, &actions) }
            } else if result == -ENOBUFS {
                // Every buffer of the ring is in use: wait for one, never fail the connection for it.
                update(direction) { $0.waitingForBuffers = true }
                actions.append(.waitForBuffers(direction))
            } else if result == -EINTR || result == -EAGAIN {
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                receive(direction, pollFirst: true, &actions)
            } else {
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                beginClose(direction.source == .client ? .clientError : .backendError, &actions)
            }

        case .sent(let direction, let result):
            completeOne()
            update(direction) { $0.sendPending = false }
            guard phase == .established else {
                // The head was kept for this send; now nothing reads it.
                if !pipe(direction).queue.isEmpty {
                    var pipe = pipe(direction)
                    actions.append(.recycle(buffer: pipe.queue.removeHead()))
                    update(direction) { $0 = pipe }
                }
                return finishIfIdle(&actions)
            }
            if result == -EINTR || result == -EAGAIN {
                return sendHead(direction, &actions)
            }
            guard result > 0 else { return beginClose(direction.destination == .client ? .clientError : .backendError, &actions) }
            var pipe = pipe(direction)
            pipe.headSent += UInt32(result)
            if pipe.headSent < pipe.queue.head.length {
                update(direction) { $0 = pipe }
                return sendHead(direction, &actions)  // a short send: resume at the first unsent byte
            }
            actions.append(.recycle(buffer: pipe.queue.removeHead()))
            pipe.headSent = 0
            update(direction) { $0 = pipe }
            if !pipe.queue.isEmpty {
                sendHead(direction, &actions)
            } else if pipe.state == .draining {
                finish(direction, &actions)
            }
            if pipe.state == .open && !pipe.recvPending && !pipe.waitingForBuffers && !pipe.queue.isFull {
                // Receiving was paused by backpressure; data is likely waiting.
                receive(direction, pollFirst: false, &actions)
            }

        case .headerSent(let result):
            completeOne()
            upstream.sendPending = false
            sendingHeader = false
            guard phase == .established else { return finishIfIdle(&actions) }
            let retry = result == -EINTR || result == -EAGAIN
            guard result > 0 || retry else { return beginClose(.backendError, &actions) }
            if !retry { headerSent = UInt8(clamping: Int(headerSent) + Int(result)) }
            if headerSent < headerLength {
                upstream.sendPending = true
                sendingHeader = true
                pendingOperations += 1
                return actions.append(.sendHeader(offset: UInt32(headerSent), length: UInt32(headerLength - headerSent)))
            }
            if !upstream.queue.isEmpty {
                sendHead(.upstream, &actions)
            } else if upstream.state == .draining {
                finish(.upstream, &actions)
            }

        case .buffersAvailable(let direction):
            update(direction) { $0.waitingForBuffers = false }
            let pipe = pipe(direction)
            if phase == .established && pipe.state == .open && !pipe.recvPending && !pipe.queue.isFull {
                receive(direction, pollFirst: false, &actions)
            }

        case .idleTimeout:
            beginClose(.idleTimeout, &actions)

        case .terminate:
            beginClose(.shutdown, &actions)
        }
    }

    // MARK: - Transitions

    private mutating func receive(_ direction: Direction, pollFirst: Bool, _ actions: inout TunnelActions) {
        update(direction) { $0.recvPending = true }
        pendingOperations += 1
        actions.append(.recv(direction, pollFirst: pollFirst))
    }

    private mutating func sendHead(_ direction: Direction, _ actions: inout TunnelActions) {
        let pipe = pipe(direction)
        let head = pipe.queue.head
        update(direction) { $0.sendPending = true }
        pendingOperations += 1
        actions.append(.send(direction, buffer: head.buffer, offset: pipe.headSent, length: head.length - pipe.headSent))
    }

    /// The direction's source ended and every byte reached the destination: pass the EOF on. When the
    /// other direction is finished too, the tunnel is done (and both sockets' receive queues are empty,
    /// so the close sends FIN, not RST).
    private mutating func finish(_ direction: Direction, _ actions: inout TunnelActions) {
        update(direction) { $0.state = .finished }
        let other = direction == .upstream ? downstream : upstream
        if other.state == .finished {
            beginClose(.completed, &actions)
        } else {
            actions.append(.shutdownWrite(direction))
        }
    }

    /// Stops both directions: gives back every buffer no send can still read, cancels what is in flight, and
    /// closes once the last completion is in.
    private mutating func beginClose(_ reason: CloseReason, _ actions: inout TunnelActions) {
        guard phase != .closing && phase != .closed else { return }
        phase = .closing
        closeReason = reason
        for direction in Direction.allCases {
            var pipe = pipe(direction)
            pipe.waitingForBuffers = false
            // The head of a direction with a send in flight stays until that send completes (unless what is
            // in flight is the PROXY header, which is not in the queue).
            let sendingBuffer = pipe.sendPending && !(direction == .upstream && sendingHeader)
            let inFlight = sendingBuffer && !pipe.queue.isEmpty ? pipe.queue.head : nil
            if inFlight != nil { pipe.queue.removeHead() }
            while !pipe.queue.isEmpty { actions.append(.recycle(buffer: pipe.queue.removeHead())) }
            if let inFlight { pipe.queue.append(buffer: inFlight.buffer, length: inFlight.length) }
            update(direction) { $0 = pipe }
        }
        if upstream.recvPending || downstream.sendPending { actions.append(.cancel(.client)) }
        if downstream.recvPending || upstream.sendPending || connectPending { actions.append(.cancel(.backend)) }
        finishIfIdle(&actions)
    }

    private mutating func finishIfIdle(_ actions: inout TunnelActions) {
        guard phase == .closing, pendingOperations == 0 else { return }
        phase = .closed
        actions.append(.close(abortive: closeReason.isAbortive))
        actions.append(.release)
    }

    private mutating func completeOne() {
        assert(pendingOperations > 0, "a completion arrived for a tunnel with nothing in flight")
        pendingOperations -= 1
    }

    @inline(__always)
    private mutating func update(_ direction: Direction, _ change: (inout Pipe) -> Void) {
        if direction == .upstream { change(&upstream) } else { change(&downstream) }
    }
}

/// Why a tunnel closed, for the access log and the close counters.
public enum CloseReason: UInt8, Sendable, CustomStringConvertible {
    case open
    /// Both directions ended and every byte was delivered.
    case completed
    /// A reset or error on that side (passed on to the other side as a reset).
    case clientError, backendError
    /// No backend could take the client (all down, full, drained or already tried).
    case noBackend
    /// Every connect attempt failed.
    case connectFailed
    case idleTimeout
    /// The proxy closed it on stopping.
    case shutdown

    /// An error is passed on as RST rather than FIN.
    public var isAbortive: Bool { self == .clientError || self == .backendError }

    public var description: String {
        switch self {
        case .open: "open"
        case .completed: "completed"
        case .clientError: "client error"
        case .backendError: "backend error"
        case .noBackend: "no backend"
        case .connectFailed: "connect failed"
        case .idleTimeout: "idle timeout"
        case .shutdown: "shutdown"
        }
    }
}
