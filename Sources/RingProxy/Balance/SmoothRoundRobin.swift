/// Smooth weighted round robin (nginx's algorithm): each pick adds every backend's weight to its running
/// score, takes the highest and charges it the total. Over any run of total-weight picks each backend is
/// chosen exactly weight times, evenly interleaved (5:1:1 gives a a b a c a a, not a a a a a b c).
///
/// The scores are this worker's own, so workers never contend; the proportions are exact per worker.
public final class SmoothRoundRobin: SelectionStrategy {
    private var scores: SmoothScores

    public init(pool: BackendPool) { scores = SmoothScores(count: pool.count) }

    public func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int? {
        for _ in 0..<max(1, min(candidates.count, BackendSet.capacity)) {
            guard let best = scores.next(among: candidates.count, { candidates.isAvailable($0) }, weight: { candidates.weight($0) })
            else { return nil }
            if candidates.claim(best) { return best }
        }
        return nil
    }
}

/// The running scores of smooth weighted round robin, for round robin itself and for least-conn's ties.
struct SmoothScores: ~Copyable {
    private let scores: FixedArray<Int>

    init(count: Int) { scores = FixedArray(repeating: 0, count: count) }

    /// The next of the members `included` picks, by their weights; nil when none is.
    @inline(__always)
    mutating func next(among count: Int, _ included: (Int) -> Bool, weight: (Int) -> Int) -> Int? {
        var best = -1, total = 0
        for member in 0..<count where included(member) {
            scores[member] += weight(member)
            total += weight(member)
            if best < 0 || scores[member] > scores[best] { best = member }
        }
        guard best >= 0 else { return nil }
        scores[best] -= total
        return best
    }
}
