extension RuntimePlan {
    /// What the health checker probes under this plan: each backend once, whether a listener's pool or one of
    /// its routes' pools holds it (a backend in two pools is two rows, each checked).
    var healthTargets: [HealthTarget] {
        var seen = Set<BackendID>()
        return listeners.flatMap { listener in
            listener.pools.flatMap { pool, prefix in
                pool.members.compactMap { member in
                    guard seen.insert(member.id).inserted else { return nil }
                    return HealthTarget(id: member.id, name: "\(prefix)/\(member.name)", address: member.address, policy: pool.health)
                }
            }
        }
    }
}

extension RuntimePlan {
    /// The pool called `name`: a listener's own or one its routes use.
    func pool(named name: String) -> BackendPool? {
        for listener in listeners {
            if let (pool, _) = listener.pools.first(where: { $0.pool.name == name }) { return pool }
        }
        return nil
    }
}
