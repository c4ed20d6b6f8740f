/// One balancing algorithm: it offers a pool's backends for a new connection, most preferred first, and the
/// caller's `Candidates` takes the first that is available (up, below its limit, not tried yet). A strategy
/// never has to know why a backend was refused: it just offers the next one.
///
/// A worker holds one instance per pool, so a stateful strategy (round robin) keeps per-worker state
/// without sharing writes across workers.
public protocol SelectionStrategy: AnyObject {
    /// Offers members of `candidates.pool` until one is claimed; returns its index, or nil when none is.
    func select(_ candidates: inout Candidates, random: inout FastRandom) -> Int?
}

extension BalanceAlgorithm {
    /// A new instance of this algorithm for `pool`.
    public func makeStrategy(for pool: BackendPool) -> any SelectionStrategy {
        switch self {
        case .weightedRandom: WeightedRandom()
        case .roundRobin: SmoothRoundRobin(pool: pool)
        case .leastConnections: LeastConnections(pool: pool)
        case .powerOfTwoChoices: PowerOfTwoChoices()
        case .sourceHash: SourceHash()
        }
    }
}

/// The backends one new connection may go to, and the claim that takes one: what every strategy consults.
public struct Candidates {
    public let pool: BackendPool
    let table: BackendTable
    /// Backends this connection already tried (a retry goes elsewhere).
    let tried: BackendSet
    /// The hash of the client's address, for `source-hash`.
    public let clientKey: UInt64
    let now: Int64
    /// The pool's slow start in milliseconds (0: off), read once per pick.
    private let slowStart: Int64
    /// Backends whose claim failed during this pick (a race with another worker).
    private var refused = BackendSet()
    /// The claimed backend is down and this connection is its trial: report how the connect went.
    public private(set) var isTrial = false

    public init(pool: BackendPool, table: BackendTable, tried: BackendSet = BackendSet(), clientKey: UInt64 = 0,
                now: Int64 = monotonicMilliseconds()) {
        self.pool = pool
        self.table = table
        self.tried = tried
        self.clientKey = clientKey
        self.now = now
        slowStart = pool.slowStartMilliseconds
    }

    @inline(__always) public var count: Int { pool.count }

    /// `member`'s weight as balancing uses it now: its weight, or with `slow_start` (then in 1/1024ths, the same
    /// for every member of the pool) its weight ramped since it came back or joined. Strategies compare and sum
    /// only these within one pick, so the scale cancels out; without slow start a pick costs what it did.
    @inline(__always)
    public func weight(_ member: Int) -> Int {
        guard slowStart > 0 else { return pool.weights[member] }
        let full = pool.weights[member] &* SlowStart.scale
        return SlowStart.weight(full: full, rampStart: table.health(of: pool.ids[member]).rampStart, now: now, duration: slowStart)
    }

    /// For draws over the pool's static tickets (weighted random, p2c): keeps a draw of `member` with the
    /// probability its ramp allows (effective over full weight), so that a ramping backend is drawn in
    /// proportion to its effective weight. Always true outside a ramp.
    @inline(__always)
    public func keepsDraw(_ member: Int, random: inout FastRandom) -> Bool {
        guard slowStart > 0 else { return true }
        let full = pool.weights[member] &* SlowStart.scale
        let effective = weight(member)
        return effective >= full || random.below(full) < effective
    }

    /// Connections open to `member` now, over all workers.
    @inline(__always)
    public func load(_ member: Int) -> Int { table.sum(.active, backend: pool.ids[member]) }

    /// Whether `member` could take this connection (nothing is claimed).
    @inline(__always)
    public func isAvailable(_ member: Int) -> Bool {
        let id = pool.ids[member]
        guard pool.weights[member] > 0, !tried.contains(id), !refused.contains(id) else { return false }
        let health = table.health(of: id)
        let limit = pool.limits[member]
        return health.isAvailable(now: now, activeChecks: pool.hasActiveChecks) && (limit == 0 || health.reserved < limit)
    }

    /// Takes `member` for this connection: its `max_connections` slot and, when it is down, its trial.
    /// False (and `member` is not offered again) when another worker got there first.
    @inline(__always)
    public mutating func claim(_ member: Int) -> Bool {
        let id = pool.ids[member]
        let health = table.health(of: id)
        let limit = pool.limits[member]
        if limit > 0 && !health.reserve(limit: limit) {
            refused.insert(id)
            return false
        }
        var trial = false
        guard health.claim(now: now, activeChecks: pool.hasActiveChecks, isTrial: &trial) else {
            if limit > 0 { health.unreserve() }
            refused.insert(id)
            return false
        }
        isTrial = trial
        return true
    }

    /// Offers `member` when it is available; true when it was claimed.
    @inline(__always)
    public mutating func offer(_ member: Int) -> Bool { isAvailable(member) && claim(member) }

    /// The fall-through every strategy ends with: a weighted random draw among the available members,
    /// repeated while claims fail.
    public mutating func drawAmongAvailable(random: inout FastRandom) -> Int? {
        for _ in 0..<max(1, min(count, BackendSet.capacity)) {
            var total = 0
            for member in 0..<count where isAvailable(member) { total += weight(member) }
            guard total > 0 else { return nil }
            var ticket = random.below(total)
            for member in 0..<count where isAvailable(member) {
                ticket -= weight(member)
                if ticket < 0 {
                    if claim(member) { return member }
                    break
                }
            }
        }
        return nil
    }
}
