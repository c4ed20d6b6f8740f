/// Gives each backend its row in the `BackendTable`, and the same row again after a reload that keeps it
/// (same pool, same address), so its counters and health carry on. Rows are never reused: the table is
/// sized for every backend the process will see, and a reload that would need more is refused.
///
/// Used only by the control plane (start-up and reloads, one at a time).
final class BackendRegistry {
    private struct Key: Hashable {
        let pool: String
        let address: SocketAddress
    }

    let table: BackendTable
    private var rows: [Key: BackendID] = [:]

    init(table: BackendTable) { self.table = table }

    var used: Int { rows.count }

    /// The rows `listeners` need that do not exist yet.
    func newRows(for listeners: [ProxyConfig.Listener]) -> Int {
        Set(listeners.flatMap { listener in
            listener.backends.map { Key(pool: listener.rowKey, address: $0.address) }
                + (listener.routing?.routes ?? []).flatMap { route in
                    route.pool.backends.map { Key(pool: route.pool.rowKey, address: $0.address) }
                }
        }).subtracting(rows.keys).count
    }

    /// The row of `backend` in pool `pool`, taking a fresh one the first time. The caller checked there is room.
    func id(pool: String, backend: ProxyConfig.Backend) -> BackendID {
        let key = Key(pool: pool, address: backend.address)
        if let id = rows[key] { return id }
        precondition(rows.count < table.capacity, "backend table full")
        let id = BackendID(rows.count)
        rows[key] = id
        return id
    }
}
