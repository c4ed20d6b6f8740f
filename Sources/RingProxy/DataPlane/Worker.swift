import CURing
import Glibc
import Logging

/// Everything a worker thread needs to build its `Worker`.
struct WorkerSetup: Sendable {
    let index: Int
    let plan: RuntimePlan
    let table: BackendTable
    let counters: WorkerCounters
    let control: ControlChannel
    let logger: Logger
    /// Connections a multishot accept may post before a cancel takes effect (the listen backlog).
    let acceptBurst: Int
    /// Connections this worker admits at most.
    let connectionCapacity: Int
    let clientLimits: ClientLimits
}

/// One data-plane thread: its own io_uring, provided-buffer ring, listening sockets and connection table.
/// Workers share nothing on the hot path but the backend table's atomics.
///
/// Each loop turn: one `io_uring_submit_and_wait` (submits everything queued, waits for one completion),
/// reap the completions in a batch, feed each to its tunnel's state machine, turn the resulting actions
/// into submission entries, hand the freed buffers back to the kernel in one publish.
///
/// The worker is split by concern over several files: accepting (`Worker+Accept`), backends
/// (`Worker+Backends`), plans and phases (`Worker+Control`).
struct Worker: ~Copyable {
    static let tickInterval = Duration.milliseconds(250)
    /// How long a reset waits for the surviving peer to acknowledge what was sent to it: 10 s.
    static let lingerTicks: UInt32 = 40
    static let completionBatch = 512

    let index: Int
    var ring: IORing
    var buffers: BufferRing
    /// Sends of at least this many bytes are zero-copy (`--zerocopy`); `UInt32.max` when off.
    let zeroCopyThreshold: UInt32
    var lentBuffers: ZeroCopyLedger
    /// The tunnels' chains of received buffers, linked through the buffers.
    let bufferLinks: BufferLinks
    /// The `msghdr` and vectors of each direction's chain send (`spillKey` numbers them), in place until it completes.
    let sendMessages: SendMessages
    var table: ConnectionTable
    var wheel: TimerWheel
    /// Tunnels whose recv found the buffer ring empty, re-armed when buffers come back.
    var starved = SlotList(\.waitLinks, .starved)
    /// Clients whose backend socket could not be opened for want of a file descriptor (EMFILE, ENFILE); their
    /// connect is tried again once connections have closed.
    var awaitingDescriptor = SlotList(\.waitLinks, .awaitingDescriptor)
    /// Tunnels that passed a reset on after delivering what the failed side sent: their close waits until the
    /// surviving peer has acknowledged every byte, since a close with RST drops what its socket still holds.
    var lingering = SlotList(\.waitLinks, .lingering)
    /// The spills of backed-up directions (see `Worker+Pressure`), by `spillKey`: only under buffer pressure.
    var spills: [UInt32: Spill] = [:]
    /// Receive buffers out beyond which backed-up directions give theirs up: three quarters of the pool; never,
    /// on a kernel whose cancelled sends do not say how much they sent (eviction could send bytes twice).
    let pressureMark: Int
    /// When the last pressure scan ran (tick and loop turn), and whether a receive found the ring empty
    /// in this turn.
    var pressureScanTick = UInt32.max
    var pressureScanTurn: UInt32 = 0
    var turn: UInt32 = 0
    var starvedThisTurn = false
    var lastScanEvicted = false
    /// Bytes the worker may hold in spills; past it, backed-up directions are shed instead (8 times the ring).
    let spillBudget: Int
    /// Sockets were closed during the last turn: descriptors are free once that turn's closes are submitted.
    var descriptorsFreed = false
    /// The configuration being run. A connection's `listener` is an index into `plan.listeners`, which
    /// leads to its pool and (in `strategies`) its balancing strategy.
    var plan: RuntimePlan
    /// The listening sockets still accepting (none once draining), with their accept state.
    var listeners: [ListenerState]
    /// One balancing strategy per listener of `plan` (its state is this worker's own).
    var strategies: [any SelectionStrategy]
    /// The routing stage's state per slot, in use once a plan first has a listener that routes (`Worker+Routing`).
    var routes: RouteTable
    /// `routeStrategies[listener][pool]`: a strategy for each pool of a listener's routes.
    var routeStrategies: [[any SelectionStrategy]] = []
    let clientLimits: ClientLimits
    /// Draining listeners whose backlog is still being taken (the table was full when the drain began).
    var backlogs: [Backlog] = []
    var phase = ControlChannel.Phase.running
    var acceptPaused = false
    let acceptBurst: Int
    let backendTable: BackendTable
    let shard: BackendShard
    var random = FastRandom()
    let counters: WorkerCounters
    let control: ControlChannel
    let logger: Logger
    var logs = WorkerLogs()
    /// Memory the kernel reads or writes on our behalf: it must not move.
    let completions = FixedArray(repeating: Completion(userData: UserData(rawValue: 0), result: 0, flags: 0), count: completionBatch)
    let connectTimeout: KernelTimeout
    let tickTimeout = KernelTimeout(tickInterval)
    let controlBuffer = FixedArray<UInt64>(repeating: 0, count: 1)

