import Glibc

/// The state machine of one proxied connection: a client socket, a backend socket, and two independent
/// directions between them. It decides; it never calls the kernel. `handle(_:links:into:)` takes one event
/// (a completion, or a worker decision) and appends the operations to submit, so a unit test can drive it
/// with a scripted completion stream and the worker can drive it with real ones.
///
/// Each direction keeps one multishot receive armed on its source (the kernel picks a provided buffer for
/// every chunk that arrives, with no re-arm per receive) and sends what arrived, in order, from those same
/// buffers. Invariants it keeps:
/// - per direction, at most one send in flight: a second send could complete first and reorder the stream
///   (liburing's proxy example calls this out); it covers up to `chainSendLimit` queued buffers at once, so
///   a bulk stream sends what several receives queued in one operation;
/// - backpressure: a direction holding `pauseAt` buffers cancels its receive, and arms it again once no more
///   than `resumeAt` are left, so a stalled reader stalls its writer and holds a few buffers, not the stream;
/// - under buffer pressure the worker evicts backed-up directions: their unsent bytes are copied out
///   (`spill`), their buffers go back to the ring, and they receive again only once the copy is sent;
/// - a buffer goes back to the ring only when no send can still read it;
/// - errors are per direction: when one side fails (a reset, a failed send to it), what it sent before
///   still goes to the other side, in full, and only then is the failure passed on as a reset; what was
///   going to the failed side is dropped;
/// - the slot is released only when no operation is in flight, so no completion outlives its tunnel.
public struct Tunnel: Sendable {
    public static let pauseAt: UInt16 = 4
    public static let resumeAt: UInt16 = 1
    /// Queued buffers one send covers at most (one `sendmsg` with a vector each). Twice `pauseAt`, so that a
    /// send takes all a paused direction holds, plus what lands before its cancel; and 8 is the kernel's
    /// `UIO_FASTIOV`, the vectors it imports without an allocation.
    public static let chainSendLimit: UInt16 = 8

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
            /// Every byte was sent and the destination was shut down for writing; or the destination failed
            /// and what was left for it was dropped.
            case finished
        }

        /// The receive on the source.
        public enum Receive: UInt8, Sendable {
            /// None in flight.
            case idle
            /// A receive is in flight (multishot, or single-shot for a careful direction).
            case armed
            /// Its cancel was submitted (backpressure, eviction, a failed side); its last completion is still to come.
            case cancelling
            /// None in flight: the last one found the buffer ring empty, and the direction waits for buffers.
            case starved
        }

        /// The send to the destination: at most one in flight.
        public enum Send: UInt8, Sendable {
            case idle
            /// A send of payload: the first `sending` buffers of the queue, or the spill while there is one.
            case payload
            /// A send of the queue's first buffers whose cancel was submitted (buffer pressure): once it
            /// completes, what it did not send is spilled.
            case evicting
            /// A send of the PROXY protocol header (upstream only): payload queues behind it.
            case header
        }

        public internal(set) var state = State.open
        public internal(set) var receive = Receive.idle
        public internal(set) var send = Send.idle
        /// Spilled once: a slow reader. From then on it receives one buffer at a time (single-shot), so that
        /// it never again takes more of the pool than `resumeAt + 1` buffers.
        public internal(set) var careful = false
        /// How many of the queue's buffers, from its head, the send in flight reads (0: none, or it sends the
        /// spill or the PROXY header): they stay until it completes.
        public internal(set) var sending: UInt8 = 0
        public internal(set) var queue = BufferChain()
        /// Bytes already sent of what is being sent: the spill while there is one, else the queue's head (a
        /// short send resumes here, and a send's completion moves past every buffer it sent in full).
        public internal(set) var sent: UInt32 = 0
        /// Bytes copied out of the ring's buffers into memory of the connection's own, sent before anything
        /// in `queue` (a backed-up direction gives its buffers up under pressure); 0 when none.
        public internal(set) var spilled: UInt32 = 0

        /// A receive is in flight (armed, or being cancelled).
        @inline(__always) public var isReceiving: Bool { receive == .armed || receive == .cancelling }
        @inline(__always) public var isSending: Bool { send != .idle }
    }

    // Stored properties widest first: the tunnel sits in every connection slot (`Connection`).
    public private(set) var upstream = Pipe()
    public private(set) var downstream = Pipe()
    /// The preamble to send to the backend before any payload (0: none), and how much of it went: the PROXY
    /// protocol header, and on a routing listener the client's bytes its routing stage held (up to 63 KiB).
    public private(set) var headerLength: UInt16
    public private(set) var headerSent: UInt16 = 0
    /// `closeError`, kept in 16 bits (an errno is below 4096) so that the tunnel stays within 52 bytes.
    private var closeErrno: UInt16 = 0
    public private(set) var phase = Phase.connecting
    /// Operations submitted whose last completion has not arrived yet (an armed multishot receive is one).
    public private(set) var pendingOperations: UInt8 = 0
    public private(set) var connectPending = false
    public private(set) var retriesLeft: UInt8
    /// Why the tunnel is closing, or will close once what a failed side sent is delivered (`.open` until
    /// then), and for an error, its errno (`closeError`).
    public private(set) var closeReason = CloseReason.open

    /// For an error, its errno (0: none).
    public var closeError: Int32 { Int32(closeErrno) }

    public init(retries: Int, proxyHeaderLength: Int = 0) {
        retriesLeft = UInt8(clamping: retries)
        headerLength = UInt16(clamping: proxyHeaderLength)
    }

    public func pipe(_ direction: Direction) -> Pipe {
        direction == .upstream ? upstream : downstream
    }

    public mutating func handle(_ event: TunnelEvent, links: borrowing BufferLinks, into actions: inout TunnelActions) {
        switch event {
        case .start:
            actions.append(.connect)

        case .connectSubmitted:
            pendingOperations += 2
            connectPending = true

        case .connectUnavailable:
            beginClose(.noBackend, links, &actions)

        case .connectCompleted(let result):
            completeOne()
            connectPending = false
            guard phase == .connecting else { return finishIfIdle(&actions) }
            if result >= 0 {
                phase = .established
                actions.append(.connected)
                if headerLength > 0 {
                    // The header goes first: upstream data queues behind it, as behind any send in flight.
                    upstream.send = .header
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
                    beginClose(.connectFailed, links, &actions)
                }
            }

        case .connectTimeoutCompleted:
            completeOne()
            finishIfIdle(&actions)

        case .received(let direction, let result, let buffer, let armed):
            if !armed {
                completeOne()
                update(direction) { $0.receive = .idle }
            }
            guard phase == .established else {
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                return finishIfIdle(&actions)
            }
            guard pipe(direction).state == .open else {
                // Bytes for a side that failed, landed before the receive's cancel took effect.
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                return
            }
            if result > 0, let buffer {
                update(direction) { $0.queue.append(buffer, length: UInt32(result), links) }
                if !pipe(direction).isSending { sendNext(direction, links, &actions) }
                regulate(direction, &actions)
            } else if result == 0 {
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                update(direction) { $0.state = .draining }
                let pipe = pipe(direction)
                if !pipe.isSending && pipe.queue.isEmpty { finish(direction, links, &actions) }
            } else if result == -ENOBUFS {
                // Every buffer of the ring is in use: wait for one, never fail the connection for it.
                update(direction) { $0.receive = .starved }
                actions.append(.waitForBuffers(direction))
            } else if result == -ECANCELED || result == -EINTR || result == -EAGAIN {
                // Stopped by backpressure (or interrupted): receive again once the queue is short.
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                regulate(direction, &actions)
            } else {
                if let buffer { actions.append(.recycle(buffer: buffer)) }
                sideFailed(direction.source, error: -result, sourceEnded: true, links, &actions)
            }

        case .sent(let direction, let result):
            completeOne()
            let wasEvicting = pipe(direction).send == .evicting
            let covered = UInt16(pipe(direction).sending)
            update(direction) {
                $0.send = .idle
                $0.sending = 0
            }
            guard phase == .established, pipe(direction).state != .finished else {
                // Closing, or its destination failed while this send was in flight: what it read goes back.
                releaseInFlight(direction, covered: covered, links, &actions)
                return finishIfIdle(&actions)
            }
            var pipe = pipe(direction)
            if wasEvicting {
                // Cancelled (or done anyway): keep what went, spill the rest.
                if result > 0 {
                    pipe.sent += UInt32(result)
                } else if result != -ECANCELED && result != -EINTR && result != -EAGAIN {
                    update(direction) { $0 = pipe }
                    return sideFailed(direction.destination, error: -result, sourceEnded: false, links, &actions)
                }
                update(direction) { $0 = pipe }
                releaseSent(direction, links, &actions)
                return spillQueue(direction, links, &actions)
            }
            if result == -EINTR || result == -EAGAIN {
                return sendNext(direction, links, &actions)
            }
            guard result > 0 else {
                return sideFailed(direction.destination, error: -result, sourceEnded: false, links, &actions)
            }
            if pipe.spilled > 0 {
                pipe.sent += UInt32(result)
                if pipe.sent < pipe.spilled {
                    update(direction) { $0 = pipe }
                    return sendNext(direction, links, &actions)
                }
                actions.append(.freeSpill(direction))
                pipe.spilled = 0
                pipe.sent = 0
                update(direction) { $0 = pipe }
            } else if covered > 1 {
                pipe.sent += UInt32(result)
                update(direction) { $0 = pipe }
                // A short send leaves `sent` in a buffer it covered: the next send resumes at that byte.
                releaseSent(direction, links, &actions)
                pipe = self.pipe(direction)
            } else {
                pipe.sent += UInt32(result)
                if pipe.sent < pipe.queue.headLength(links) {
                    update(direction) { $0 = pipe }
                    return sendNext(direction, links, &actions)  // a short send: resume at the first unsent byte
                }
                actions.append(.recycle(buffer: pipe.queue.removeHead(links)))
                pipe.sent = 0
                update(direction) { $0 = pipe }
            }
            if !pipe.queue.isEmpty {
                sendNext(direction, links, &actions)
            } else if pipe.state == .draining {
                finish(direction, links, &actions)
            }
            regulate(direction, &actions)

        case .headerSent(let result):
            completeOne()
            upstream.send = .idle
            guard phase == .established, upstream.state != .finished else { return finishIfIdle(&actions) }
            let retry = result == -EINTR || result == -EAGAIN
            guard result > 0 || retry else {
                return sideFailed(.backend, error: -result, sourceEnded: false, links, &actions)
            }
            if !retry { headerSent = UInt16(clamping: Int(headerSent) + Int(result)) }
            if headerSent < headerLength {
                upstream.send = .header
                pendingOperations += 1
                return actions.append(.sendHeader(offset: UInt32(headerSent), length: UInt32(headerLength - headerSent)))
            }
            if !upstream.queue.isEmpty {
                sendNext(.upstream, links, &actions)
            } else if upstream.state == .draining {
                finish(.upstream, links, &actions)
            }

        case .evict(let direction):
            evict(direction, links, &actions)

        case .buffersAvailable(let direction):
            update(direction) { if $0.receive == .starved { $0.receive = .idle } }
            if phase == .established { regulate(direction, &actions) }

        case .idleTimeout:
            beginClose(.idleTimeout, links, &actions)

        case .terminate:
            beginClose(.shutdown, links, &actions)

        case .shed:
            beginClose(.shed, links, &actions)
        }
    }

    // MARK: - Transitions

    /// Backpressure: keeps a direction receiving while few of its buffers wait to be sent, and stops it
    /// while many do.
    private mutating func regulate(_ direction: Direction, _ actions: inout TunnelActions) {
        let pipe = pipe(direction)
        guard pipe.state == .open else { return }
        switch pipe.receive {
        case .armed:
            if pipe.queue.count >= Self.pauseAt {
                update(direction) { $0.receive = .cancelling }
                actions.append(.cancelReceive(direction))
            }
        case .idle:
            if pipe.queue.count <= Self.resumeAt && pipe.spilled == 0 { receive(direction, pollFirst: false, &actions) }
        case .cancelling, .starved:
            break
        }
    }

    private mutating func receive(_ direction: Direction, pollFirst: Bool, _ actions: inout TunnelActions) {
        update(direction) { $0.receive = .armed }
        pendingOperations += 1
        actions.append(pipe(direction).careful ? .recvOnce(direction) : .recv(direction, pollFirst: pollFirst))
    }

    /// Sends what comes next: the rest of the spill, or else the queue from the head's first unsent byte, up to
    /// `chainSendLimit` buffers (one buffer, the common case of request/response traffic, as a plain send).
    @inline(__always)
    private mutating func sendNext(_ direction: Direction, _ links: borrowing BufferLinks, _ actions: inout TunnelActions) {
        let pipe = pipe(direction)
        pendingOperations += 1
        if pipe.spilled > 0 {
            update(direction) { $0.send = .payload }
            actions.append(.sendSpill(direction, offset: pipe.sent, length: pipe.spilled - pipe.sent))
        } else if pipe.queue.count == 1 {
            update(direction) {
                $0.send = .payload
                $0.sending = 1
            }
            actions.append(.send(
                direction, buffer: pipe.queue.head, offset: pipe.sent, length: pipe.queue.headLength(links) - pipe.sent))
        } else {
            sendChain(direction, &actions)
        }
    }

    /// Several buffers queued: one send of up to `chainSendLimit` of them (kept out of line, so that the
    /// one-buffer path stays as short as it was).
    @inline(never)
    private mutating func sendChain(_ direction: Direction, _ actions: inout TunnelActions) {
        let pipe = pipe(direction)
        let count = min(pipe.queue.count, Self.chainSendLimit)
        update(direction) {
            $0.send = .payload
            $0.sending = UInt8(count)
        }
        actions.append(.sendChain(direction, first: pipe.queue.head, count: count, offset: pipe.sent))
    }

    /// A payload send of the queue completed (`sent` counts what went from the head's first byte): gives back
    /// every buffer sent in full, oldest first, and leaves `sent` at the first unsent byte of the new head.
    private mutating func releaseSent(_ direction: Direction, _ links: borrowing BufferLinks, _ actions: inout TunnelActions) {
        var pipe = pipe(direction)
        var done: UInt16 = 0
        var buffer = pipe.queue.head
        while done < pipe.queue.count && pipe.sent >= links.length[Int(buffer)] {
            pipe.sent -= links.length[Int(buffer)]
            done += 1
            buffer = links.next[Int(buffer)]
        }
        recycle(pipe.queue.removeFirst(done, links), &actions)
        update(direction) { $0 = pipe }
    }

    /// Gives back a chain taken off a queue: one buffer as such, several in one action.
    private func recycle(_ chain: BufferChain, _ actions: inout TunnelActions) {
        if chain.count == 1 {
            actions.append(.recycle(buffer: chain.head))
        } else if chain.count > 1 {
            actions.append(.recycleChain(first: chain.head, count: chain.count))
        }
    }

    // MARK: - Buffer pressure

    /// The worker is short of buffers and this direction is backed up: stop receiving, take the send in
    /// flight back (its completion says how much went), then spill what is left.
    private mutating func evict(_ direction: Direction, _ links: borrowing BufferLinks, _ actions: inout TunnelActions) {
        var pipe = pipe(direction)
        guard phase == .established, pipe.state != .finished, pipe.spilled == 0, !pipe.queue.isEmpty,
              pipe.send == .idle || pipe.send == .payload else { return }
        if pipe.receive == .armed {
            pipe.receive = .cancelling
            actions.append(.cancelReceive(direction))
        }
        if pipe.send == .payload {
            pipe.send = .evicting
            actions.append(.cancelSend(direction))
        }
        update(direction) { $0 = pipe }
        if pipe.send == .idle { spillQueue(direction, links, &actions) }
    }

    /// Copies the queue's unsent bytes out, gives its buffers back, and sends the copy.
    private mutating func spillQueue(_ direction: Direction, _ links: borrowing BufferLinks, _ actions: inout TunnelActions) {
        var pipe = pipe(direction)
        guard !pipe.queue.isEmpty else {
            if pipe.state == .draining { return finish(direction, links, &actions) }
            return regulate(direction, &actions)
        }
        var bytes: UInt32 = 0
        var buffer = pipe.queue.head
        for _ in 0..<pipe.queue.count {
            bytes += links.length[Int(buffer)]
            buffer = links.next[Int(buffer)]
        }
        bytes -= pipe.sent
        let chain = pipe.queue.detach(keeping: 0, links)
        actions.append(.spill(direction, first: chain.head, count: chain.count, skip: pipe.sent, bytes: bytes))
        pipe.spilled = bytes
        pipe.sent = 0
        pipe.careful = true
        update(direction) { $0 = pipe }
        sendNext(direction, links, &actions)
    }

    /// A send ended on a direction that sends no more: gives back what it read (the `covered` buffers from the
    /// queue's head, or the spill).
    private mutating func releaseInFlight(
        _ direction: Direction, covered: UInt16, _ links: borrowing BufferLinks, _ actions: inout TunnelActions
    ) {
        var pipe = pipe(direction)
        if pipe.spilled > 0 {
            actions.append(.freeSpill(direction))
            pipe.spilled = 0
            pipe.sent = 0
        } else {
            recycle(pipe.queue.removeFirst(covered, links), &actions)
        }
        update(direction) { $0 = pipe }
    }

    /// Gives back what a direction that sends no more holds: every buffer but those a send in flight reads, and
    /// its spill unless a send of it is in flight (those go when that send completes).
    private mutating func dropUnsent(_ direction: Direction, _ links: borrowing BufferLinks, _ actions: inout TunnelActions) {
        var pipe = pipe(direction)
        if pipe.receive == .starved { pipe.receive = .idle }
        let unsent = pipe.queue.detach(keeping: UInt16(pipe.sending), links)
        if !unsent.isEmpty { actions.append(.recycleChain(first: unsent.head, count: unsent.count)) }
        if pipe.spilled > 0 && !pipe.isSending {
            actions.append(.freeSpill(direction))
            pipe.spilled = 0
            pipe.sent = 0
        }
        update(direction) { $0 = pipe }
    }

    /// The direction's source ended and every byte reached the destination: pass the EOF on. When the
    /// other direction is finished too, the tunnel is done (and both sockets' receive queues are empty,
    /// so the close sends FIN, not RST).
    private mutating func finish(_ direction: Direction, _ links: borrowing BufferLinks, _ actions: inout TunnelActions) {
        update(direction) { $0.state = .finished }
        let other = direction == .upstream ? downstream : upstream
        if other.state == .finished && closeReason != .open {
            // The other side failed: everything it sent is delivered, now pass the failure on.
            beginClose(closeReason, links, &actions)
        } else if other.state == .finished {
            phase = .closing
            closeReason = .completed
            finishIfIdle(&actions)
        } else {
            actions.append(.shutdownWrite(direction))
        }
    }

    /// `side` failed: a receive from it ended in an error (`sourceEnded`), or a send to it did. What it sent
    /// before still goes to the other side; what was going to it is dropped at once. The tunnel closes, passing
    /// the failure on, when the direction from the failed side has delivered its last byte.
    private mutating func sideFailed(
        _ side: Side, error: Int32, sourceEnded: Bool, _ links: borrowing BufferLinks, _ actions: inout TunnelActions
    ) {
        if closeErrno == 0 { closeErrno = UInt16(clamping: error) }
        let reason: CloseReason = side == .client ? .clientError : .backendError
        let from: Direction = side == .client ? .upstream : .downstream
        if sourceEnded && pipe(from).state == .open { update(from) { $0.state = .draining } }
        let rest = pipe(from)
        let delivered = rest.state == .finished || (rest.state == .draining && rest.queue.isEmpty && !rest.isSending)
        guard !delivered else { return beginClose(reason, links, &actions) }
        closeReason = reason
        let toward: Direction = from == .upstream ? .downstream : .upstream
        dropUnsent(toward, links, &actions)
        var pipe = pipe(toward)
        pipe.state = .finished
        if pipe.receive == .armed {
            pipe.receive = .cancelling
            actions.append(.cancelReceive(toward))
        }
        update(toward) { $0 = pipe }
    }

    /// Stops both directions: gives back every buffer no send can still read, cancels what is in flight, and
    /// closes once the last completion is in.
    private mutating func beginClose(_ reason: CloseReason, _ links: borrowing BufferLinks, _ actions: inout TunnelActions) {
        guard phase != .closing && phase != .closed else { return }
        phase = .closing
        // A side failed and what it sent was still being delivered (an idle timeout or a stop came first):
        // the close still passes that failure on, as a reset, never as a clean end of stream.
        if !closeReason.isAbortive { closeReason = reason }
        for direction in Direction.allCases { dropUnsent(direction, links, &actions) }
        if upstream.isReceiving || downstream.isSending { actions.append(.cancel(.client)) }
        if downstream.isReceiving || upstream.isSending || connectPending { actions.append(.cancel(.backend)) }
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
    /// Its reader stopped while the worker was short of buffers and its spill budget was spent.
    case shed

    /// An error is passed on as RST rather than FIN.
    public var isAbortive: Bool { self == .clientError || self == .backendError || self == .shed }

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
        case .shed: "shed"
        }
    }
}
