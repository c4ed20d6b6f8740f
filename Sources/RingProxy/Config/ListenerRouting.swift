/// A pool as a listener's routes name it: `[pools.NAME]`.
public struct NamedPool: Sendable, Equatable {
    public var name: String
    public var balance: BalanceAlgorithm
    /// Its file backends, and the addresses its names resolve to now (with their `origin`).
    public var backends: [ProxyConfig.Backend]
    /// The backend entries that name a DNS name, followed by discovery.
    public var names: [NamedBackend] = []

    /// The backend table keys its rows by pool: a named pool's rows are shared by every listener naming it,
    /// and never taken for an inline pool of a listener of the same name.
    public var rowKey: String { "pools.\(name)" }
}

/// What a listener's routing stage does before connect (issue 12): source rules and per-client limits at
/// accept, the PROXY header from trusted balancers, and the route by the TLS ClientHello's server name and
/// ALPN protocols. nil on a listener that sets none of its keys: that listener keeps the plain path.
public struct ListenerRouting: Sendable, Equatable {
    public struct Route: Sendable, Equatable {
        /// Any of these matches the server name; empty: any name, or none.
        public var serverNames: [ServerNamePattern]
        /// Any of these is among the client's ALPN protocols; empty: any.
        public var alpn: [String]
        public var pool: NamedPool

        /// Whether a client that said `hello` (nil: no ClientHello, or no server name) takes this route.
        public func matches(_ hello: ClientHello?) -> Bool {
            if !serverNames.isEmpty {
                guard let name = hello?.serverName, serverNames.contains(where: { $0.matches(name) }) else { return false }
            }
            if !alpn.isEmpty {
                guard let offered = hello?.alpn, offered.contains(where: alpn.contains) else { return false }
            }
            return true
        }
    }

    public var routes: [Route] = []
    /// The listener has a pool for clients no route takes (`default_pool`, or its own backends).
    public var hasDefaultPool = true
    /// Sources whose connections must start with a PROXY header (v1 or v2), whose source address is then the
    /// client's; from every other source the bytes are payload.
    public var acceptProxy = AddressBlockList([])
    /// Empty: every source not denied.
    public var allow = AddressBlockList([])
    public var deny = AddressBlockList([])
    /// Open connections per client address at most, over all workers; 0: no limit.
    public var maxConnectionsPerClient = 0
    /// New connections per second per client address (a token bucket of `newConnectionsBurst`); 0: no limit.
    public var newConnectionsPerClient = 0
    public var newConnectionsBurst = 0
    public var prereadMax = ListenerRouting.defaultPrereadMax
    public var prereadTimeout = ListenerRouting.defaultPrereadTimeout

    public static let defaultPrereadMax = 16 * 1024
    public static let defaultPrereadTimeout = Duration.seconds(5)
    /// The preamble (PROXY header out, then the held bytes) is sent from one buffer with a 16-bit length.
    public static let prereadMaxLimits = 512...(60 * 1024)
    public static let perClientLimits = 0...1_000_000

    /// The stage reads the client's first bytes before connecting.
    public var prereads: Bool { !routes.isEmpty || !acceptProxy.isEmpty }

    /// The client's address is checked at accept (or once its PROXY header names it).
    public var checksSources: Bool {
        !allow.isEmpty || !deny.isEmpty || maxConnectionsPerClient > 0 || newConnectionsPerClient > 0
    }

    /// Source rules: deny wins, an empty allow list allows every source.
    public func admits(_ address: SocketAddress) -> Bool {
        !deny.contains(address) && (allow.isEmpty || allow.contains(address))
    }

    public init() {}
}
