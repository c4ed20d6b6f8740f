import CURing
import Glibc
import Logging

/// A listening socket owned by one worker, and the pool its clients are sent to.
struct ListenerSocket: Sendable {
    let fd: Int32
    let pool: Int
    let name: String
}

/// Everything a worker thread needs to build its `Worker`.
struct WorkerSetup: Sendable {
    let index: Int
    let config: ProxyConfig
    let listeners: [ListenerSocket]
    let pools: [BackendPool]
    let counters: WorkerCounters
    let control: WorkerControl
    let logger: Logger
}

/// One data-plane thread: its own io_uring, provided-buffer ring, listening sockets and connection table.
/// Workers share nothing on the hot path but the backend tables' atomics.
///
/// Each loop turn: one `io_uring_submit_and_wait` (submits everything queued, waits for one completion),
/// reap the completions in a batch, feed each to its tunnel's state machine, turn the resulting actions
/// into submission entries, hand the freed buffers back to the kernel in one publish.
struct Worker: ~Copyable {
    static let tickInterval = Duration.milliseconds(250)
    /// Accepts kept in flight per listener (each bounded by free connection slots).
    static let acceptDepth = 8
    static let completionBatch = 512

    let index: Int
    private var ring: IORing
    private var buffers: BufferRing
    private var table: ConnectionTable
    private var wheel: TimerWheel
    /// Tunnels whose recv found the buffer ring empty, re-armed when buffers come back.
    private var starved = SlotList(\.starvedLinks)
    private var listeners: [ListenerState]
    private var pendingAccepts = 0
    private var acceptPaused = false
    private var terminating = false
    private let pools: [BackendPool]
    private let shards: [BackendShard]
    private let balancer = WeightedRandom()
    private var random = FastRandom()
    private let retries: Int
    private let counters: WorkerCounters
    private let control: WorkerControl
    private let logger: Logger
    private var logs = WorkerLogs()
    /// Memory the kernel reads or writes on our behalf: it must not move.
    private let completions: UnsafeMutablePointer<Completion>
    private let connectTimeout: UnsafeMutablePointer<__kernel_timespec>
    private let tickTimeout: UnsafeMutablePointer<__kernel_timespec>
    private let controlBuffer: UnsafeMutablePointer<UInt64>

    private struct ListenerState {
        let socket: ListenerSocket
        var pendingAccepts = 0
    }

    init(_ setup: WorkerSetup) throws(RingError) {
        let config = setup.config
        let ring = try IORing(entries: UInt32(config.ringSize), sqpoll: config.sqpoll)
        let buffers = try BufferRing(
            registeringWith: ring, group: 0, count: UInt32(config.buffersPerWorker), size: UInt32(config.bufferSize))
        self.ring = ring
        self.buffers = buffers
        index = setup.index
        table = ConnectionTable(capacity: config.connectionsPerWorker)
        let tickNanoseconds = Self.tickInterval.milliseconds * 1_000_000
        wheel = TimerWheel(idleTicks: config.idleTimeout.map { timeout in
            UInt32(clamping: max(1, (timeout.milliseconds * 1_000_000 + tickNanoseconds - 1) / tickNanoseconds))
        })
        listeners = setup.listeners.map { ListenerState(socket: $0) }
        pools = setup.pools
        shards = setup.pools.map { $0.table.shard(setup.index) }
        retries = config.retries
        counters = setup.counters
        control = setup.control
        logger = setup.logger
        completions = .allocate(capacity: Self.completionBatch)
        connectTimeout = .allocate(capacity: 1)
        connectTimeout.initialize(to: Self.timespec(config.connectTimeout))
        tickTimeout = .allocate(capacity: 1)
        tickTimeout.initialize(to: Self.timespec(Self.tickInterval))
        controlBuffer = .allocate(capacity: 1)
        controlBuffer.initialize(to: 0)
    }

    deinit {
        for listener in listeners { Glibc.close(listener.socket.fd) }
        completions.deallocate()
        connectTimeout.deallocate()
        tickTimeout.deallocate()
        controlBuffer.deallocate()
    }

    /// How the ring was set up, for the start-up log.
    var ringDescription: String { ring.setupDescription }

