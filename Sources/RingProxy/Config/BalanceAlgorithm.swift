/// How a pool spreads new connections over its backends.
public enum BalanceAlgorithm: String, CaseIterable, Sendable {
    /// A random backend, with probability weight / total weight. Stateless and contention-free.
    case weightedRandom = "weighted-random"
    /// Smooth weighted round robin (nginx's): exact proportions, evenly interleaved, per worker.
    case roundRobin = "round-robin"
    /// The backend with the fewest open connections per unit of weight.
    case leastConnections = "least-conn"
    /// Two weighted random picks; the less loaded one wins ("power of two choices").
    case powerOfTwoChoices = "p2c"
    /// Consistent hashing of the client's IP address: a client sticks to its backend while the pool holds.
    case sourceHash = "source-hash"

    public static let `default` = BalanceAlgorithm.powerOfTwoChoices
}
