import Glibc

/// An immutable pool: the backends of one listener, their weights and limits, and their socket addresses
/// in stable memory for connect submissions. A reload builds a new pool; connections keep their backend.
public final class BackendPool: @unchecked Sendable {
    public struct Member: Sendable, Equatable {
        public var id: BackendID
        /// As the operator wrote it (`db1.internal:5432`), for logs and metrics.
        public var name: String
        public var address: SocketAddress
        public var weight: Int
        /// Open connections at most; 0 for no limit.
        public var maxConnections: Int
        /// The weight its source gave (the file or DNS); `weight` differs when the operator overrode it at runtime.
        public var configuredWeight: Int
        /// Where the address came from: "file", or the DNS name that resolved to it.
        public var origin: String

        public init(id: BackendID, name: String, address: SocketAddress, weight: Int, maxConnections: Int,
                    configuredWeight: Int? = nil, origin: String = "file") {
            self.id = id
            self.name = name
            self.address = address
            self.weight = weight
            self.maxConnections = maxConnections
            self.configuredWeight = configuredWeight ?? weight
            self.origin = origin
        }
    }

    public let name: String
    public let members: [Member]
    public let algorithm: BalanceAlgorithm
    public let health: HealthPolicy
    public let count: Int
    public let totalWeight: Int
    /// `health.slow_start` in milliseconds (0: off), read per pick to ramp a backend's effective weight.
    let slowStartMilliseconds: Int64
    /// Whether active health checks are on (then they alone bring a down backend back), read per pick.
    let hasActiveChecks: Bool
    /// The hot per-member fields, in fixed arrays (no array bounds checks or reference counting per pick).
    let ids: FixedArray<BackendID>
    let weights: FixedArray<Int>
    let limits: FixedArray<Int>
    /// Running sums of the weights: member i owns the tickets cumulativeWeights[i-1] ..< cumulativeWeights[i].
    let cumulativeWeights: FixedArray<Int>
    /// The members' addresses, for connect submissions.
    let addresses: FixedArray<SocketAddress>
    /// The consistent-hash ring, for `source-hash` pools.
    let hashRing: HashRing?

    public init(name: String, members: [Member], algorithm: BalanceAlgorithm, health: HealthPolicy) {
        self.name = name
        self.members = members
        self.algorithm = algorithm
        self.health = health
        slowStartMilliseconds = health.slowStart.milliseconds
        hasActiveChecks = health.checks != nil
        count = members.count
        ids = FixedArray(members.map(\.id))
        weights = FixedArray(members.map(\.weight))
        limits = FixedArray(members.map(\.maxConnections))
        var running = 0
        cumulativeWeights = FixedArray(members.map { member in
            running += member.weight
            return running
        })
        addresses = FixedArray(members.map(\.address))
        totalWeight = running
        hashRing = algorithm == .sourceHash ? HashRing(members: members) : nil
    }

    @inline(__always)
    func family(of member: Int) -> Int32 { members[member].address.family }

    /// The member whose cumulative-weight range holds `ticket` (binary search).
    @inline(__always)
    func owner(ofTicket ticket: Int) -> Int {
        var low = 0, high = count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulativeWeights[middle] > ticket { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// The member index of `id`, if it is in this pool.
    public func index(of id: BackendID) -> Int? {
        (0..<count).first { ids[$0] == id }
    }
}
