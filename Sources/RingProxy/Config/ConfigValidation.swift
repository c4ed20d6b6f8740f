import Logging
import RingDNS

/// Checks settings and collects every issue in one pass; `ProxyConfig.validate` applies nothing unless
/// the list ends empty.
struct ConfigValidation {
    var issues: [ConfigIssue]
    /// Where each backend name was written, for its resolution error.
    var nameSources: [DNSQuery: SettingSource] = [:]

    init(issues: [ConfigIssue]) { self.issues = issues }

    /// Once per key and message: a top-level key that every listener inherits is reported once, not per listener.
    mutating func fail(_ source: SettingSource, _ message: String) {
        let issue = ConfigIssue(source, message)
        if !issues.contains(issue) { issues.append(issue) }
    }

    /// Reports a missing setting, unless it is missing because its value was already reported as bad.
    mutating func missing(_ source: SettingSource, _ message: String, key: String...) {
        guard !issues.contains(where: { issue in key.contains { issue.source.key.hasPrefix($0) } }) else { return }
        fail(source, message)
    }

    // MARK: - Listeners and pools

    mutating func listeners(_ settings: ProxySettings) -> [ProxyConfig.Listener] {
        let balance = choice(settings.balance, BalanceAlgorithm.self) ?? .default
        let sendProxy = proxyProtocol(settings.sendProxy)
        guard let specs = settings.listeners else {
            if let pools = settings.pools?.first {
                fail(pools.source, "[pools.NAME] are named by [[listeners]] entries (default_pool, routes): the flat layout has its own [[backends]]")
            }
            let addresses = flatAddresses(settings)
            let pool = backends(settings.backends, key: "backends", hint: "add [[backends]] entries with host and port, or pass --backend host:port")
            let routing = routing(settings.routing, hasDefaultPool: true, pools: [:])
            return addresses.enumerated().map { index, address in
                ProxyConfig.Listener(
                    name: addresses.count == 1 ? "default" : "default-\(index)", address: address, balance: balance,
                    sendProxy: sendProxy, backends: pool.backends, names: pool.names, routing: routing)
            }
        }
        for flat in [settings.host?.source, settings.port?.source, settings.listen?.first?.source, settings.backends?.first?.source] {
            if let flat {
                fail(flat, "the flat layout (host, port, [[backends]], --listen, --backend) cannot be mixed with [[listeners]]")
                break
            }
        }
        if specs.isEmpty { fail(SettingSource(key: "listeners"), "no listeners: add [[listeners]] entries, each with bind and [[listeners.backends]]") }
        let pools = namedPools(settings.pools, defaultBalance: balance)
        var names: [String: String] = [:]
        var bound: [SocketAddress: String] = [:]
        var listeners: [ProxyConfig.Listener] = []
        for (index, spec) in specs.enumerated() {
            let name = spec.name?.value ?? "listener\(index)"
            if let first = names[name] {
                fail(spec.name?.source ?? spec.source, "duplicate listener name '\(name)' (already used by \(first))")
            }
            names[name] = spec.source.key
            let address = listenerAddress(spec)
            var defaultPool: NamedPool?
            if let name = spec.routing.defaultPool {
                if spec.backends != nil { fail(name.source, "give either [[listeners.backends]] or default_pool, not both") }
                defaultPool = self.pool(name, in: pools)
            }
            let routesOnly = spec.backends == nil && spec.routing.defaultPool == nil && spec.routing.routes != nil
            let pool = spec.routing.defaultPool != nil ? (backends: defaultPool?.backends ?? [], names: defaultPool?.names ?? [])
                : routesOnly ? (backends: [], names: []) : backends(
                spec.backends, key: "\(spec.source.key).backends", hint: "add [[listeners.backends]] entries under this listener")
            let routing = routing(spec.routing.inheriting(settings.routing), hasDefaultPool: !routesOnly, pools: pools)
            guard let address else { continue }
            if address.port != 0, let first = bound[address] {
                fail(spec.bind?.source ?? spec.source, "\(address) is already the address of \(first)")
                continue
            }
            bound[address] = spec.source.key
            listeners.append(ProxyConfig.Listener(
                name: name, address: address,
                balance: defaultPool?.balance ?? choice(spec.balance, BalanceAlgorithm.self) ?? balance,
                sendProxy: spec.sendProxy.map { proxyProtocol($0) } ?? sendProxy, backends: pool.backends, names: pool.names,
                defaultPool: defaultPool?.name, routing: routing))
        }
        return listeners
    }

