import Synchronization

/// What the admin endpoint allows a peer: it is a side door to the proxy, so it must not be a way to take
/// descriptors or memory from the data plane.
public struct AdminLimits: Sendable {
    /// Connections open at once; beyond it a new one is closed as soon as it is accepted (and counted).
    public var maxConnections: Int
    /// A connection with nothing read or written for this long is closed (and counted).
    public var idleTimeout: Duration

    public init(maxConnections: Int, idleTimeout: Duration) {
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
    }

    public static let standard = AdminLimits(maxConnections: 64, idleTimeout: .seconds(10))

    /// Descriptors the endpoint may hold at most: its connections, its listening socket, and its event loop's
    /// epoll, eventfd and timerfd. `Proxy` keeps them out of the data plane's share of the open-files limit.
    public var descriptors: Int { maxConnections + 4 }
}

/// The admin endpoint's own counts, shown in `/metrics`.
final class AdminCounters: Sendable {
    let open = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let idleClosed = Atomic<Int>(0)
    let unauthorized = Atomic<Int>(0)

    /// Takes one of `limit` connection places; false (and counted) when all are taken.
    func admit(limit: Int) -> Bool {
        while true {
            let current = open.load(ordering: .relaxed)
            guard current < limit else {
                rejected.add(1, ordering: .relaxed)
                return false
            }
            if open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged { return true }
        }
    }

    func release() { open.subtract(1, ordering: .relaxed) }
}
