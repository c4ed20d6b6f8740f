/// Weighted random: backend i gets a new connection with probability weight(i) / total weight. Stateless, so
/// every worker picks independently with no shared writes.
public final class WeightedRandom: SelectionStrategy {
    public init() {}

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        let pool = candidates.pool
        // One draw over the whole pool (a binary search); only when it lands on a backend that is down,
        // full or already tried does the pick look at every backend.
        if pool.totalWeight > 0 {
            let first = pool.owner(ofTicket: random.below(pool.totalWeight))
            if candidates.keepsDraw(first, random: &random), candidates.offer(first) { return first }
        }
        return candidates.drawAmongAvailable(random: &random)
    }
}