    /// Runs until terminated and every connection is closed.
    mutating func run() {
        armControl()
        armTick()
        armAccepts()
        while !(terminating && table.active == 0 && pendingAccepts == 0) {
            ring.submitAndWait(1)
            let count = ring.reapCompletions(into: completions, capacity: Self.completionBatch)
            for index in 0..<count { dispatch(completions[index]) }
            if buffers.publish() > 0 { wakeStarved() }
            armAccepts()
            publishCounters(completions: count)
        }
        ring.submit()
    }

    // MARK: - Completions

    private mutating func dispatch(_ completion: Completion) {
        guard let kind = completion.userData.kind else { return }
        switch kind {
        case .accept: acceptCompleted(listener: Int(completion.userData.slot), result: completion.result)
        case .tick: tickCompleted()
        case .control: controlCompleted()
        case .connect, .connectTimeout, .recv, .send: tunnelCompleted(kind, completion)
        case .cancel, .close, .shutdown: break  // posted only on failure, and there is nothing left to undo
        }
    }

    private mutating func tunnelCompleted(_ kind: OperationKind, _ completion: Completion) {
        let slot = completion.userData.slot
        guard table.isLive(slot, generation: completion.userData.generation) else {
            // Cannot happen while every operation is counted, but a buffer must never leak.
            if let buffer = completion.bufferID { buffers.recycle(buffer) }
            counters.add(1, .staleCompletions)
            return
        }
        let connection = table[slot]
        connection.pointee.lastActive = wheel.now
        let direction: Direction = completion.userData.direction == 0 ? .upstream : .downstream
        switch kind {
        case .connect:
            handle(slot, .connectCompleted(completion.result))
        case .connectTimeout:
            handle(slot, .connectTimeoutCompleted)
        case .recv:
            handle(slot, .received(
                direction, result: completion.result, buffer: completion.bufferID, moreData: completion.socketHasMoreData))
        default:
            if completion.result > 0 { countBytes(Int(completion.result), direction, connection) }
            handle(slot, .sent(direction, result: completion.result))
        }
    }

    private func countBytes(_ bytes: Int, _ direction: Direction, _ connection: UnsafeMutablePointer<Connection>) {
        let backend = Int(connection.pointee.backend)
        guard backend >= 0 else { return }
        let shard = shards[listeners[Int(connection.pointee.listener)].socket.pool]
        if direction == .upstream {
            shard.add(bytes, to: .bytesToBackend, backend: backend)
            counters.add(bytes, .bytesUpstream)
        } else {
            shard.add(bytes, to: .bytesToClient, backend: backend)
            counters.add(bytes, .bytesDownstream)
        }
    }

    /// Feeds one event to a tunnel and carries out what it decides.
    private mutating func handle(_ slot: UInt32, _ event: TunnelEvent) {
        var actions = TunnelActions()
        table[slot].pointee.tunnel.handle(event, into: &actions)
        for index in 0..<actions.count { perform(actions[index], slot) }
    }

    private mutating func perform(_ action: TunnelAction, _ slot: UInt32) {
        let connection = table[slot]
        switch action {
        case .connect:
            startConnect(slot)
        case .connected:
            break
        case .connectFailed(let error):
            connectFailed(slot, error: error)
        case .closeBackend:
            ring.close(connection.pointee.backendFD, userData: UserData(.close, slot: slot))
            connection.pointee.backendFD = -1
            releaseBackend(connection)
        case .recv(let direction, let pollFirst):
            ring.recv(
                from: connection.pointee.fd(direction.source), bufferGroup: buffers.group, pollFirst: pollFirst,
                userData: userData(.recv, slot, direction))
        case .send(let direction, let buffer, let offset, let length):
            ring.send(
                to: connection.pointee.fd(direction.destination), bytes: buffers.bytes(of: buffer) + Int(offset),
                length: length, userData: userData(.send, slot, direction))
        case .recycle(let buffer):
            buffers.recycle(buffer)
        case .shutdownWrite(let direction):
            // A plain syscall: it only queues a FIN, and io_uring would hand it to a worker thread.
            _ = Glibc.shutdown(connection.pointee.fd(direction.destination), Int32(SHUT_WR))
        case .waitForBuffers:
            starved.insert(slot, in: table)
            counters.add(1, .bufferRingEmpty)
        case .cancel(let side):
            ring.cancelAll(on: connection.pointee.fd(side), userData: UserData(.cancel, slot: slot))
        case .close(let abortive):
            closeSocket(connection.pointee.clientFD, abortive: abortive, slot)
            if connection.pointee.backendFD >= 0 { closeSocket(connection.pointee.backendFD, abortive: abortive, slot) }
        case .release:
            wheel.remove(slot, in: table)
            starved.remove(slot, in: table)
            releaseBackend(connection)
            table.free(slot)
            counters.add(1, .closed)
        }
    }