    /// `--listen` addresses, else the file's `host` and `port`.
    mutating func flatAddresses(_ settings: ProxySettings) -> [SocketAddress] {
        if let listen = settings.listen {
            return listen.compactMap { hostPort($0, defaultHost: "0.0.0.0", allowPortZero: true) }
        }
        guard let port = settings.port else {
            missing(SettingSource(key: "port"), "no listen address: set port (and host) in the config file, or pass --listen host:port", key: "port")
            return []
        }
        let host = settings.host ?? Setting("0.0.0.0", SettingSource(key: "host"))
        return resolve(host.value, port: port.value, hostSource: host.source, portSource: port.source, allowPortZero: true)
            .map { [$0] } ?? []
    }

    mutating func listenerAddress(_ spec: ListenerSpec) -> SocketAddress? {
        if let bind = spec.bind {
            if spec.host != nil || spec.port != nil { fail(bind.source, "give either bind or host and port, not both") }
            return hostPort(bind, defaultHost: "0.0.0.0", allowPortZero: true)
        }
        guard let port = spec.port else {
            missing(spec.source, "missing bind (host:port)", key: "\(spec.source.key).bind", "\(spec.source.key).port")
            return nil
        }
        let host = spec.host ?? Setting("0.0.0.0", spec.source)
        return resolve(host.value, port: port.value, hostSource: host.source, portSource: port.source, allowPortZero: true)
    }

    /// The pool's file backends, and its named ones (resolved later, by `resolveNames`).
    mutating func backends(_ specs: [BackendSpec]?, key: String, hint: String) -> (backends: [ProxyConfig.Backend], names: [NamedBackend]) {
        guard let specs, !specs.isEmpty else {
            missing(SettingSource(key: key), "no backends: \(hint)", key: key, "--backend")
            return ([], [])
        }
        if specs.count > ProxyConfig.Limits.backends.upperBound {
            fail(specs[0].source, "at most \(ProxyConfig.Limits.backends.upperBound) backends per pool, got \(specs.count)")
        }
        var seen: [SocketAddress: String] = [:]
        var backends: [ProxyConfig.Backend] = []
        var names: [NamedBackend] = []
        for spec in specs {
            let weight = range(spec.weight, ProxyConfig.Limits.weight, what: "a weight") ?? ProxyConfig.defaultWeight
            let limit = range(spec.maxConnections, ProxyConfig.Limits.backendMaxConnections, what: "a connection limit (0 = none)") ?? 0
            let mode = choice(spec.resolve, ResolveMode.self) ?? .all
            if let srv = spec.srv {
                if let other = spec.host ?? spec.port.map({ Setting("\($0.value)", $0.source) }) {
                    fail(other.source, "give either srv or host and port, not both")
                }
                guard !srv.value.isEmpty else { fail(srv.source, "expected an SRV name like _pg._tcp.db.service.consul"); continue }
                let query = DNSQuery(kind: .srv, name: srv.value, port: 0, mode: mode)
                nameSources[query] = srv.source
                names.append(NamedBackend(query: query, name: srv.value, weight: weight, maxConnections: limit))
                continue
            }
            guard let host = spec.host else { missing(spec.source, "missing host", key: spec.source.key + ".host"); continue }
            guard let port = spec.port else { missing(spec.source, "missing port", key: spec.source.key + ".port"); continue }
            guard 1...65535 ~= port.value else {
                fail(port.source, "expected a port from 1 to 65535, got \(port.value)")
                continue
            }
            let name = !host.value.hasPrefix("[") && host.value.contains(":")
                ? "[\(host.value)]:\(port.value)" : "\(host.value):\(port.value)"
            let bare = host.value.hasPrefix("[") && host.value.hasSuffix("]") ? String(host.value.dropFirst().dropLast()) : host.value
            guard let address = SocketAddress(numericHost: bare, port: UInt16(port.value)) else {
                // A name: discovery follows it (resolved first by `resolveNames`).
                let query = DNSQuery(kind: .address, name: bare, port: UInt16(port.value), mode: mode)
                nameSources[query] = host.source
                names.append(NamedBackend(query: query, name: name, weight: weight, maxConnections: limit))
                continue
            }
            if let first = seen[address] {
                fail(spec.source, "duplicate backend \(address) (already listed as \(first))")
                continue
            }
            seen[address] = spec.source.key
            backends.append(ProxyConfig.Backend(name: name, address: address, weight: weight, maxConnections: limit))
        }
        return (backends, names)
    }

