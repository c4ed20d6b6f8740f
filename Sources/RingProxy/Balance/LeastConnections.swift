/// Least connections: the backend with the fewest open connections per unit of weight, counted over all
/// workers from the shared load table. Ties go round in turn, so an idle pool still spreads.
public final class LeastConnections: SelectionStrategy {
    private var nextStart = 0

    public init() {}

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        guard candidates.count > 0 else { return nil }
        nextStart = (nextStart + 1) % candidates.count
        return candidates.leastLoaded(from: nextStart)
    }
}
