import CURing
import Glibc
import Logging
import Synchronization

/// A running RingProxy, and its control plane: N pinned workers, each with its own ring and its own
/// `SO_REUSEPORT` socket per listener, sharing the backend table; reloads, drains and stops reach them
/// through their control channels.
public final class Proxy: @unchecked Sendable {
    /// Backends the table has rows for over the life of the process (reloads that keep a backend reuse its row).
    public static let backendCapacity = 16384

    public let table: BackendTable
    public let counters: [WorkerCounters]
    /// Per-client limits of routing listeners, shared by the workers (mapped, touched only when used).
    let clientLimits = ClientLimits()
    public let startedAt = monotonicMilliseconds()
    private let logger: Logger
    private let registry: BackendRegistry
    private let current: Locked<RuntimePlan?> = Locked(nil)
    private let stats = Locked(ProcessStats())
    private var channels: [ControlChannel] = []
    private var threads: [pthread_t] = []
    private let running = ThreadCount()
    private var nextListenerID: UInt32 = 1
    private var checker: HealthChecker?
    /// Behind a lock of its own: the admin endpoint reads its stats while a reload may start it.
    private let discovery = Locked<Discovery?>(nil)
    /// Held while a plan is made and published: reloads, discovery's changes and runtime control take turns.
    private let publishing = Locked(())
    private let initialConfig: ProxyConfig
    /// Runtime overrides (state, weight) by pool and address; read and written only under `publishing`.
    private let overrides = BackendOverrides()

    public init(config: ProxyConfig, logger: Logger) {
        initialConfig = config
        self.logger = logger
        table = BackendTable(capacity: Self.backendCapacity, shards: config.threads)
        registry = BackendRegistry(table: table)
        counters = (0..<config.threads).map { _ in WorkerCounters() }
    }

    /// The plan the workers run (the newest one published).
    public var plan: RuntimePlan {
        guard let plan = current.withLock({ $0 }) else { preconditionFailure("the proxy has not started") }
        return plan
    }

    public var config: ProxyConfig { plan.config }

    /// The address each listener is bound to (port 0 in the config becomes the port the kernel chose).
    public var listenAddresses: [SocketAddress] { plan.listeners.map(\.address) }

    public var processStats: ProcessStats { stats.withLock { $0 } }

    /// Worker threads that have not exited yet.
    public var runningWorkers: Int { running.value.load(ordering: .acquiring) }

    // MARK: - Start

    /// Binds the listeners and starts the workers; returns once every worker is serving, or throws the
    /// first start-up problem (with every started worker stopped again).
    public func start() throws(StartupError) {
        if let problem = RingAvailability.check() { throw .ioUring(problem) }
        let config = initialConfig
        let capacity = connectionCapacity(config)
        let plan: RuntimePlan
        do { plan = try makePlan(config, generation: 1, previous: nil) } catch { throw .listen(error) }
        current.withLock { $0 = plan }
        let outcomes = Locked<[Result<String, RingError>?]>(Array(repeating: nil, count: config.threads))
        let latch = Latch(count: config.threads)
        let burst = Self.acceptBurst()
        for index in 0..<config.threads {
            let control: ControlChannel
            do { control = try ControlChannel(plan: plan) } catch {
                closeUnadopted(plan, from: index)
                for _ in index..<config.threads { latch.arrive() }
                latch.wait()
                stop()
                throw .worker(RingAvailability.explain(error))
            }
            let setup = WorkerSetup(
                index: index, plan: plan, table: table, counters: counters[index], control: control, logger: logger,
                acceptBurst: burst, connectionCapacity: Self.share(of: capacity, worker: index, of: config.threads),
                clientLimits: clientLimits)
            running.value.add(1, ordering: .relaxed)
            let started = WorkerThread.start(name: "ringproxy-w\(index)", cpu: config.pin ? config.workerCPUs[index] : nil) {
                [running] in
                defer { running.value.subtract(1, ordering: .releasing) }
                do throws(RingError) {
                    var worker = try Worker(setup)
                    outcomes.withLock { $0[index] = .success(worker.ringDescription) }
                    latch.arrive()
                    worker.run()
                    worker.stopTakingPlans()
                } catch {
                    for listener in setup.plan.listeners { Glibc.close(listener.sockets[setup.index]) }
                    outcomes.withLock { $0[index] = .failure(error) }
                    latch.arrive()
                }
            }
            switch started {
            case .success(let thread):
                threads.append(thread)
                channels.append(control)
            case .failure(let error):
                running.value.subtract(1, ordering: .relaxed)
                closeUnadopted(plan, from: index)
                for _ in index..<config.threads { latch.arrive() }
                latch.wait()
                stop()
                throw .worker(RingAvailability.explain(error))
            }
        }
        latch.wait()
        let results = outcomes.withLock { $0 }
        for case .failure(let error)? in results {
            stop()
            throw .worker(RingAvailability.explain(error, lockedBytesNeeded: config.buffersPerWorker * 16 + config.ringSize * 128))
        }
        startChecker(for: plan)
        publishing.withLock { _ in followNames(of: plan.config) }
        logStart(plan, ringSetup: results.compactMap { try? $0?.get() }.first ?? "unknown", capacity: capacity)
    }

