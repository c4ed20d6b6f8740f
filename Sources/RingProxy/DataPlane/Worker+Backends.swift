import CURing
import Glibc
import Logging

/// Backends: picking one for a client (the listener's strategy over the shared load table), connecting,
/// and reporting outcomes to the backend's health.
extension Worker {
    mutating func startConnect(_ slot: UInt32) {
        let connection = table[slot]
        let listenerIndex = Int(connection.pointee.listener)
        guard listenerIndex < plan.listeners.count else {
            // A reload removed this client's listener while its connect was being retried.
            return handle(slot, .connectUnavailable)
        }
        let (pool, route) = routedPool(slot, listenerIndex: listenerIndex)
        var candidates = Candidates(
            pool: pool, table: backendTable, tried: connection.pointee.tried, clientKey: connection.pointee.clientKey)
        let chosen = route < 0
            ? strategies[listenerIndex].select(&candidates, random: &random)
            : routeStrategies[listenerIndex][route].select(&candidates, random: &random)
        guard let member = chosen else {
            counters.add(1, .noBackend)
            logs.noBackend.log(logger, .warning, now: wheel.now, "no backend available; closing client",
                               metadata: ["listener": "\(pool.name)", "tried": "\(connection.pointee.tried.count)",
                                          "backends": "\(pool.count)"])
            return handle(slot, .connectUnavailable)
        }
        let backend = pool.ids[member]
        connection.pointee.backend = backend
        connection.pointee.isTrial = candidates.isTrial
        connection.pointee.holdsReservation = pool.limits[member] > 0
        let fd = Socket.openStream(family: pool.family(of: member))
        guard fd >= 0 else {
            giveBackClaim(connection)
            counters.add(1, .backendSocketErrors)
            if fd == -EMFILE || fd == -ENFILE {
                // Out of descriptors: the client waits (it holds no buffer) until connections close.
                awaitingDescriptor.insert(slot, in: table)
                acceptPaused = true
                logs.backendSocket.log(logger, .warning, now: wheel.now, "out of file descriptors: clients wait for a backend socket",
                                       metadata: ["error": "\(Self.describe(errno: -fd))",
                                                  "hint": "raise the open-files limit (ulimit -n, LimitNOFILE=) or lower --max-connections"])
                return
            }
            logs.backendSocket.log(logger, .warning, now: wheel.now, "cannot open a socket to a backend; closing client",
                                   metadata: ["error": "\(Self.describe(errno: -fd))"])
            return handle(slot, .connectUnavailable)
        }
        connection.pointee.backendFD = fd
        connection.pointee.tried.insert(backend)
        shard.add(1, to: .active, backend: backend)
        shard.add(1, to: .total, backend: backend)
        let generation = connection.pointee.generation
        let length = pool.addressLength(of: member)
        ring.connect(
            fd, to: table.holdAddress(pool.sockaddr(of: member), length: length, for: slot), length: length, timeout: connectTimeout,
            userData: UserData(.connect, slot: slot, generation: generation),
            timeoutUserData: UserData(.connectTimeout, slot: slot, generation: generation))
        handle(slot, .connectSubmitted)
    }

    /// Tries again the connects that waited for a descriptor, now that some were closed.
    mutating func retryAwaitingDescriptor() {
        descriptorsFreed = false
        var waiting = awaitingDescriptor
        awaitingDescriptor = SlotList(\.waitLinks, .awaitingDescriptor)
        while let slot = waiting.popFirst(in: table) { startConnect(slot) }
    }

    mutating func connected(_ slot: UInt32) {
        let connection = table[slot]
        let health = backendTable.health(of: connection.pointee.backend)
        if let change = health.recordConnectSuccess(wasTrial: connection.pointee.isTrial, now: monotonicMilliseconds()) {
            logTransition(change, backend: connection.pointee.backend)
        }
        connection.pointee.isTrial = false
    }

    mutating func connectFailed(_ slot: UInt32, error: Int32) {
        let connection = table[slot]
        let backend = connection.pointee.backend
        shard.add(1, to: .connectFailures, backend: backend)
        counters.add(1, .connectFailures)
        let health = backendTable.health(of: backend)
        if let change = health.recordConnectFailure(
            now: monotonicMilliseconds(), wasTrial: connection.pointee.isTrial, policy: plan.config.health) {
            logTransition(change, backend: backend)
        }
        connection.pointee.isTrial = false
        let reason = error == -ECANCELED ? "timed out" : Self.describe(errno: -error)
        let name = backendName(backend)
        if connection.pointee.tunnel.phase == .connecting {
            logger.debug("connect failed; trying another backend", metadata: ["backend": "\(name)", "error": "\(reason)"])
        } else {
            logs.connectGaveUp.log(logger, .warning, now: wheel.now, "no backend reachable; closing client",
                                   metadata: ["last_backend": "\(name)", "error": "\(reason)",
                                              "attempts": "\(connection.pointee.tried.count)"])
        }
    }

    /// Gives back what the connection holds of its backend once its connect was submitted: its place in
    /// the load count, its `max_connections` slot, an undecided trial.
    func releaseBackend(_ connection: UnsafeMutablePointer<Connection>) {
        guard connection.pointee.hasBackend else { return }
        shard.add(-1, to: .active, backend: connection.pointee.backend)
        giveBackClaim(connection)
    }

    /// Gives back what `Candidates.claim` took for the connection.
    func giveBackClaim(_ connection: UnsafeMutablePointer<Connection>) {
        let health = backendTable.health(of: connection.pointee.backend)
        if connection.pointee.holdsReservation {
            health.unreserve()
            connection.pointee.holdsReservation = false
        }
        if connection.pointee.isTrial {
            health.abandonTrial(now: monotonicMilliseconds())
            connection.pointee.isTrial = false
        }
        connection.pointee.backend = BackendID(Int32(-1))
    }

    private func logTransition(_ change: HealthTransition, backend: BackendID) {
        logger.info("backend \(change.to)", metadata: ["backend": "\(backendName(backend))", "reason": "\(change.reason)"])
    }

    /// The name of a backend of the current plan, for logs.
    func backendName(_ backend: BackendID) -> String {
        for listener in plan.listeners {
            for (pool, prefix) in listener.pools {
                if let member = pool.index(of: backend) { return "\(prefix)/\(pool.members[member].name)" }
            }
        }
        return "backend \(backend)"
    }
}