    init(_ setup: WorkerSetup) throws(RingError) {
        let config = setup.plan.config
        let ring = try IORing(entries: UInt32(config.ringSize), sqpoll: config.sqpoll)
        let buffers = try BufferRing(
            registeringWith: ring, group: 0, count: UInt32(config.buffersPerWorker), size: UInt32(config.bufferSize))
        self.ring = ring
        self.buffers = buffers
        zeroCopyThreshold = switch config.zerocopy {
        case .off: UInt32.max
        case .on: 1
        case .auto: ZeroCopyMode.autoThreshold
        }
        lentBuffers = ZeroCopyLedger(buffers: config.buffersPerWorker)
        bufferLinks = BufferLinks(buffers: config.buffersPerWorker)
        sendMessages = SendMessages(messages: setup.connectionCapacity * 2, vectorsPerMessage: Int(Tunnel.chainSendLimit))
        pressureMark = RingAvailability.cancelledSendsReportProgress ? config.buffersPerWorker * 3 / 4 : Int.max
        spillBudget = config.buffersPerWorker * config.bufferSize * Self.spillBudgetRings
        index = setup.index
        table = ConnectionTable(capacity: setup.connectionCapacity)
        routes = RouteTable(capacity: setup.connectionCapacity)
        wheel = TimerWheel(idleTicks: Self.idleTicks(config.idleTimeout))
        plan = setup.plan
        listeners = setup.plan.listeners.map { ListenerState(id: $0.id, fd: $0.sockets[setup.index]) }
        strategies = setup.plan.listeners.map { $0.pool.algorithm.makeStrategy(for: $0.pool) }
        clientLimits = setup.clientLimits
        acceptBurst = setup.acceptBurst
        backendTable = setup.table
        shard = setup.table.shard(setup.index)
        counters = setup.counters
        control = setup.control
        logger = setup.logger
        connectTimeout = KernelTimeout(config.connectTimeout)
        adoptRouting(setup.plan, previous: nil)
    }

    deinit {
        for listener in listeners { Glibc.close(listener.fd) }
        for backlog in backlogs { Glibc.close(backlog.fd) }
    }

    /// How the ring was set up, for the start-up log.
    var ringDescription: String { ring.setupDescription }

    /// Runs until told to drain or terminate and every connection is closed.
    mutating func run() {
        control.acknowledge(plan.generation)
        armControl()
        armTick()
        armAccepts()
        while !isFinished {
            ring.submitAndWait(1)
            if descriptorsFreed { retryAwaitingDescriptor() }
            let count = ring.reapCompletions(into: completions)
            turn &+= 1
            starvedThisTurn = false
            for index in 0..<count { dispatch(completions[index]) }
            relievePressure()
            if !backlogs.isEmpty { serveBacklogs() }
            if buffers.publish() > 0 { wakeStarved() }
            armAccepts()
            publishCounters(completions: count)
        }
        ring.submit()
    }

