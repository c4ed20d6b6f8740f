import CURing
import Glibc
import Logging

/// Backends: picking one for a client (the listener's strategy over the shared load table), connecting,
/// and reporting outcomes to the backend's health.
extension Worker {
    mutating func startConnect(_ slot: UInt32) {
        let listenerIndex = Int(table[slot].listener)
        guard listenerIndex < plan.listeners.count else {
            // A reload removed this client's listener while its connect was being retried.
            return handle(slot, .connectUnavailable)
        }
        let (pool, route) = routedPool(slot, listenerIndex: listenerIndex)
        var candidates = Candidates(
            pool: pool, table: backendTable, tried: table[slot].tried, clientKey: table[slot].clientKey)
        let chosen = route < 0
            ? strategies[listenerIndex].select(&candidates, random: &random)
            : routeStrategies[listenerIndex][route].select(&candidates, random: &random)
        guard let member = chosen else {
            counters.add(1, .noBackend)
            logs.noBackend.log(logger, .warning, now: wheel.now, "no backend available; closing client",
                               metadata: ["listener": "\(pool.name)", "tried": "\(table[slot].tried.count)",
                                          "backends": "\(pool.count)"])
            return handle(slot, .connectUnavailable)
        }
        let backend = pool.ids[member]
        table[slot].backend = backend
        table[slot].isTrial = candidates.isTrial
        table[slot].holdsReservation = pool.limits[member] > 0
        let fd = Socket.openStream(family: pool.family(of: member))
        guard fd >= 0 else {
            giveBackClaim(slot)
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
        table[slot].backendFD = fd
        // Copied out and back: a mutating call through the table's subscript crashes Swift 6.3's
        // ThreadSanitizer instrumentation (see `ConnectionTable.handle`).
        var tried = table[slot].tried
        tried.insert(backend)
        table[slot].tried = tried
        shard.add(1, to: .active, backend: backend)
        shard.add(1, to: .total, backend: backend)
        let generation = table[slot].generation
        ring.connect(
            fd, to: table.rooms, at: table.holdAddress(pool.addresses[member], for: slot), length: pool.addresses[member].length,
            timeout: connectTimeout,
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
        let health = backendTable.health(of: table[slot].backend)
        if let change = health.recordConnectSuccess(wasTrial: table[slot].isTrial, now: monotonicMilliseconds()) {
            logTransition(change, backend: table[slot].backend)
        }
        table[slot].isTrial = false
    }

    mutating func connectFailed(_ slot: UInt32, error: Int32) {
        let backend = table[slot].backend
        shard.add(1, to: .connectFailures, backend: backend)
        counters.add(1, .connectFailures)
        let health = backendTable.health(of: backend)
        if let change = health.recordConnectFailure(
            now: monotonicMilliseconds(), wasTrial: table[slot].isTrial, policy: plan.config.health) {
            logTransition(change, backend: backend)
        }
        table[slot].isTrial = false
        let reason = error == -ECANCELED ? "timed out" : Self.describe(errno: -error)
        let name = backendName(backend)
        if table[slot].tunnel.phase == .connecting {
            logger.debug("connect failed; trying another backend", metadata: ["backend": "\(name)", "error": "\(reason)"])
        } else {
            logs.connectGaveUp.log(logger, .warning, now: wheel.now, "no backend reachable; closing client",
                                   metadata: ["last_backend": "\(name)", "error": "\(reason)",
                                              "attempts": "\(table[slot].tried.count)"])
        }
    }

    /// Gives back what the connection holds of its backend once its connect was submitted: its place in
    /// the load count, its `max_connections` slot, an undecided trial.
    func releaseBackend(_ slot: UInt32) {
        guard table[slot].hasBackend else { return }
        shard.add(-1, to: .active, backend: table[slot].backend)
        giveBackClaim(slot)
    }

    /// Gives back what `Candidates.claim` took for the connection.
    func giveBackClaim(_ slot: UInt32) {
        let health = backendTable.health(of: table[slot].backend)
        if table[slot].holdsReservation {
            health.unreserve()
            table[slot].holdsReservation = false
        }
        if table[slot].isTrial {
            health.abandonTrial(now: monotonicMilliseconds())
            table[slot].isTrial = false
        }
        table[slot].backend = BackendID(Int32(-1))
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
