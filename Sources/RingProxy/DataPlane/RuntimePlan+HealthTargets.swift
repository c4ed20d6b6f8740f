extension RuntimePlan {
    /// What the health checker probes under this plan: each backend once (a backend in two pools is two
    /// rows, each checked), or nothing when active checks are off.
    var healthTargets: [HealthTarget] {
        var seen = Set<BackendID>()
        return listeners.flatMap { listener in
            listener.pool.members.compactMap { member in
                guard seen.insert(member.id).inserted else { return nil }
                return HealthTarget(id: member.id, name: "\(listener.name)/\(member.name)", address: member.address, policy: listener.pool.health)
            }
        }
    }
}