    /// Connections the workers admit together: `max_connections`, and no more than the open-files limit
    /// allows. Each client takes two descriptors (its socket and its backend's), so a limit that is reached
    /// by accepting would leave accepted clients unable to reach a backend; capping admission keeps them
    /// waiting in the backlog instead (as HAProxy derives maxconn from `ulimit -n`). The admin endpoint's
    /// connections are reserved too: a scrape storm must not take the descriptors of admitted clients.
    private func connectionCapacity(_ config: ProxyConfig) -> Int {
        let descriptors = SystemInfo.raiseOpenFileLimit()
        let backends = config.listeners.reduce(0) { $0 + $1.backends.count }
        let admin = config.admin == nil ? 0 : AdminLimits.standard.descriptors
        let reserve = 64 + config.threads * (config.listeners.count + 8) + backends + admin
        let allowed = max(config.threads, (descriptors - reserve) / 2)
        guard allowed < config.maxConnections else { return config.maxConnections }
        logger.warning("max_connections lowered to what the open-files limit allows (two descriptors per client)", metadata: [
            "max_connections": "\(config.maxConnections)", "lowered_to": "\(allowed)", "open_files_limit": "\(descriptors)",
            "hint": "raise the limit (ulimit -n, LimitNOFILE=) for more",
        ])
        return allowed
    }

    /// Worker `index`'s part of `total` connections: shared out exactly, not rounded up per worker, except
    /// that each worker admits at least one (so that every worker can serve).
    static func share(of total: Int, worker index: Int, of workers: Int) -> Int {
        max(1, total / workers + (index < total % workers ? 1 : 0))
    }

    /// Closes the listening sockets of workers `first...` that never started.
    private func closeUnadopted(_ plan: RuntimePlan, from first: Int) {
        for listener in plan.listeners {
            for worker in first..<listener.sockets.count { Glibc.close(listener.sockets[worker]) }
        }
    }

    /// Closes the sockets `plan` bound for `worker`, a worker that has exited (it drained) and adopts no plan.
    private func closeUnadopted(_ plan: RuntimePlan, since previous: RuntimePlan, worker: Int) {
        for listener in plan.listeners where !previous.listeners.contains(where: { $0.id == listener.id }) {
            Glibc.close(listener.sockets[worker])
        }
    }

    // MARK: - Reload

    /// Applies `newConfig` to new connections without dropping any: pools, weights, balancing, health and
    /// timeouts switch at once, added listeners start, removed ones stop accepting. Settings that size the
    /// workers cannot change without a restart: they keep their running values, and `ReloadOutcome` says so.
    /// Throws (and changes nothing) when a new listener cannot be bound or the backend table is full.
    @discardableResult
    public func reload(to newConfig: ProxyConfig) throws(ReloadError) -> ReloadOutcome {
        try publishing.withLock { _ throws(ReloadError) in
            let running = plan
            let settings = SettingsReload(running: running.config, requested: newConfig)
            let next: RuntimePlan
            do throws(ReloadError) {
                next = try publish(keepingHeldNames(settings.effective, running: running.config), replacing: running)
            } catch {
                stats.withLock { $0.reloadFailures += 1 }
                throw error
            }
            followNames(of: next.config)
            stats.withLock { $0.reloads += 1 }
            return ReloadOutcome(generation: next.generation, applied: settings.applied, restartOnly: settings.restartOnly)
        }
    }

