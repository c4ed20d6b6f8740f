/// The shape of `GET /backends`: written by the admin endpoint, read by `ringproxy ctl` (one type, so the two
/// cannot drift apart).
public struct BackendsDocument: Codable, Equatable, Sendable {
    public struct Listener: Codable, Equatable, Sendable {
        public var name: String
        public var address: String
        public var balance: String
        public var sendProxy: String?
        public var backends: [Backend]
    }

    public struct Backend: Codable, Equatable, Sendable {
        public var name: String
        public var address: String
        /// Where the backend came from: "file", or the DNS name the address came from.
        public var origin: String
        /// The weight the workers use (the override, else the file's or DNS's).
        public var weight: Int
        /// The weight its source gave.
        public var fileWeight: Int
        /// `weight` as slow start ramps it now.
        public var effectiveWeight: Double
        /// What the operator set at runtime; nil: nothing.
        public var override: Override?
        public var maxConnections: Int
        /// up, down, drain or maint.
        public var state: String
        /// The health checks' and passive health's view: up, down or trial.
        public var health: String
        public var active: Int
        public var total: Int
        public var connectFailures: Int
        public var bytesToBackend: Int
        public var bytesToClient: Int
    }

    public struct Override: Codable, Equatable, Sendable {
        public var state: String?
        public var weight: Int?
    }

    public var generation: Int
    public var draining: Bool
    public var listeners: [Listener]
}

extension BackendsDocument.Backend {
    init(_ pool: BackendPool, _ index: Int, proxy: Proxy, named routePool: String? = nil) {
        let member = pool.members[index]
        let table = proxy.table
        let health = table.health(of: member.id)
        let override = proxy.override(of: BackendKey(pool: pool.name, address: member.address))
        self.init(
            name: routePool.map { "\($0)/\(member.name)" } ?? member.name, address: "\(member.address)",
            origin: member.origin, weight: member.weight, fileWeight: member.configuredWeight, effectiveWeight: (pool.effectiveWeight(of: index, table: table) * 100).rounded() / 100,
            override: override.map { BackendsDocument.Override(state: $0.state.map { "\($0)" }, weight: $0.weight) },
            maxConnections: member.maxConnections, state: health.displayState, health: "\(health.state)",
            active: table.sum(.active, backend: member.id), total: table.sum(.total, backend: member.id),
            connectFailures: table.sum(.connectFailures, backend: member.id),
            bytesToBackend: table.sum(.bytesToBackend, backend: member.id),
            bytesToClient: table.sum(.bytesToClient, backend: member.id))
    }
}
