/// Weighted random choice: backend i is picked with probability weight(i) / total weight. Stateless, so
/// every worker picks independently with no shared writes; weight 0 means "no new connections".
public struct WeightedRandom: Sendable {
    public init() {}

    @inline(__always)
    public func pick(from pool: BackendPool, excluding tried: BackendSet, random: inout FastRandom) -> Int? {
        if tried.isEmpty {
            guard pool.totalWeight > 0 else { return nil }
            return Self.owner(of: random.below(pool.totalWeight), in: pool.cumulativeWeights)
        }
        // A retry: draw among the backends not tried yet.
        var remaining = 0
        for backend in 0..<pool.count where !tried.contains(backend) { remaining += pool.backends[backend].weight }
        guard remaining > 0 else { return nil }
        var ticket = random.below(remaining)
        for backend in 0..<pool.count where !tried.contains(backend) {
            ticket -= pool.backends[backend].weight
            if ticket < 0 { return backend }
        }
        return nil
    }

    /// The backend whose cumulative-weight range holds `ticket` (binary search).
    @inline(__always)
    static func owner(of ticket: Int, in cumulative: [Int]) -> Int {
        var low = 0, high = cumulative.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] > ticket { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