    /// Makes the plan for `config` and switches every worker (and the health checker) to it. The caller holds
    /// `publishing`.
    private func publish(_ config: ProxyConfig, replacing running: RuntimePlan) throws(ReloadError) -> RuntimePlan {
        let next = try makePlan(config, generation: running.generation + 1, previous: running)
        current.withLock { $0 = next }
        var taking: [Int] = []
        for (index, channel) in channels.enumerated() {
            if channel.publish(next) { taking.append(index) } else { closeUnadopted(next, since: running, worker: index) }
        }
        var lagging: [Int] = []
        for index in taking where !channels[index].waitUntilApplied(next.generation, timeout: .seconds(5)) {
            lagging.append(index)
        }
        if lagging.isEmpty == false {
            logger.error("workers did not switch to the new configuration in 5 s", metadata: ["workers": "\(lagging)"])
        }
        startChecker(for: next)
        return next
    }

    // MARK: - Runtime control

    /// Sets backend `key`'s runtime state and/or weight (nil leaves it as it is), or with `reset` drops its
    /// overrides. A state takes effect at once, through the backend's shared words; a weight through a new
    /// plan. Overrides survive reloads and are dropped when the backend leaves the configuration.
    /// Returns the backend as the workers now see it.
    public func control(_ key: BackendKey, state: BackendAdminState? = nil, weight: Int? = nil, reset: Bool = false)
        throws(ControlError) -> BackendPool.Member
    {
        try publishing.withLock { (_: inout Void) throws(ControlError) -> BackendPool.Member in
            let running = plan
            // A listener's own pool is named after it (or its `default_pool`); route pools by their names.
            guard let pool = running.pool(named: key.pool) else { throw .unknownPool(key.pool) }
            guard let member = pool.members.first(where: { $0.address == key.address }) else { throw .unknownBackend(key) }
            if let weight, !ProxyConfig.Limits.weight.contains(weight) { throw .badWeight(weight) }
            let previous = overrides[key]
            var entry = reset ? BackendOverride() : previous ?? BackendOverride()
            if let state { entry.state = state == .ready ? nil : state }
            if let weight { entry.weight = weight == member.configuredWeight ? nil : weight }
            overrides[key] = entry
            let newWeight = entry.weight ?? member.configuredWeight
            if newWeight != member.weight {
                // Same config (discovered addresses included), same listeners and sockets: only the pool's
                // weights change.
                do throws(ReloadError) {
                    _ = try publish(running.config, replacing: running)
                } catch {
                    overrides[key] = previous
                    throw .publish(error)
                }
            }
            table.health(of: member.id).setAdminState(entry.state ?? .ready, now: monotonicMilliseconds())
            logger.info("backend changed at runtime", metadata: [
                "backend": "\(key)", "state": "\(entry.state ?? .ready)", "weight": "\(newWeight)",
            ])
            return plan.pool(named: key.pool)?.members.first { $0.address == key.address } ?? member
        }
    }

    /// The runtime override of `key`, if any.
    public func override(of key: BackendKey) -> BackendOverride? { publishing.withLock { _ in overrides[key] } }

    // MARK: - Discovery

    /// Starts DNS discovery for the names of `config`, or hands them to it. The caller holds `publishing`.
    private func followNames(of config: ProxyConfig) {
        discovery.withLock { discovery in
            if let discovery {
                discovery.follow(config)
            } else if !config.queries.isEmpty {
                discovery = Discovery(config: config, logger: logger) { [weak self] sets in self?.publishDiscovered(sets) }
            }
        }
    }

    /// `config` with the running addresses of each name it resolved to nothing (possible with `dns_start =
    /// "wait"`) that discovery still holds (within `dns_hold`): a reload does not cut the hold short.
    private func keepingHeldNames(_ config: ProxyConfig, running: ProxyConfig) -> ProxyConfig {
        let held = running.discoveredSets
        var sets = config.discoveredSets
        var kept = false
        for (query, targets) in sets where targets.isEmpty {
            guard let running = held[query], !running.isEmpty else { continue }
            sets[query] = running
            kept = true
        }
        return kept ? config.expanded(with: sets) : config
    }

