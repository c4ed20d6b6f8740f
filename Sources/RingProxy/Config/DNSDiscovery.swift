/// Which of a name's addresses become backends (`resolve`).
public enum ResolveMode: String, CaseIterable, Sendable {
    /// Every A and AAAA record.
    case all
    /// One address, IPv4 preferred: what a name meant before discovery, one backend per name.
    case first
    case ipv4
    case ipv6
}

/// What start-up (and a reload) does with a backend name that does not resolve (`dns_start`).
public enum DNSStart: String, CaseIterable, Sendable {
    /// A configuration error, as for any bad value.
    case fail
    /// Start with no address for it; discovery adds them when the name resolves.
    case wait
}

/// A name discovery follows: the addresses of a backend `host` that is a name, or the records of an `srv`
/// entry. The same query in several pools is resolved once.
public struct DNSQuery: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case address, srv }

    public var kind: Kind
    public var name: String
    /// The backends' port (an SRV record gives its own: 0 there).
    public var port: UInt16
    public var mode: ResolveMode

    public init(kind: Kind, name: String, port: UInt16, mode: ResolveMode) {
        self.kind = kind
        self.name = name
        self.port = port
        self.mode = mode
    }

    /// Where an address came from, as `/backends` and the metrics say it: the name, or `srv <name>`.
    public var description: String { kind == .srv ? "srv \(name)" : name }
}

/// A backend entry that names a DNS name: each address it resolves to becomes a member of the pool.
public struct NamedBackend: Sendable, Equatable {
    public var query: DNSQuery
    /// As the operator wrote it (`web.internal:8080`, or the SRV name).
    public var name: String
    /// The weight of each address (an SRV record's own weight wins).
    public var weight: Int
    public var maxConnections: Int
}

/// One address a query resolved to, with the port to connect to, and a weight when an SRV record gave one.
public struct DNSTarget: Hashable, Sendable {
    public var address: SocketAddress
    public var weight: Int?

    public init(address: SocketAddress, weight: Int? = nil) {
        self.address = address
        self.weight = weight
    }
}

extension ProxyConfig.Backend {
    /// `backends` with the discovered ones replaced by the addresses `sets` gives `names` (a query not in
    /// `sets` has none). File backends come first; an address already in the pool is not added twice.
    static func expanded(_ backends: [ProxyConfig.Backend], names: [NamedBackend], with sets: [DNSQuery: [DNSTarget]])
        -> [ProxyConfig.Backend] {
        var backends = backends
        backends.removeAll { $0.origin != nil }
        var seen = Set(backends.map(\.address))
        for named in names {
            for target in sets[named.query] ?? [] where seen.insert(target.address).inserted {
                let name = named.query.mode == .first && named.query.kind == .address ? named.name : "\(named.name) (\(target.address))"
                backends.append(ProxyConfig.Backend(
                    name: name, address: target.address, weight: target.weight ?? named.weight,
                    maxConnections: named.maxConnections, origin: named.query))
            }
        }
        return backends
    }
}

extension ProxyConfig.Listener {
    /// This listener with the discovered backends of its pool and of its routes' pools replaced by `sets`.
    func expanded(with sets: [DNSQuery: [DNSTarget]]) -> ProxyConfig.Listener {
        var listener = self
        listener.backends = ProxyConfig.Backend.expanded(backends, names: names, with: sets)
        if var routing {
            for index in routing.routes.indices {
                let pool = routing.routes[index].pool
                routing.routes[index].pool.backends = ProxyConfig.Backend.expanded(pool.backends, names: pool.names, with: sets)
            }
            listener.routing = routing
        }
        return listener
    }

    /// The names its own (or default) pool and its routes' pools follow.
    var allNames: [NamedBackend] { names + (routing?.routes ?? []).flatMap(\.pool.names) }

    /// Every backend of its own (or default) pool and of its routes' pools.
    var allBackends: [ProxyConfig.Backend] { backends + (routing?.routes ?? []).flatMap(\.pool.backends) }
}

extension ProxyConfig {
    /// Every query the listeners follow.
    public var queries: Set<DNSQuery> { Set(listeners.flatMap { $0.allNames.map(\.query) }) }

    /// The addresses each query has in this configuration.
    var discoveredSets: [DNSQuery: [DNSTarget]] {
        var sets: [DNSQuery: [DNSTarget]] = [:]
        for query in queries { sets[query] = [] }
        for listener in listeners {
            for backend in listener.allBackends {
                guard let query = backend.origin, var set = sets[query] else { continue }
                let target = DNSTarget(address: backend.address, weight: query.kind == .srv ? backend.weight : nil)
                if !set.contains(target) { set.append(target) }
                sets[query] = set
            }
        }
        return sets
    }

    /// This configuration with every listener's discovered backends replaced by `sets`.
    func expanded(with sets: [DNSQuery: [DNSTarget]]) -> ProxyConfig {
        var config = self
        config.listeners = listeners.map { $0.expanded(with: sets) }
        return config
    }
}