    private var isFinished: Bool {
        phase != .running && table.active == 0 && listeners.isEmpty && backlogs.isEmpty
    }

    // MARK: - Completions

    private mutating func dispatch(_ completion: Completion) {
        guard let kind = completion.userData.kind else { return }
        switch kind {
        case .accept: acceptCompleted(completion)
        case .tick: tickCompleted()
        case .control: controlCompleted()
        case .connect, .connectTimeout, .recv, .send, .sendHeader: tunnelCompleted(kind, completion)
        case .sendZeroCopy: zeroCopyCompleted(completion)
        case .preread: prereadCompleted(completion)
        case .cancel, .close, .shutdown, .check: break  // posted only on failure, and there is nothing left to undo
        }
    }

    /// A zero-copy send's result goes to its tunnel; its notification gives the buffer back. The result is
    /// counted by the tunnel, so it always finds its slot live; its user data carries the buffer instead of
    /// the slot's generation.
    private mutating func zeroCopyCompleted(_ completion: Completion) {
        let buffer = completion.userData.lentBuffer
        if !completion.isNotification {
            let slot = completion.userData.slot
            let direction: Direction = completion.userData.direction == 0 ? .upstream : .downstream
            if completion.result > 0 { countBytes(Int(completion.result), direction, slot) }
            table[slot].lastActive = wheel.now
            handle(slot, .sent(direction, result: completion.result))
            guard !completion.hasMore else { return }  // no notification will follow
        }
        if lentBuffers.returned(buffer) { buffers.recycle(buffer) }
    }

    private mutating func tunnelCompleted(_ kind: OperationKind, _ completion: Completion) {
        let slot = completion.userData.slot
        if completion.bufferID != nil { buffers.taken() }
        guard table.isLive(slot, generation: completion.userData.generation) else {
            // Cannot happen while every operation is counted, but a buffer must never leak.
            if let buffer = completion.bufferID { buffers.recycle(buffer) }
            counters.add(1, .staleCompletions)
            return
        }
        table[slot].lastActive = wheel.now
        let direction: Direction = completion.userData.direction == 0 ? .upstream : .downstream
        switch kind {
        case .connect:
            handle(slot, .connectCompleted(completion.result))
        case .connectTimeout:
            handle(slot, .connectTimeoutCompleted)
        case .recv:
            handle(slot, .received(direction, result: completion.result, buffer: completion.bufferID, armed: completion.hasMore))
        case .sendHeader:
            handle(slot, .headerSent(result: completion.result))
            if routes.isInUse { preambleSent(slot) }
        default:
            if completion.result > 0 { countBytes(Int(completion.result), direction, slot) }
            handle(slot, .sent(direction, result: completion.result))
        }
    }

    func countBytes(_ bytes: Int, _ direction: Direction, _ slot: UInt32) {
        let backend = table[slot].backend
        guard backend.rawValue >= 0 else { return }
        if direction == .upstream {
            shard.add(bytes, to: .bytesToBackend, backend: backend)
            counters.add(bytes, .bytesUpstream)
            table[slot].bytesUpstream = table[slot].bytesUpstream &+ UInt64(bytes)
        } else {
            shard.add(bytes, to: .bytesToClient, backend: backend)
            counters.add(bytes, .bytesDownstream)
            table[slot].bytesDownstream = table[slot].bytesDownstream &+ UInt64(bytes)
        }
    }

    /// Feeds one event to a tunnel and carries out what it decides.
    mutating func handle(_ slot: UInt32, _ event: TunnelEvent) {
        var actions = TunnelActions()
        table.handle(event, at: slot, links: bufferLinks, into: &actions)
        for index in 0..<actions.count { perform(actions[index], slot) }
    }