    /// A plan with the addresses discovery found (`sets`, for the names the running plan still follows),
    /// published the way a reload is: an address that stays keeps its row, its counters and its connections.
    private func publishDiscovered(_ sets: [DNSQuery: [DNSTarget]]) {
        publishing.withLock { _ in
            let running = plan
            var merged = running.config.discoveredSets
            for (query, targets) in sets where merged[query] != nil { merged[query] = targets }
            let config = running.config.expanded(with: merged)
            guard config != running.config else { return }
            do {
                _ = try publish(config, replacing: running)
                stats.withLock { $0.discoveryPlans += 1 }
            } catch {
                stats.withLock { $0.discoveryPlanFailures += 1 }
                logger.error("new DNS addresses not applied; the running ones stay", metadata: ["error": "\(error)"])
            }
        }
    }

    /// What discovery has done for each name it follows.
    public var discoveryStats: [DNSQuery: DNSNameStats] { discovery.withLock { $0 }?.stats ?? [:] }

    /// Counts a reload that failed before it reached the proxy (a bad file).
    public func recordReloadFailure() { stats.withLock { $0.reloadFailures += 1 } }

    /// The plan for `config`: listeners that keep their name and address keep their id and sockets, new
    /// ones are bound now (one socket per worker), and every backend gets its row.
    private func makePlan(_ config: ProxyConfig, generation: Int, previous: RuntimePlan?) throws(ReloadError) -> RuntimePlan {
        let needed = registry.newRows(for: config.listeners)
        guard registry.used + needed <= table.capacity else {
            throw .backendTableFull(capacity: table.capacity, needed: registry.used + needed)
        }
        var bound: [Int32] = []
        var listeners: [ListenerPlan] = []
        var keys = Set<BackendKey>()
        var joined: [BackendID] = []
        // A backend joins when the running plan's pool lacks it: new, or back (a DNS record that returned).
        // What the running plan's pools hold (nil for the first plan, where nothing joins).
        let running = previous.map { plan in
            Set(plan.listeners.flatMap { listener in
                listener.pools.flatMap { pool, _ in pool.members.map { BackendKey(pool: pool.name, address: $0.address) } }
            })
        }
        for listener in config.listeners {
            let pool = makePool(name: listener.defaultPool ?? listener.name, rowKey: listener.rowKey, backends: listener.backends,
                                algorithm: listener.balance, health: config.health,
                                joining: running, keys: &keys, joined: &joined)
            // The same listener: same name and address (a port 0 keeps the port it was given).
            let same = previous?.listeners.first { running in
                running.name == listener.name
                    && (running.address == listener.address || (listener.address.port == 0 && running.address.withPort(0) == listener.address))
            }
            if let same {
                listeners.append(ListenerPlan(
                    id: same.id, name: listener.name, address: same.address, pool: pool, sendProxy: listener.sendProxy,
                    sockets: same.sockets,
                    routing: makeRouting(listener, id: same.id, health: config.health,
                                         joining: running, keys: &keys, joined: &joined)))
                continue
            }
            var address = listener.address
            var sockets: [Int32] = []
            for worker in 0..<config.threads {
                do {
                    let cpu = config.pin ? Int32(config.workerCPUs[worker]) : nil
                    let fd = try Socket.listen(on: address, backlog: Self.listenBacklog, incomingCPU: cpu)
                    if worker == 0, address.port == 0, let local = Socket.localAddress(of: fd) { address = local }
                    sockets.append(fd)
                    bound.append(fd)
                } catch {
                    for fd in bound { Glibc.close(fd) }
                    throw .listen(error)
                }
            }
            listeners.append(ListenerPlan(
                id: nextListenerID, name: listener.name, address: address, pool: pool, sendProxy: listener.sendProxy,
                sockets: sockets,
                routing: makeRouting(listener, id: nextListenerID, health: config.health,
                                     joining: running, keys: &keys, joined: &joined)))
            nextListenerID += 1
        }
        applyOverrides(keeping: keys, joined: joined, listeners: listeners)
        return RuntimePlan(generation: generation, config: config, listeners: listeners)
    }

