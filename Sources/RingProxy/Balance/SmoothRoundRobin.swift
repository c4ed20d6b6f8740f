/// Smooth weighted round robin (nginx's algorithm): each pick adds every backend's weight to its running
/// score, takes the highest and charges it the total. Over any run of total-weight picks each backend is
/// chosen exactly weight times, evenly interleaved (5:1:1 gives a a b a c a a, not a a a a a b c).
///
/// The scores are this worker's own, so workers never contend; the proportions are exact per worker.
public final class SmoothRoundRobin: SelectionStrategy {
    private let scores: UnsafeMutablePointer<Int>
    private let count: Int

    public init(pool: BackendPool) {
        count = pool.count
        scores = .allocate(capacity: max(1, count))
        scores.initialize(repeating: 0, count: max(1, count))
    }

    deinit { scores.deallocate() }

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        for _ in 0..<max(1, min(count, BackendSet.capacity)) {
            var best = -1
            var total = 0
            for member in 0..<count where candidates.isAvailable(member) {
                scores[member] += candidates.weight(member)
                total += candidates.weight(member)
                if best < 0 || scores[member] > scores[best] { best = member }
            }
            guard best >= 0 else { return nil }
            scores[best] -= total
            if candidates.claim(best) { return best }
        }
        return nil
    }
}