    private mutating func perform(_ action: TunnelAction, _ slot: UInt32) {
        switch action {
        case .connect:
            startConnect(slot)
        case .connected:
            connected(slot)
        case .connectFailed(let error):
            connectFailed(slot, error: error)
        case .closeBackend:
            ring.close(table[slot].backendFD, userData: UserData(.close, slot: slot))
            table[slot].backendFD = -1
            releaseBackend(slot)
        case .recv(let direction, let pollFirst):
            ring.recvMultishot(
                from: table[slot].fd(direction.source), bufferGroup: buffers.group, pollFirst: pollFirst,
                userData: userData(.recv, slot, direction))
        case .cancelSend(let direction):
            ring.cancel(userData(.send, slot, direction), userData: UserData(.cancel, slot: slot))
            if zeroCopyThreshold != .max {
                // A zero-copy send carries its buffer, not the generation, in its user data.
                let head = table[slot].tunnel.pipe(direction).queue.head
                ring.cancel(.zeroCopySend(slot: slot, buffer: head, direction: direction.rawValue),
                            userData: UserData(.cancel, slot: slot))
            }
        case .recvOnce(let direction):
            ring.recv(
                from: table[slot].fd(direction.source), bufferGroup: buffers.group, pollFirst: false,
                userData: userData(.recv, slot, direction))
        case .send(let direction, let buffer, let offset, let length):
            stampSend(slot, direction)
            let fd = table[slot].fd(direction.destination)
            let bytes = buffers.bytes(of: buffer) + Int(offset)
            if length >= zeroCopyThreshold {
                lentBuffers.lend(buffer)
                counters.add(1, .zeroCopySends)
                ring.sendZeroCopy(
                    to: fd, bytes: bytes, length: length,
                    userData: .zeroCopySend(slot: slot, buffer: buffer, direction: direction.rawValue))
            } else {
                ring.send(to: fd, bytes: bytes, length: length, userData: userData(.send, slot, direction))
            }
        case .sendChain(let direction, let first, let count, let offset):
            guard zeroCopyThreshold == .max else {
                // Zero-copy sends stay single: each lends its buffer until its own notification. The tunnel
                // takes the head's completion as a short send and sends the rest next.
                let length = bufferLinks.length[Int(first)] - offset
                return perform(.send(direction, buffer: first, offset: offset, length: length), slot)
            }
            stampSend(slot, direction)
            sendChain(slot, direction, first: first, count: count, offset: offset)
        case .spill(let direction, let first, let count, let skip, let bytes):
            spill(slot, direction, first: first, count: count, skip: skip, bytes: bytes)
        case .sendSpill(let direction, let offset, let length):
            stampSend(slot, direction)
            sendSpill(slot, direction, offset: offset, length: length)
        case .freeSpill(let direction):
            freeSpill(slot, direction)
        case .sendHeader(let offset, let length):
            stampSend(slot, .upstream)
            // The PROXY header, or on a routing listener the preamble: that header and the client's held bytes.
            if routes.isInUse && routes.held.holds(slot) {
                ring.send(to: table[slot].backendFD, from: routes.held, slot: slot, offset: Int(routes[slot].preambleOffset + offset),
                          length: length, userData: userData(.sendHeader, slot, .upstream))
                return
            }
            ring.send(
                to: table[slot].backendFD, from: table.rooms, offset: table.headerOffset(of: slot) + Int(offset), length: length,
                userData: userData(.sendHeader, slot, .upstream))
        case .cancelReceive(let direction):
            ring.cancel(userData(.recv, slot, direction), userData: UserData(.cancel, slot: slot))
        case .recycle(let buffer):
            giveBack(buffer)
        case .recycleChain(let first, let count):
            var buffer = first
            for _ in 0..<count {
                let next = bufferLinks.next[Int(buffer)]
                giveBack(buffer)
                buffer = next
            }
        case .shutdownWrite(let direction):
            // A plain syscall: it only queues a FIN, and io_uring would hand it to a worker thread.
            _ = Glibc.shutdown(table[slot].fd(direction.destination), Int32(SHUT_WR))
        case .waitForBuffers:
            starved.insert(slot, in: table)
            starvedThisTurn = true
            counters.add(1, .bufferRingEmpty)
        case .cancel(let side):
            ring.cancelAll(on: table[slot].fd(side), userData: UserData(.cancel, slot: slot))
        case .close(let abortive):
            if abortive, phase != .terminating, let fd = survivingFD(slot), Socket.undeliveredBytes(fd) > 0 {
                return linger(slot)
            }
            closeSockets(slot, abortive: abortive)
        case .release:
            guard !table[slot].isLingering else { return }  // the tick releases it once delivered
            release(slot)
        }
    }