    /// Drops the overrides of backends that left, writes every member's runtime state into its row (a row
    /// that comes back later starts ready), and starts the slow-start ramp of backends that joined.
    private func applyOverrides(keeping keys: Set<BackendKey>, joined: [BackendID], listeners: [ListenerPlan]) {
        for key in overrides.prune(keeping: keys) {
            logger.info("runtime override dropped: the backend left the configuration", metadata: ["backend": "\(key)"])
        }
        let now = monotonicMilliseconds()
        for listener in listeners {
            for (pool, _) in listener.pools {
                for member in pool.members {
                    let state = overrides[BackendKey(pool: pool.name, address: member.address)]?.state ?? .ready
                    table.health(of: member.id).setAdminState(state, now: now)
                }
            }
        }
        for id in joined { table.health(of: id).startRamp(now: now) }
    }

    /// A pool of the plan. Runtime overrides are keyed by the pool's name and a backend's address; `joining`
    /// (nil for the first plan) is what the running plan's pools hold: a backend not among them joins, and
    /// its slow-start ramp begins.
    private func makePool(name: String, rowKey: String, backends: [ProxyConfig.Backend], algorithm: BalanceAlgorithm,
                          health: HealthPolicy, joining running: Set<BackendKey>?, keys: inout Set<BackendKey>,
                          joined: inout [BackendID]) -> BackendPool {
        let members = backends.map { backend in
            let key = BackendKey(pool: name, address: backend.address)
            keys.insert(key)
            let id = registry.id(pool: rowKey, backend: backend)
            if let running, !running.contains(key) { joined.append(id) }
            return BackendPool.Member(
                id: id, name: backend.name, address: backend.address,
                weight: overrides[key]?.weight ?? backend.weight, maxConnections: backend.maxConnections,
                configuredWeight: backend.weight, origin: backend.origin?.description ?? "file")
        }
        return BackendPool(name: name, members: members, algorithm: algorithm, health: health)
    }

    /// The routing stage of `listener`: one pool per pool name its routes use.
    private func makeRouting(_ listener: ProxyConfig.Listener, id: UInt32, health: HealthPolicy,
                             joining running: Set<BackendKey>?, keys: inout Set<BackendKey>,
                             joined: inout [BackendID]) -> RoutingPlan? {
        guard let routing = listener.routing else { return nil }
        var pools: [BackendPool] = []
        var indices: [String: Int] = [:]
        let routePools = routing.routes.map { route in
            if let index = indices[route.pool.name] { return index }
            pools.append(makePool(name: route.pool.name, rowKey: route.pool.rowKey, backends: route.pool.backends,
                                  algorithm: route.pool.balance, health: health, joining: running, keys: &keys, joined: &joined))
            indices[route.pool.name] = pools.count - 1
            return pools.count - 1
        }
        return RoutingPlan(settings: routing, pools: pools, routePools: routePools, listenerID: id)
    }

    private func startChecker(for plan: RuntimePlan) {
        if let checker {
            checker.update(plan.healthTargets)
        } else if plan.config.health.checks != nil {
            checker = HealthChecker(targets: plan.healthTargets, table: table, logger: logger)
        }
    }

    // MARK: - Stop

    /// Stops accepting (every worker closes its listening sockets) and lets open connections finish.
    public func drain() {
        for channel in channels { channel.enter(.draining) }
    }

    /// Closes every connection now.
    public func terminate() {
        for channel in channels { channel.enter(.terminating) }
    }

    /// Waits until every worker has exited (all connections closed) or `timeout` passes; true if they did.
    public func waitForWorkers(timeout: Duration) -> Bool {
        let deadline = monotonicMilliseconds() + timeout.milliseconds
        while runningWorkers > 0 {
            if monotonicMilliseconds() > deadline { return false }
            usleep(5000)
        }
        return true
    }

    /// Closes every connection, stops the workers and the health checker, and waits for their threads.
    public func stop() {
        // Discovery first: a change it is publishing waits for the workers to take it.
        let stopping = discovery.withLock { discovery in
            defer { discovery = nil }
            return discovery
        }
        stopping?.stop()
        terminate()
        for thread in threads { WorkerThread.join(thread) }
        channels.removeAll()
        threads.removeAll()
        checker?.stop()
        checker = nil
    }

