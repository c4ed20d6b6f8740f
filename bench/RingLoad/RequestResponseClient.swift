import Glibc
import RingIO
import RingSystem

/// What one thread of `ringload rr` does.
struct RequestPlan: Sendable {
    let connections: Int
    let requestSize: Int
    let responseSize: Int
    let pipeline: Int
    /// This thread's share of `--requests`, if given.
    let requests: Int?
    let deadline: UInt64
    /// This thread's share of `--rate`, if given (open loop).
    let rate: Double?
    let timeout: Double
}

/// One thread of `ringload rr`: each connection keeps up to `pipeline` requests in flight, paced by
/// `RequestPacing`, and reads the responses in order.
struct RequestResponseClient: LoadClient, ~Copyable {
    private struct Exchange {
        var isConnected = false
        /// Requests started on this connection.
        var issued = 0
        var inFlight = 0
        /// Bytes of started requests not yet handed to a send (one send in flight per socket).
        var unsent = 0
        var isSending = false
        /// Bytes received of the oldest response in flight.
        var received = 0
    }

    private(set) var result = LoadResult()
    private let plan: RequestPlan
    private var table: ConnectionTable<Exchange>
    private var pacing: RequestPacing
    private var connecting = 0
    /// `pipeline` requests' worth of bytes; every send is taken from its start.
    private let requestBytes: UnsafeMutableRawPointer
    /// Per connection, a ring of `pipeline` start times: request `i`'s is at `i % pipeline`.
    private let startTimes: UnsafeMutablePointer<UInt64>

    init(_ plan: RequestPlan) {
        self.plan = plan
        table = ConnectionTable(count: plan.connections, state: Exchange(), timeout: plan.timeout)
        pacing = RequestPacing(connections: plan.connections, requests: plan.requests, deadline: plan.deadline, rate: plan.rate)
        let byteCount = plan.pipeline * plan.requestSize
        requestBytes = .allocate(byteCount: byteCount, alignment: 64)
        for offset in 0..<byteCount { requestBytes.storeBytes(of: UInt8(truncatingIfNeeded: offset &* 31 &+ 7), toByteOffset: offset, as: UInt8.self) }
        startTimes = .allocate(capacity: plan.connections * plan.pipeline)
        startTimes.initialize(repeating: 0, count: plan.connections * plan.pipeline)
    }

    deinit {
        requestBytes.deallocate()
        startTimes.deallocate()
    }

    var isFinished: Bool { table.openCount == 0 }

    mutating func start(on ring: inout ClientRing) {
        for slot in 0..<plan.connections {
            if let failure = table.connect(slot, state: Exchange(), on: &ring) { result.count(failure) } else { connecting += 1 }
        }
    }

    mutating func handle(_ completion: Completion, on ring: inout ClientRing) {
        if completion.userData == ClientRing.wakeUp { return advanceSchedule(on: &ring) }
        guard let slot = table.slot(of: completion) else { return }
        switch completion.userData.kind {
        case .connect:
            connecting -= 1
            if completion.result == 0 {
                table.update(slot) { $0.isConnected = true }
                table.madeProgress(slot)
                let now = monotonicNanoseconds()
                issue(slot, now: now, on: &ring)
                receiveOrClose(slot, now: now, on: &ring)
            } else {
                fail(slot, .connect(errno: -completion.result))
            }
            if connecting == 0 && pacing.isOpenLoop {
                pacing.begin(at: monotonicNanoseconds())
                advanceSchedule(on: &ring)
            }
        case .send:
            guard completion.result > 0 else { return fail(slot, .send(errno: -completion.result)) }
            table.madeProgress(slot)
            result.bytesSent += Int(completion.result)
            table.update(slot) {
                $0.unsent -= Int(completion.result)
                $0.isSending = false
            }
            sendUnsent(slot, on: &ring)
        case .recv:
            if completion.result == -ENOBUFS { return table.receive(slot, on: &ring) }
            guard completion.result > 0 else {
                return fail(slot, completion.result == 0 ? .closedByPeer : .recv(errno: -completion.result))
            }
            table.madeProgress(slot)
            result.bytesReceived += Int(completion.result)
            let now = monotonicNanoseconds()
            completeResponses(slot, received: Int(completion.result), now: now)
            issue(slot, now: now, on: &ring)
            receiveOrClose(slot, now: now, on: &ring)
        default:
            break
        }
    }

    mutating func heartbeat(_ now: UInt64, on ring: inout ClientRing) {
        result.count(.timedOut, times: table.abortStalled { $0.isConnected && ($0.inFlight > 0 || $0.unsent > 0) })
    }

    /// Counts the responses `received` more bytes complete, oldest first.
    private mutating func completeResponses(_ slot: Int, received: Int, now: UInt64) {
        var exchange = table[slot]
        exchange.received += received
        while exchange.received >= plan.responseSize && exchange.inFlight > 0 {
            exchange.received -= plan.responseSize
            let startedAt = startTimes[slot * plan.pipeline + (exchange.issued - exchange.inFlight) % plan.pipeline]
            _ = result.latency.record(now > startedAt ? now - startedAt : 0)
            exchange.inFlight -= 1
            result.requests += 1
        }
        table[slot] = exchange
    }

    /// Starts as many requests on `slot` as the pipeline and the pacing allow.
    private mutating func issue(_ slot: Int, now: UInt64, on ring: inout ClientRing) {
        var exchange = table[slot]
        while exchange.inFlight < plan.pipeline,
              let startedAt = pacing.nextStart(connection: slot, index: exchange.issued, now: now) {
            startTimes[slot * plan.pipeline + exchange.issued % plan.pipeline] = startedAt
            exchange.issued += 1
            exchange.inFlight += 1
            exchange.unsent += plan.requestSize
        }
        table[slot] = exchange
        sendUnsent(slot, on: &ring)
    }

    private mutating func sendUnsent(_ slot: Int, on ring: inout ClientRing) {
        guard table[slot].unsent > 0, !table[slot].isSending else { return }
        table.update(slot) { $0.isSending = true }
        table.send(slot, bytes: requestBytes, length: table[slot].unsent, on: &ring)
    }

    /// Closes `slot` when it has nothing in flight and nothing more to send; otherwise waits for its next bytes.
    private mutating func receiveOrClose(_ slot: Int, now: UInt64, on ring: inout ClientRing) {
        let exchange = table[slot]
        if exchange.inFlight == 0 && !pacing.hasMore(connection: slot, index: exchange.issued, now: now) {
            table.close(slot)
        } else {
            table.receive(slot, on: &ring)
        }
    }

    /// Open loop: deals the requests now due to their connections and sets the timer for the next one.
    private mutating func advanceSchedule(on ring: inout ClientRing) {
        let now = monotonicNanoseconds()
        let (due, nextIn) = pacing.advance(to: now)
        // A connection takes all of its due requests at once: one turn round the connections is enough.
        for request in max(due.lowerBound, due.upperBound - plan.connections)..<due.upperBound {
            let slot = request % plan.connections
            if table.isOpen(slot) { issue(slot, now: now, on: &ring) }
        }
        guard let nextIn else { return closeFinished(now: now) }
        ring.wake(after: nextIn)
    }

    /// Open loop, once every request is due: closes the connections that wait for no response.
    private mutating func closeFinished(now: UInt64) {
        for slot in 0..<plan.connections where table.isOpen(slot) && table[slot].inFlight == 0 {
            if !pacing.hasMore(connection: slot, index: table[slot].issued, now: now) { table.abort(slot) }
        }
    }

    private mutating func fail(_ slot: Int, _ failure: Failure) {
        result.count(failure)
        table.abort(slot)
    }
}