    private mutating func closeSockets(_ slot: UInt32, abortive: Bool) {
        if plan.config.accessLog { logAccess(slot) }
        if table[slot].clientFD >= 0 { closeSocket(table[slot].clientFD, abortive: abortive, slot) }
        if table[slot].backendFD >= 0 { closeSocket(table[slot].backendFD, abortive: abortive, slot) }
    }

    mutating func release(_ slot: UInt32) {
        wheel.remove(slot, in: table)
        starved.remove(slot, in: table)
        awaitingDescriptor.remove(slot, in: table)
        lingering.remove(slot, in: table)
        if !spills.isEmpty {
            // The tunnel frees its spills before it releases; this only keeps a mistake from leaking.
            freeSpill(slot, .upstream)
            freeSpill(slot, .downstream)
        }
        releaseBackend(slot)
        if routes.isInUse { routingReleased(slot) }
        table.free(slot)
        counters.add(1, .closed)
    }

    // MARK: - Passing a reset on

    /// The socket of the side that did not fail, when the tunnel closes for a failure.
    private func survivingFD(_ slot: UInt32) -> Int32? {
        switch table[slot].tunnel.closeReason {
        case .backendError: table[slot].clientFD
        case .clientError: table[slot].backendFD >= 0 ? table[slot].backendFD : nil
        default: nil
        }
    }

    /// Holds a closed tunnel's surviving socket until its peer has acknowledged every byte sent to it; the
    /// failed side's socket is closed now.
    private mutating func linger(_ slot: UInt32) {
        if table[slot].tunnel.closeReason == .backendError {
            if table[slot].backendFD >= 0 { closeSocket(table[slot].backendFD, abortive: true, slot) }
            table[slot].backendFD = -1
        } else {
            closeSocket(table[slot].clientFD, abortive: true, slot)
            table[slot].clientFD = -1
        }
        table[slot].isLingering = true
        table[slot].lastActive = wheel.now
        wheel.remove(slot, in: table)
        starved.remove(slot, in: table)
        awaitingDescriptor.remove(slot, in: table)
        lingering.insert(slot, in: table)
        counters.add(1, .resetsDeferred)
    }

    /// From the tick: closes, with RST, the lingering tunnels whose peer has everything (or that waited
    /// `lingerTicks`); with `all`, every one (the proxy is stopping).
    mutating func closeLingering(all: Bool = false) {
        var waiting = lingering
        lingering = SlotList(\.waitLinks, .lingering)
        while let slot = waiting.popFirst(in: table) {
            let delivered = survivingFD(slot).map { Socket.undeliveredBytes($0) <= 0 } ?? true
            if !all && !delivered && wheel.now &- table[slot].lastActive < Self.lingerTicks {
                lingering.insert(slot, in: table)
                continue
            }
            table[slot].isLingering = false
            closeSockets(slot, abortive: true)
            release(slot)
        }
    }

    /// Sends `count` chained buffers from `first` (the first from `offset`) as one message.
    private mutating func sendChain(_ slot: UInt32, _ direction: Direction, first: UInt16, count: UInt16, offset: UInt32) {
        let message = Int(Self.spillKey(slot, direction))
        var buffer = first
        var skip = offset
        for index in 0..<Int(count) {
            sendMessages.set(message, vector: index, to: buffers, buffer: buffer, offset: skip,
                             length: bufferLinks.length[Int(buffer)] - skip)
            skip = 0
            buffer = bufferLinks.next[Int(buffer)]
        }
        ring.sendMessage(to: table[slot].fd(direction.destination), sendMessages, message: message, vectorCount: Int(count),
                         userData: userData(.send, slot, direction))
        counters.add(1, .chainSends)
        counters.add(Int(count), .chainedBuffers)
    }