    @inline(__always)
    private func userData(_ kind: OperationKind, _ slot: UInt32, _ direction: Direction) -> UserData {
        UserData(kind, slot: slot, generation: table[slot].pointee.generation, direction: direction.rawValue)
    }

    private mutating func closeSocket(_ fd: Int32, abortive: Bool, _ slot: UInt32) {
        if abortive { Socket.setAbortiveClose(fd) }
        ring.close(fd, userData: UserData(.close, slot: slot))
    }

    /// Re-arms the receives that found the buffer ring empty, now that buffers came back.
    private mutating func wakeStarved() {
        while let slot = starved.popFirst(in: table) {
            handle(slot, .buffersAvailable(.upstream))
            handle(slot, .buffersAvailable(.downstream))
        }
    }

    // MARK: - Backends

    private mutating func startConnect(_ slot: UInt32) {
        let connection = table[slot]
        let poolIndex = listeners[Int(connection.pointee.listener)].socket.pool
        let pool = pools[poolIndex]
        guard let backend = balancer.pick(from: pool, excluding: connection.pointee.tried, random: &random) else {
            counters.add(1, .noBackend)
            let listener = listeners[Int(connection.pointee.listener)].socket.name
            logs.noBackend.log(logger, .warning, now: wheel.now, "no backend left to try; closing client",
                               metadata: ["listener": "\(listener)", "tried": "\(connection.pointee.tried.count)"])
            return handle(slot, .connectUnavailable)
        }
        let fd = Socket.openStream(family: pool.family(of: backend))
        guard fd >= 0 else {
            counters.add(1, .backendSocketErrors)
            logs.backendSocket.log(logger, .warning, now: wheel.now, "cannot open a socket to a backend; closing client",
                                   metadata: ["error": "\(Self.describe(errno: -fd))"])
            return handle(slot, .connectUnavailable)
        }
        connection.pointee.backendFD = fd
        connection.pointee.backend = Int32(backend)
        connection.pointee.tried.insert(backend)
        shards[poolIndex].add(1, to: .active, backend: backend)
        shards[poolIndex].add(1, to: .total, backend: backend)
        let generation = connection.pointee.generation
        ring.connect(
            fd, to: pool.sockaddr(of: backend), length: pool.addressLength(of: backend), timeout: connectTimeout,
            userData: UserData(.connect, slot: slot, generation: generation),
            timeoutUserData: UserData(.connectTimeout, slot: slot, generation: generation))
        handle(slot, .connectSubmitted)
    }

    private mutating func connectFailed(_ slot: UInt32, error: Int32) {
        let connection = table[slot]
        let backend = Int(connection.pointee.backend)
        let poolIndex = listeners[Int(connection.pointee.listener)].socket.pool
        shards[poolIndex].add(1, to: .connectFailures, backend: backend)
        counters.add(1, .connectFailures)
        let reason = error == -ECANCELED ? "timed out" : Self.describe(errno: -error)
        let name = pools[poolIndex].backends[backend].name
        if connection.pointee.tunnel.phase == .connecting {
            logger.debug("connect failed; trying another backend", metadata: ["backend": "\(name)", "error": "\(reason)"])
        } else {
            logs.connectGaveUp.log(logger, .warning, now: wheel.now, "no backend reachable; closing client",
                                   metadata: ["last_backend": "\(name)", "error": "\(reason)",
                                              "attempts": "\(connection.pointee.tried.count)"])
        }
    }

    private func releaseBackend(_ connection: UnsafeMutablePointer<Connection>) {
        let backend = Int(connection.pointee.backend)
        guard backend >= 0 else { return }
        shards[listeners[Int(connection.pointee.listener)].socket.pool].add(-1, to: .active, backend: backend)
        connection.pointee.backend = -1
    }

    // MARK: - Accepting

