import CURing
import Glibc
import Logging

/// The routing stage before connect (issue 12), on listeners that route only: plain listeners never come
/// here. At accept, the source rules and per-client limits (on the trusted address: for an `accept_proxy`
/// source, once its PROXY header has named the client). Then, where the listener prereads, the client's first
/// bytes are received into held memory (each receive buffer goes straight back to the ring, so a slow client
/// pins none), bounded by `preread_max`, by `preread_timeout` (checked by the tick) and by the worker's budget
/// for held and spilled bytes; the PROXY header is parsed and stripped, the ClientHello read, the route decided.
/// The tunnel then starts as on a plain listener, with the held bytes (after any PROXY header of ours) as the
/// preamble it sends before anything else.
extension Worker {
    // MARK: - Accept

    /// Admits a client of a listener that routes.
    mutating func admitRouted(client fd: Int32, listenerIndex: Int, routing: RoutingPlan) {
        guard let peer = Socket.peerAddress(of: fd) else {
            Socket.setAbortiveClose(fd)
            Glibc.close(fd)
            counters.add(1, .clientAddressUnknown)
            return
        }
        let settings = routing.settings
        let expectsHeader = settings.acceptProxy.contains(peer)
        let clientKey = stableHash(peer.addressBytes)
        var limitRow: Int32 = -1
        if !expectsHeader {
            // From any other source the client is whoever connected: its rules apply now, before a slot is taken.
            switch checkSource(peer, clientKey: clientKey, routing) {
            case .success(let row): limitRow = row
            case .failure(let rejection):
                rejected(rejection, client: peer, listenerIndex: listenerIndex)  // counted before the client can see it
                Socket.setAbortiveClose(fd)
                Glibc.close(fd)
                return
            }
        }
        guard let slot = table.open(
            client: fd, listener: UInt16(listenerIndex), tunnel: Tunnel(retries: plan.config.retries), now: wheel.now) else {
            if limitRow >= 0 { clientLimits.close(row: limitRow) }
            Glibc.close(fd)
            counters.add(1, .acceptOverflows)
            return
        }
        routes.open(slot)
        routes.setLimitRow(limitRow, of: slot)
        routes[slot].expectsHeader = expectsHeader
        table.keepClientAddress(peer, for: slot)
        table[slot].clientKey = clientKey
        table.setOpenedAt(monotonicMilliseconds(), for: slot)
        counters.add(1, .accepted)
        // Only what needs the client's bytes waits for them: a server-speaks-first protocol must not.
        guard expectsHeader || !settings.routes.isEmpty else { return startRouted(slot, pool: RouteEntry.defaultPool, proxied: nil) }
        routes[slot].deadline = wheel.now &+ routing.prereadTicks
        routes.listReading(slot)
        armPreread(slot)
    }

    /// Source rules, then per-client limits; on success the limits row the client holds a connection of
    /// (-1: none).
    private func checkSource(_ client: SocketAddress, clientKey: UInt64, _ routing: RoutingPlan) -> Result<Int32, Rejection> {
        let settings = routing.settings
        guard settings.admits(client) else { return .failure(.denied) }
        guard settings.maxConnectionsPerClient > 0 || settings.newConnectionsPerClient > 0 else { return .success(-1) }
        let row = ClientLimits.row(listener: routing.listenerID, clientKey: clientKey)
        if settings.newConnectionsPerClient > 0,
           !clientLimits.takeToken(row: row, rate: settings.newConnectionsPerClient, burst: settings.newConnectionsBurst) {
            return .failure(.clientRate)
        }
        guard settings.maxConnectionsPerClient > 0 else { return .success(-1) }
        return clientLimits.open(row: row, limit: settings.maxConnectionsPerClient) ? .success(row) : .failure(.clientConnections)
    }

    // MARK: - Reading the first bytes

    /// Receives at most what `preread_max` (and a PROXY header still due) leave room for: the held bytes, and
    /// so the preamble, stay within `preread_max` plus the longest PROXY header.
    private mutating func armPreread(_ slot: UInt32) {
        let entry = routes[slot]
        let listenerIndex = Int(table[slot].listener)
        let limit = listenerIndex < plan.listeners.count ? plan.listeners[listenerIndex].routing?.settings.prereadMax ?? 0 : 0
        let room = limit + Int(entry.stripped) + (entry.expectsHeader ? ProxyHeaderReader.maximumLength : 0)
            - Int(entry.heldBytes)
        guard room > 0 else { return decideOrRead(slot) }
        routes[slot].phase = .reading
        ring.recv(from: table[slot].clientFD, bufferGroup: buffers.group, pollFirst: true, maximumLength: UInt32(room),
                  userData: UserData(.preread, slot: slot, generation: table[slot].generation))
    }