    /// `resolvers = ["127.0.0.1:53", "[::1]:5353"]`: numeric addresses, port 53 when none is given.
    mutating func resolvers(_ setting: Setting<[String]>) -> [String]? {
        var servers: [String] = []
        for entry in setting.value {
            if let address = SocketAddress(numeric: entry) ?? SocketAddress(numericHost: entry, port: 53)
                ?? (entry.hasPrefix("[") && entry.hasSuffix("]") ? SocketAddress(numericHost: String(entry.dropFirst().dropLast()), port: 53) : nil),
               address.port != 0 {
                servers.append("\(address)")
            } else {
                fail(setting.source, "expected a resolver address like 127.0.0.1:53 or [::1]:53, got '\(entry)'")
            }
        }
        if setting.value.isEmpty { fail(setting.source, "expected at least one resolver (or leave resolvers out for /etc/resolv.conf)") }
        return servers.isEmpty ? nil : servers
    }

    /// Resolves every name written (all at once, through the resolvers discovery will use; those of a listener
    /// left out for another error too, so that every error is reported) and adds their addresses to the
    /// listeners' pools. A name that does not resolve is an error unless `start` is `.wait`.
    mutating func resolveNames(_ listeners: inout [ProxyConfig.Listener], resolvers: [String]?, start: DNSStart) {
        let queries = Set(nameSources.keys)
        guard !queries.isEmpty else { return }
        let answers: [DNSQuery: DNSAnswer<DNSTarget>]
        do {
            answers = try DNSLookup.resolveNow(Array(queries), resolvers: resolvers)
        } catch {
            fail(SettingSource(key: "resolvers"), "\(error)")
            return
        }
        var sets: [DNSQuery: [DNSTarget]] = [:]
        for query in queries.sorted(by: { $0.name < $1.name }) {
            guard let answer = answers[query] else { continue }
            switch answer {
            case .found(let targets, _):
                sets[query] = targets
            case .none(let reason), .failed(let reason):
                guard start == .fail else { continue }
                let what = query.kind == .srv ? "SRV name" : "host"
                fail(nameSources[query] ?? SettingSource(key: "backends"), "cannot resolve \(what) '\(query.name)': \(reason)")
            }
        }
        listeners = listeners.map { $0.expanded(with: sets) }
    }

    mutating func proxyProtocol(_ setting: Setting<String>?) -> ProxyProtocolVersion? {
        guard let setting, !["none", "off"].contains(setting.value) else { return nil }
        guard let version = ProxyProtocolVersion(rawValue: setting.value) else {
            fail(setting.source, "expected \"v1\", \"v2\" or \"none\", got '\(setting.value)'")
            return nil
        }
        return version
    }

    // MARK: - Addresses

    /// `host:port` (or `[v6]:port`); an empty host means `defaultHost`.
    mutating func hostPort(_ setting: Setting<String>, defaultHost: String, allowPortZero: Bool) -> SocketAddress? {
        guard let (host, port) = SocketAddress.split(setting.value) else {
            fail(setting.source, "expected host:port (like 127.0.0.1:8080 or [::1]:8080), got '\(setting.value)'")
            return nil
        }
        return resolve(host.isEmpty ? defaultHost : host, port: Int(port), source: setting.source, allowPortZero: allowPortZero)
    }

    /// `host:port`, `:port` or a bare port; a missing host means 127.0.0.1 (the admin endpoint stays local
    /// unless an address says otherwise).
    mutating func adminAddress(_ setting: Setting<String>) -> SocketAddress? {
        if let port = Int(setting.value) {
            return resolve("127.0.0.1", port: port, source: setting.source, allowPortZero: true)
        }
        return hostPort(setting, defaultHost: "127.0.0.1", allowPortZero: true)
    }

    /// The token in `file`, required when the admin endpoint listens beyond loopback: anyone who can reach it
    /// could otherwise read the topology (`/backends`) and the traffic figures.
    mutating func adminToken(_ file: Setting<String>?, protecting admin: SocketAddress?, addressSetting: Setting<String>?) -> AdminToken? {
        guard let file else {
            if let admin, let addressSetting, !admin.isLoopback {
                fail(addressSetting.source, "the admin endpoint on \(admin) is reachable beyond this machine: set admin_token_file "
                     + "(--admin-token-file) to a file holding a bearer token, or listen on 127.0.0.1")
            }
            return nil
        }
        do {
            return try AdminToken(file: file.value)
        } catch {
            fail(file.source, "\(error)")
            return nil
        }
    }

