/// Power of two choices: two weighted random picks, and the less loaded (per unit of weight) takes the
/// connection. Nearly as even as least connections, at the cost of two loads instead of a scan, and it does
/// not herd every worker onto the same momentarily idle backend.
public final class PowerOfTwoChoices: SelectionStrategy {
    public init() {}

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        let pool = candidates.pool
        if pool.totalWeight > 0 {
            let first = pool.owner(ofTicket: random.below(pool.totalWeight))
            let second = pool.owner(ofTicket: random.below(pool.totalWeight))
            let firstUp = candidates.isAvailable(first), secondUp = candidates.isAvailable(second)
            if firstUp && secondUp {
                // Cross-multiplied: load(first)/weight(first) <= load(second)/weight(second).
                let firstWins = candidates.load(first) * candidates.weight(second)
                    <= candidates.load(second) * candidates.weight(first)
                let (preferred, other) = firstWins ? (first, second) : (second, first)
                if candidates.claim(preferred) { return preferred }
                if candidates.offer(other) { return other }
            } else if firstUp || secondUp {
                let only = firstUp ? first : second
                if candidates.claim(only) { return only }
            }
        }
        return candidates.drawAmongAvailable(random: &random)
    }
}