    mutating func prereadCompleted(_ completion: Completion) {
        let slot = completion.userData.slot
        if completion.bufferID != nil { buffers.taken() }
        guard table.isLive(slot, generation: completion.userData.generation), routes.isInUse else {
            if let buffer = completion.bufferID { giveBack(buffer) }
            counters.add(1, .staleCompletions)
            return
        }
        let result = completion.result
        var grown = 0
        if result > 0, let buffer = completion.bufferID {
            let budgetLeft = spillBudget - counters[.spilledBytes] - counters[.heldBytes]
            if routes[slot].phase == .reading && Int(result) + RouteTable.headroom <= budgetLeft {
                grown = routes.hold(slot, from: buffers, buffer: buffer, count: Int(result))
            } else if routes[slot].phase == .reading {
                routes[slot].phase = .aborting
                routes[slot].abortReason = .prereadBudget
            }
        }
        if let buffer = completion.bufferID { giveBack(buffer) }
        counters.add(grown, .heldBytes)
        if routes[slot].phase == .aborting { return close(slot, routes[slot].abortReason) }
        switch result {
        case 0:
            routes[slot].ended = true
        case -ENOBUFS:
            routes[slot].phase = .waitingForBuffers  // the tick arms it again
            counters.add(1, .bufferRingEmpty)
            return
        case -EINTR, -EAGAIN:
            return armPreread(slot)
        case ..<0:
            return close(slot, nil)  // the client reset: nothing to count but its close
        default:
            break
        }
        decideOrRead(slot)
    }

    /// Parses what is held: the PROXY header first where one is due, then the ClientHello where routes need it.
    private mutating func decideOrRead(_ slot: UInt32) {
        let listenerIndex = Int(table[slot].listener)
        guard listenerIndex < plan.listeners.count, let routing = plan.listeners[listenerIndex].routing else {
            return close(slot, nil)  // a reload removed the listener, or its routing: close as a stop would
        }
        var proxied: ReceivedProxyHeader?
        if routes[slot].expectsHeader {
            switch ProxyHeaderReader.parse(routes.received(slot)) {
            case .needMore:
                if routes[slot].ended || Int(routes[slot].heldBytes) >= ProxyHeaderReader.maximumLength {
                    return close(slot, .proxyHeader)
                }
                return armPreread(slot)
            case .invalid:
                return close(slot, .proxyHeader)
            case .done(let header, let consumed):
                routes[slot].expectsHeader = false
                routes[slot].stripped = UInt32(consumed)
                proxied = header
                // LOCAL (a balancer's own check), UNSPEC, UNIX: the connection's own address stays the client's.
                if let client = header.source ?? table.clientAddress(of: slot), !trustClient(client, slot: slot, routing) { return }
            }
        }
        var hello: ClientHello?
        if !routing.settings.routes.isEmpty {
            let payload = routes.payload(slot)
            switch ClientHelloReader.parse(payload) {
            case .needMore:
                if !routes[slot].ended && payload.count < routing.settings.prereadMax { return armPreread(slot) }
            case .invalid:
                break  // not TLS, or not a ClientHello we can read: no server name, the default route
            case .done(let parsed, _):
                hello = parsed
            }
        }
        guard let pool = routing.pool(for: hello) else {
            logs.noRoute.log(logger, .warning, now: wheel.now, "no route for the client's server name and no default_pool; closing client",
                             metadata: ["listener": "\(plan.listeners[listenerIndex].name)", "server_name": "\(hello?.serverName ?? "-")"])
            return close(slot, .noRoute)
        }
        startRouted(slot, pool: pool, proxied: proxied)
    }

