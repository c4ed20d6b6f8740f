/// Least connections: the backend with the fewest open connections per unit of weight, counted over all
/// workers from the shared load table. Backends tied for least load share by smooth weighted round robin
/// (as nginx's least_conn does), so short connections that leave every backend idle still follow the weights.
public final class LeastConnections: SelectionStrategy {
    private var ties: SmoothScores
    /// The loads read in this pick (-1: not available), so both passes see the same numbers.
    private let loads: FixedArray<Int>
    private let count: Int

    public init(pool: BackendPool) {
        count = pool.count
        ties = SmoothScores(count: count)
        loads = FixedArray(repeating: 0, count: count)
    }

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        for _ in 0..<max(1, min(count, BackendSet.capacity)) {
            // The least load per unit of weight, cross-multiplied: load/weight < best/bestWeight.
            var leastLoad = -1, leastWeight = 1
            for member in 0..<count {
                guard candidates.isAvailable(member) else {
                    loads[member] = -1
                    continue
                }
                let load = candidates.load(member)
                loads[member] = load
                if leastLoad < 0 || load * leastWeight < leastLoad * candidates.weight(member) {
                    leastLoad = load
                    leastWeight = candidates.weight(member)
                }
            }
            guard leastLoad >= 0 else { return nil }
            let tied = { (member: Int) in
                self.loads[member] >= 0 && self.loads[member] * leastWeight == leastLoad * candidates.weight(member)
            }
            guard let best = ties.next(among: count, tied, weight: { candidates.weight($0) }) else { return nil }
            if candidates.claim(best) { return best }
        }
        return nil
    }
}
