/// Source hash: consistent hashing of the client's IP address, so a client keeps reaching the same backend
/// while the pool is unchanged, and a change of pool moves only the clients it must. A client whose backend
/// is down or full goes to the next backend round the ring (and comes back when it recovers).
public final class SourceHash: SelectionStrategy {
    public init() {}

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        guard let ring = candidates.pool.hashRing, ring.pointCount > 0 else { return nil }
        var point = ring.firstPoint(atOrAfter: candidates.clientKey)
        var offered = BackendSet()
        // Walk the circle until a backend takes the client; each backend is offered once.
        for _ in 0..<ring.pointCount {
            let member = ring.owner(of: point)
            let id = candidates.pool.ids[member]
            if !offered.contains(id) {
                if candidates.offer(member) { return member }
                offered.insert(id)
                if offered.count == BackendSet.capacity { break }
            }
            point = point + 1 == ring.pointCount ? 0 : point + 1
        }
        return candidates.drawAmongAvailable(random: &random)
    }
}