    // MARK: - Helpers

    static let listenBacklog: Int32 = 65535

    /// The most connections a multishot accept can post between two loop turns: a full listen backlog,
    /// which the kernel caps at `net.core.somaxconn`.
    static func acceptBurst() -> Int {
        let somaxconn = RingAvailability.readSysctl("net/core/somaxconn").flatMap { Int($0) } ?? 4096
        return min(Int(listenBacklog), somaxconn) + 64
    }

    private func logStart(_ plan: RuntimePlan, ringSetup: String, capacity: Int) {
        if !RingAvailability.cancelledSendsReportProgress {
            logger.warning("buffer pressure relief is off: this kernel does not report what a cancelled send had sent",
                           metadata: ["kernel": "\(RingAvailability.kernelRelease())", "hint": "use Linux 6.1 or newer"])
        }
        let config = plan.config
        let listeners = plan.listeners.map { listener in
            "\(listener.name) \(listener.address) \(listener.pool.algorithm.rawValue) -> "
                + listener.pool.members.map { "\($0.name)@\($0.weight)" }.joined(separator: ",")
        }
        logger.info("ringproxy started", metadata: [
            "workers": "\(config.threads)",
            "pinned": "\(config.pin ? config.workerCPUs.map(String.init).joined(separator: ",") : "no")",
            "ring": "\(config.ringSize) entries (\(ringSetup))",
            "buffers": "\(config.buffersPerWorker) x \(config.bufferSize) B per worker (\(config.bufferBytesPerWorker >> 20) MiB)",
            "listeners": "\(listeners.joined(separator: "; "))",
            "max_connections": "\(capacity)",
            "health_checks": "\(config.health.checks.map { "every \($0.interval)" } ?? "off")",
        ])
    }
}

/// Threads still running, shared with the threads themselves.
private final class ThreadCount: Sendable {
    let value = Atomic<Int>(0)
}

/// Counts the control plane keeps about itself.
public struct ProcessStats: Sendable {
    public var reloads = 0
    public var reloadFailures = 0
    /// Plans published for a change of DNS addresses, and those refused (the backend table full).
    public var discoveryPlans = 0
    public var discoveryPlanFailures = 0
}

/// What a reload did beyond switching the plan.
public struct ReloadOutcome: Sendable {
    public let generation: Int
    /// Settings (of `ProxyConfig.settings`) the reload changed.
    public let applied: [SettingChange]
    /// Settings the new file changes that only a restart applies; they keep their running values.
    public let restartOnly: [SettingChange]
}

/// Why a reload was refused (the running configuration stays).
public enum ReloadError: Error, CustomStringConvertible, Sendable {
    case listen(SocketError)
    case backendTableFull(capacity: Int, needed: Int)

    public var description: String {
        switch self {
        case .listen(let error): error.description
        case .backendTableFull(let capacity, let needed):
            "the backend table holds \(capacity) backends over the life of the process and this configuration would need \(needed); restart to start afresh"
        }
    }
}

/// Why a runtime control request was refused (nothing changed).
public enum ControlError: Error, CustomStringConvertible, Sendable {
    case unknownPool(String)
    case unknownBackend(BackendKey)
    case badWeight(Int)
    case publish(ReloadError)

    public var description: String {
        switch self {
        case .unknownPool(let pool): "no listener (pool) named '\(pool)'"
        case .unknownBackend(let key): "pool '\(key.pool)' has no backend \(key.address)"
        case .badWeight(let weight):
            "weight \(weight) is out of range: expected \(ProxyConfig.Limits.weight.lowerBound) to \(ProxyConfig.Limits.weight.upperBound)"
        case .publish(let error): "cannot publish the change: \(error)"
        }
    }
}

/// Why the proxy could not start, worded as one line for the operator.
public enum StartupError: Error, CustomStringConvertible, Sendable {
    case ioUring(String)
    case listen(ReloadError)
    case worker(String)
    case admin(String)

    public var description: String {
        switch self {
        case .ioUring(let message), .worker(let message), .admin(let message): message
        case .listen(let error): error.description
        }
    }
}