    /// Keeps accepts in flight on every listener, never more than there are free connection slots: at the
    /// limit nothing is accepted, and new clients wait in the kernel's backlog instead of being dropped.
    /// (Multishot accept cannot be paused this exactly: the kernel drains the whole backlog in one go.)
    private mutating func armAccepts() {
        guard !terminating, !acceptPaused else { return }
        var room = table.capacity - table.active - pendingAccepts
        for index in listeners.indices {
            while room > 0 && listeners[index].pendingAccepts < Self.acceptDepth {
                ring.accept(listener: listeners[index].socket.fd, userData: UserData(.accept, slot: UInt32(index)))
                listeners[index].pendingAccepts += 1
                pendingAccepts += 1
                room -= 1
            }
        }
    }

    private mutating func acceptCompleted(listener: Int, result: Int32) {
        listeners[listener].pendingAccepts -= 1
        pendingAccepts -= 1
        guard result >= 0 else { return acceptFailed(errno: -result) }
        guard !terminating, let slot = table.open(client: result, listener: UInt16(listener), retries: retries, now: wheel.now) else {
            Glibc.close(result)
            return
        }
        wheel.schedule(slot, in: table)
        counters.add(1, .accepted)
        handle(slot, .start)
    }

    private mutating func acceptFailed(errno error: Int32) {
        switch error {
        case ECANCELED:
            return
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            // Out of descriptors or memory: stop accepting until the next tick; the backlog holds clients.
            counters.add(1, .acceptErrors)
            acceptPaused = true
            logs.acceptFailure.log(logger, .warning, now: wheel.now, "accept failed; pausing accepts for \(Self.tickInterval)",
                                   metadata: ["error": "\(Self.describe(errno: error))",
                                              "hint": "raise the open-files limit (ulimit -n, LimitNOFILE=) or lower --max-connections"])
        default:
            // The client went away before we accepted it (ECONNABORTED) and the like: nothing to do.
            counters.add(1, .acceptErrors)
            logger.debug("accept failed", metadata: ["error": "\(Self.describe(errno: error))"])
        }
    }

    // MARK: - Timer and control

    private mutating func armTick() {
        ring.timeout(tickTimeout, userData: UserData(.tick, slot: 0))
    }

    private mutating func tickCompleted() {
        armTick()
        acceptPaused = false
        wheel.advance()
        // Each expired slot is handled before the next is looked at, and handling one touches no other.
        while let slot = wheel.popExpired(in: table) {
            counters.add(1, .idleTimeouts)
            handle(slot, .idleTimeout)
        }
    }

    private mutating func armControl() {
        ring.read(control.eventFD, into: controlBuffer, length: 8, userData: UserData(.control, slot: 0))
    }

    private mutating func controlCompleted() {
        switch control.current {
        case .run:
            armControl()
        case .terminate:
            guard !terminating else { return }
            terminating = true
            for listener in listeners where listener.pendingAccepts > 0 {
                ring.cancelAll(on: listener.socket.fd, userData: UserData(.cancel, slot: 0))
            }
            for slot in 0..<table.highWater where table[slot].pointee.tunnel.phase != .closed {
                handle(slot, .terminate)
            }
        }
    }

    private func publishCounters(completions: Int) {
        counters.set(table.active, .active)
        counters.add(completions, .completions)
        counters.set(Int(ring.submissionCount), .submissions)
        counters.set(Int(ring.enterCount), .kernelEnters)
    }

    static func timespec(_ duration: Duration) -> __kernel_timespec {
        let (seconds, attoseconds) = duration.components
        return __kernel_timespec(tv_sec: seconds, tv_nsec: attoseconds / 1_000_000_000)
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
}

/// The symbolic name of the errno values the data plane reports.
func errnoName(_ value: Int32) -> String {
    switch value {
    case ECONNREFUSED: "ECONNREFUSED"
    case ECONNRESET: "ECONNRESET"
    case ETIMEDOUT: "ETIMEDOUT"
    case EHOSTUNREACH: "EHOSTUNREACH"
    case ENETUNREACH: "ENETUNREACH"
    case EADDRNOTAVAIL: "EADDRNOTAVAIL"
    case EMFILE: "EMFILE"
    case ENFILE: "ENFILE"
    case ENOBUFS: "ENOBUFS"
    case ENOMEM: "ENOMEM"
    case EPIPE: "EPIPE"
    case ECANCELED: "ECANCELED"
    case ECONNABORTED: "ECONNABORTED"
    default: "errno \(value)"
    }
}