    /// The client named by a trusted PROXY header becomes the connection's client: for the rules, the limits,
    /// balancing, the access log and our own PROXY header. False when its rules closed the slot.
    private mutating func trustClient(_ client: SocketAddress, slot: UInt32, _ routing: RoutingPlan) -> Bool {
        let clientKey = stableHash(client.addressBytes)
        table.keepClientAddress(client, for: slot)
        table[slot].clientKey = clientKey
        switch checkSource(client, clientKey: clientKey, routing) {
        case .success(let row):
            routes.setLimitRow(row, of: slot)
            return true
        case .failure(let rejection):
            close(slot, rejection)
            return false
        }
    }

    // MARK: - Decided

    /// Starts the tunnel towards `pool` with the held bytes (after our PROXY header, if the listener sends one)
    /// as its preamble.
    private mutating func startRouted(_ slot: UInt32, pool: Int16, proxied: ReceivedProxyHeader?) {
        routes.unlistReading(slot)
        routes[slot].phase = .idle
        routes.setPool(pool, of: slot)
        let listener = plan.listeners[Int(table[slot].listener)]
        let holds = routes.held.holds(slot)
        var headerLength = 0
        let payloadLength = Int(routes[slot].heldBytes - routes[slot].stripped)
        if let version = listener.sendProxy {
            let fd = table[slot].clientFD
            let source = table.clientAddress(of: slot) ?? Socket.peerAddress(of: fd)
            let destination = proxied?.destination.flatMap { $0.family == source?.family ? $0 : nil } ?? Socket.localAddress(of: fd)
            guard let source, let destination else { return close(slot, nil) }
            let header = version.header(source: source, destination: destination)
            headerLength = header.count
            if holds {
                let offset = RouteTable.headroom + Int(routes[slot].stripped) - headerLength
                routes.held.copy(header, to: offset, in: slot)
                routes[slot].preambleOffset = UInt32(offset)
            } else {
                table.keepHeader(header, for: slot)
            }
        } else {
            routes[slot].preambleOffset = UInt32(RouteTable.headroom) + routes[slot].stripped
        }
        let preamble = headerLength + (holds ? payloadLength : 0)
        if holds && payloadLength == 0 && headerLength == 0 {
            counters.add(-routes.freeHeld(slot), .heldBytes)  // only a PROXY header was held: nothing to send
        }
        table[slot].tunnel = Tunnel(retries: plan.config.retries, proxyHeaderLength: preamble)
        table[slot].lastActive = wheel.now
        wheel.schedule(slot, in: table)
        counters.add(1, .routed)
        // A client that sent EOF during the stage: the tunnel's receive on it reads the EOF again.
        handle(slot, .start)
    }

    /// The preamble went out (or the tunnel is closing): its memory goes back, and the client's bytes in it
    /// are counted as bytes carried upstream.
    mutating func preambleSent(_ slot: UInt32) {
        let tunnel = table[slot].tunnel
        guard tunnel.headerSent >= tunnel.headerLength || tunnel.phase != .established else { return }
        if routes.held.holds(slot) && tunnel.headerSent >= tunnel.headerLength {
            countBytes(Int(routes[slot].heldBytes - routes[slot].stripped), .upstream, slot)
        }
        counters.add(-routes.freeHeld(slot), .heldBytes)
    }

    // MARK: - Closing before connect

    /// Closes a slot the stage still owns, counting `reason` (nil: the client went away, or a stop).
    private mutating func close(_ slot: UInt32, _ reason: Rejection?) {
        if let reason { rejected(reason, client: table.clientAddress(of: slot), listenerIndex: Int(table[slot].listener)) }
        routes.unlistReading(slot)
        routes[slot].phase = .idle
        let fd = table[slot].clientFD
        if reason != nil && reason != .noRoute && reason != .prereadTimeout && reason != .proxyHeaderTimeout {
            Socket.setAbortiveClose(fd)
        }
        ring.close(fd, userData: UserData(.close, slot: slot))
        descriptorsFreed = true
        table[slot].clientFD = -1
        // The tunnel never started: stopping it marks it closed at once (every scan of the table skips closed
        // slots); what it asks for, the stage has done.
        var done = TunnelActions()
        table.handle(.terminate, at: slot, links: bufferLinks, into: &done)
        release(slot)
    }

