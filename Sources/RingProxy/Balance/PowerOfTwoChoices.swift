/// Power of two choices: two weighted random picks of different backends, and the less loaded (per unit of
/// weight) takes the connection. Nearly as even as least connections at the cost of two loads instead of a
/// scan, and it does not herd every worker onto the same momentarily idle backend.
public final class PowerOfTwoChoices: SelectionStrategy {
    public init() {}

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        let pool = candidates.pool
        if pool.count >= 2, pool.totalWeight > 0 {
            let first = pool.owner(ofTicket: random.below(pool.totalWeight))
            let second = secondDraw(excluding: first, pool, &random)
            let firstUp = candidates.isAvailable(first) && candidates.keepsDraw(first, random: &random)
            let secondUp = second.map { candidates.isAvailable($0) && candidates.keepsDraw($0, random: &random) } ?? false
            if let second, firstUp && secondUp {
                // Cross-multiplied: load(first)/weight(first) <= load(second)/weight(second).
                let firstWins = candidates.load(first) * candidates.weight(second)
                    <= candidates.load(second) * candidates.weight(first)
                let (preferred, other) = firstWins ? (first, second) : (second, first)
                if candidates.claim(preferred) { return preferred }
                if candidates.offer(other) { return other }
            } else if firstUp || secondUp {
                let only = firstUp ? first : second!
                if candidates.claim(only) { return only }
            }
        }
        return candidates.drawAmongAvailable(random: &random)
    }

    /// A weighted draw among the members other than `first`: a ticket over the other weights, stepped over
    /// `first`'s range.
    private func secondDraw(excluding first: Int, _ pool: BackendPool, _ random: inout FastRandom) -> Int? {
        let others = pool.totalWeight - pool.weights[first]
        guard others > 0 else { return nil }
        var ticket = random.below(others)
        let firstStart = pool.cumulativeWeights[first] - pool.weights[first]
        if ticket >= firstStart { ticket += pool.weights[first] }
        return pool.owner(ofTicket: ticket)
    }
}