    mutating func resolve(_ host: String, port: Int, source: SettingSource, allowPortZero: Bool) -> SocketAddress? {
        resolve(host, port: port, hostSource: source, portSource: source, allowPortZero: allowPortZero)
    }

    /// The address of `host` (a name is resolved now), each problem reported against the key that caused it.
    mutating func resolve(_ host: String, port: Int, hostSource: SettingSource, portSource: SettingSource, allowPortZero: Bool) -> SocketAddress? {
        guard (allowPortZero ? 0 : 1)...65535 ~= port else {
            fail(portSource, "expected a port from \(allowPortZero ? 0 : 1) to 65535, got \(port)")
            return nil
        }
        do {
            return try SocketAddress.resolve(host: host, port: UInt16(port))
        } catch {
            fail(hostSource, "\(error)")
            return nil
        }
    }

    // MARK: - Health

    mutating func health(_ spec: HealthSpec) -> HealthPolicy {
        let failThreshold = range(spec.failThreshold, ProxyConfig.Limits.failThreshold, what: "a failure count (0 = off)")
            ?? HealthPolicy.defaultFailThreshold
        let failTimeout = positive(spec.failTimeout) ?? HealthPolicy.defaultFailTimeout
        var checks: HealthChecks?
        if let interval = positive(spec.interval) {
            let timeout = positive(spec.timeout) ?? min(interval, ProxyConfig.defaultCheckTimeout)
            checks = HealthChecks(
                interval: interval, timeout: timeout,
                rise: range(spec.rise, ProxyConfig.Limits.riseFall, what: "a count") ?? ProxyConfig.defaultCheckRise,
                fall: range(spec.fall, ProxyConfig.Limits.riseFall, what: "a count") ?? ProxyConfig.defaultCheckFall,
                probe: probe(spec) ?? .connect,
                port: range(spec.checkPort, 1...65535, what: "a port").map { UInt16($0) })
        } else {
            for setting in spec.activeCheckSources {
                fail(setting, "active health checks need health.interval")
            }
        }
        // The parser takes no negative duration: zero (off) or more.
        return HealthPolicy(failThreshold: failThreshold, failTimeout: failTimeout, checks: checks, slowStart: spec.slowStart?.value ?? .zero)
    }

    // MARK: - Values

    mutating func range(_ setting: Setting<Int>?, _ limits: ClosedRange<Int>, what: String) -> Int? {
        guard let setting else { return nil }
        guard limits.contains(setting.value) else {
            fail(setting.source, "expected \(what) from \(limits.lowerBound) to \(limits.upperBound), got \(setting.value)")
            return nil
        }
        return setting.value
    }

    mutating func powerOfTwo(_ setting: Setting<Int>?, _ limits: ClosedRange<Int>) -> Int? {
        guard let setting else { return nil }
        let value = setting.value
        guard limits.contains(value), value & (value - 1) == 0 else {
            fail(setting.source, "expected a power of two from \(limits.lowerBound) to \(limits.upperBound), got \(value)")
            return nil
        }
        return value
    }

    mutating func positive(_ setting: Setting<Duration>?) -> Duration? {
        guard let setting else { return nil }
        guard setting.value > .zero else {
            fail(setting.source, "expected a duration greater than zero")
            return nil
        }
        return setting.value
    }

    /// One of an enumeration's names.
    mutating func choice<Choice: RawRepresentable & CaseIterable>(_ setting: Setting<String>?, _ type: Choice.Type) -> Choice?
    where Choice.RawValue == String {
        guard let setting else { return nil }
        guard let value = Choice(rawValue: setting.value.lowercased()) else {
            let names = Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            fail(setting.source, "expected one of \(names), got '\(setting.value)'")
            return nil
        }
        return value
    }

    mutating func cpus(_ setting: Setting<String>, allowed: [Int]) -> [Int]? {
        guard let cpus = Units.cpuList(setting.value) else {
            fail(setting.source, "expected a CPU list like \"0,2-3\", got '\(setting.value)'")
            return nil
        }
        let unavailable = cpus.filter { !allowed.contains($0) }
        guard unavailable.isEmpty else {
            let list = unavailable.map(String.init).joined(separator: ",")
            fail(setting.source, "CPU \(list) is not available to this process (allowed: \(allowed.map(String.init).joined(separator: ",")))")
            return nil
        }
        return cpus
    }

    mutating func logLevel(_ setting: Setting<String>?) -> Logger.Level? {
        guard let setting else { return nil }
        guard let level = Logger.Level(rawValue: setting.value.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            fail(setting.source, "expected one of \(names), got '\(setting.value)'")
            return nil
        }
        return level
    }
}