    /// Counts and logs (access log) a client the stage closed.
    private mutating func rejected(_ reason: Rejection, client: SocketAddress?, listenerIndex: Int) {
        counters.add(1, reason.counter)
        guard plan.config.accessLog else { return }
        let listener = listenerIndex < plan.listeners.count ? plan.listeners[listenerIndex].name : "-"
        logger.info("connection closed", metadata: [
            "client": "\(client.map { "\($0)" } ?? "-")", "backend": "-", "listener": "\(listener)",
            "bytes_up": "0", "bytes_down": "0", "duration_ms": "0", "reason": "\(reason)",
        ])
    }

    /// Stops the stage's receive on `slot`; the slot closes when its completion arrives.
    mutating func abortPreread(_ slot: UInt32, _ reason: Rejection?) {
        switch routes[slot].phase {
        case .reading:
            routes[slot].phase = .aborting
            routes[slot].abortReason = reason
            ring.cancel(UserData(.preread, slot: slot, generation: table[slot].generation), userData: UserData(.cancel, slot: slot))
        case .waitingForBuffers:
            close(slot, reason)
        case .idle, .aborting:
            break
        }
    }

    /// A slot the stage owns (reading, or waiting to read), which a stop must close through `abortPreread`.
    func isPrereading(_ slot: UInt32) -> Bool {
        routes.isInUse && routes[slot].isListed
    }

    /// From the tick: closes the slots past their `preread_timeout`, arms again the receives that found the
    /// ring empty.
    mutating func checkPrereads() {
        guard routes.isInUse, routes.readingHead != SlotLinks.none else { return }
        for slot in routes.readingSlots() {
            if Int32(bitPattern: wheel.now &- routes[slot].deadline) >= 0 {
                abortPreread(slot, routes[slot].timeoutReason)
            } else if routes[slot].phase == .waitingForBuffers {
                armPreread(slot)
            }
        }
    }

    /// From `release`: what the stage held for the slot goes back (its bytes, its per-client connection).
    mutating func routingReleased(_ slot: UInt32) {
        routes.unlistReading(slot)
        if routes.held.holds(slot) { counters.add(-routes.freeHeld(slot), .heldBytes) }
        if routes[slot].limitRow >= 0 {
            clientLimits.close(row: routes[slot].limitRow)
            routes.setLimitRow(-1, of: slot)
        }
        routes[slot].phase = .idle
        routes.setPool(RouteEntry.defaultPool, of: slot)
    }

    // MARK: - Plans

    /// Puts the routing table in use when a plan first has a listener that routes; makes the strategies of
    /// its pools.
    mutating func adoptRouting(_ newPlan: RuntimePlan, previous: RuntimePlan?) {
        routeStrategies = newPlan.listeners.map { listener in
            listener.routing?.pools.map { $0.algorithm.makeStrategy(for: $0) } ?? []
        }
        if !routes.isInUse && newPlan.listeners.contains(where: { $0.routing != nil }) {
            routes.isInUse = true
            for slot in 0..<table.highWater { routes.open(slot) }
        }
        guard let previous, routes.isInUse else { return }
        // A decided slot names its pool by index in its listener's routing: carry it over by the pool's name
        // (a client still connecting retries in the pool of that name, or in the listener's default).
        // `listener` of each slot is already an index into `newPlan`.
        for slot in 0..<table.highWater where table[slot].tunnel.phase != .closed {
            let pool = routes[slot].pool
            let listenerIndex = Int(table[slot].listener)
            guard pool != RouteEntry.defaultPool, listenerIndex < newPlan.listeners.count else { continue }
            let listener = newPlan.listeners[listenerIndex]
            let oldPools = previous.listeners.first { $0.id == listener.id }?.routing?.pools ?? []
            let name = Int(pool) < oldPools.count ? oldPools[Int(pool)].name : nil
            let newIndex = listener.routing?.pools.firstIndex { $0.name == name }
            routes.setPool(newIndex.map(Int16.init) ?? RouteEntry.defaultPool, of: slot)
        }
    }

    /// The pool a slot's connect draws from, and its strategy's place: `route` is -1 for the listener's own.
    @inline(__always)
    func routedPool(_ slot: UInt32, listenerIndex: Int) -> (pool: BackendPool, route: Int) {
        let listener = plan.listeners[listenerIndex]
        guard routes.isInUse, let routing = listener.routing else { return (listener.pool, -1) }
        let pool = Int(routes[slot].pool)
        return pool >= 0 && pool < routing.pools.count ? (routing.pools[pool], pool) : (listener.pool, -1)
    }
}