    @inline(__always)
    private func stampSend(_ slot: UInt32, _ direction: Direction) {
        if direction == .upstream {
            table[slot].sendStarted.upstream = wheel.now
        } else {
            table[slot].sendStarted.downstream = wheel.now
        }
    }

    /// Returns a buffer to the ring, unless a zero-copy send still lends it to the kernel.
    @inline(__always)
    mutating func giveBack(_ buffer: UInt16) {
        if zeroCopyThreshold == .max || lentBuffers.release(buffer) { buffers.recycle(buffer) }
    }

    /// One line per closed connection (`--access-log`), written before its sockets are closed.
    private func logAccess(_ slot: UInt32) {
        let client = table.clientAddress(of: slot).map { "\($0)" } ?? "-"
        let backend = table[slot].hasBackend ? backendName(table[slot].backend) : "-"
        logger.info("connection closed", metadata: [
            "client": "\(client)", "backend": "\(backend)",
            "bytes_up": "\(table[slot].bytesUpstream)", "bytes_down": "\(table[slot].bytesDownstream)",
            "duration_ms": "\(monotonicMilliseconds() - table.openedAt(of: slot))",
            "reason": "\(table[slot].tunnel.closeReason)",
        ].merging(table[slot].tunnel.closeError == 0 ? [:] : ["error": "\(errnoName(table[slot].tunnel.closeError))"]) { $1 })
    }

    @inline(__always)
    func userData(_ kind: OperationKind, _ slot: UInt32, _ direction: Direction) -> UserData {
        UserData(kind, slot: slot, generation: table[slot].generation, direction: direction.rawValue)
    }

    private mutating func closeSocket(_ fd: Int32, abortive: Bool, _ slot: UInt32) {
        if abortive { Socket.setAbortiveClose(fd) }
        ring.close(fd, userData: UserData(.close, slot: slot))
        descriptorsFreed = true
    }

    /// Re-arms the receives that found the buffer ring empty, now that buffers came back.
    mutating func wakeStarved() {
        while let slot = starved.popFirst(in: table) {
            handle(slot, .buffersAvailable(.upstream))
            handle(slot, .buffersAvailable(.downstream))
        }
    }

    private func publishCounters(completions: Int) {
        counters.set(table.active, .active)
        counters.add(completions, .completions)
        counters.set(Int(ring.submissionCount), .submissions)
        counters.set(Int(ring.enterCount), .kernelEnters)
    }

    /// `timeout` in ticks counted from the tick of the last activity: one more than the timeout rounded up,
    /// since that activity may have come at the very end of its tick. A connection is thus closed no sooner
    /// than `timeout` after it went quiet, and at most one tick later.
    static func idleTicks(_ timeout: Duration?) -> UInt32? {
        let tickNanoseconds = tickInterval.milliseconds * 1_000_000
        return timeout.map { timeout in
            UInt32(clamping: (timeout.milliseconds * 1_000_000 + tickNanoseconds - 1) / tickNanoseconds + 1)
        }
    }

    static func describe(errno: Int32) -> String {
        "\(String(cString: strerror(errno))) (\(errnoName(errno)))"
    }
}

/// The rate-limited warnings a worker may emit from its data plane, one limiter per kind.
struct WorkerLogs {
    var noBackend = RateLimitedLog(intervalTicks: 4)
    var connectGaveUp = RateLimitedLog(intervalTicks: 4)
    var backendSocket = RateLimitedLog(intervalTicks: 4)
    var acceptFailure = RateLimitedLog(intervalTicks: 4)
    var acceptOverflow = RateLimitedLog(intervalTicks: 4)
    var noRoute = RateLimitedLog(intervalTicks: 4)
}
