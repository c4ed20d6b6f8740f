/// A listener as the workers run it: an identity that survives reloads which keep its name and address,
/// its pool, and one listening socket per worker.
final class ListenerPlan: @unchecked Sendable {
    let id: UInt32
    let name: String
    let address: SocketAddress
    let pool: BackendPool
    let sendProxy: ProxyProtocolVersion?
    /// `sockets[worker]`: the worker's own `SO_REUSEPORT` socket. The worker owns it once it adopts the plan.
    let sockets: [Int32]
    /// The routing stage (issue 12); nil on a plain listener.
    let routing: RoutingPlan?

    init(id: UInt32, name: String, address: SocketAddress, pool: BackendPool, sendProxy: ProxyProtocolVersion?, sockets: [Int32],
         routing: RoutingPlan? = nil) {
        self.id = id
        self.name = name
        self.address = address
        self.pool = pool
        self.sendProxy = sendProxy
        self.sockets = sockets
        self.routing = routing
    }

    /// Its pool and the pools its routes name, each once, with the name to show its backends under
    /// (`listener/backend` for its own pool, `listener/pool/backend` for a route's).
    var pools: [(pool: BackendPool, prefix: String)] {
        [(pool, name)] + (routing?.pools.map { ($0, "\(name)/\($0.name)") } ?? [])
    }
}

/// Everything the workers run with that a reload may change. Immutable; a reload publishes a new one and
/// each worker switches at the top of its loop. Open connections keep their backend.
public final class RuntimePlan: @unchecked Sendable {
    public let generation: Int
    public let config: ProxyConfig
    let listeners: [ListenerPlan]

    init(generation: Int, config: ProxyConfig, listeners: [ListenerPlan]) {
        self.generation = generation
        self.config = config
        self.listeners = listeners
    }

    /// The pools, one per listener, in listener order (a routing listener's route pools are not among them).
    public var pools: [BackendPool] { listeners.map(\.pool) }
}
