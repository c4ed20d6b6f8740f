/// A consistent-hash ring (ketama-style): each backend owns points on a 64-bit circle, as many as its
/// weight times `pointsPerWeight`; a key belongs to the first point at or after its hash. Adding one backend
/// to N takes about 1/(N+1) of the keys, all to the new one; removing one moves only its own keys.
///
/// Points are placed by hashing the backend's name, so the ring is the same on every worker, after every
/// restart, and whatever order the backends are listed in.
final class HashRing: @unchecked Sendable {
    /// Enough points that shares come within a few percent of the weights; fewer for huge pools.
    static let pointsPerWeight = 160
    static let maximumPoints = 1 << 20

    let pointCount: Int
    private let hashes: FixedArray<UInt64>
    private let owners: FixedArray<Int32>

    init(members: [BackendPool.Member]) {
        let totalWeight = members.reduce(0) { $0 + $1.weight }
        let perWeight = max(1, min(Self.pointsPerWeight, Self.maximumPoints / max(1, totalWeight)))
        var points: [(hash: UInt64, owner: Int32)] = []
        points.reserveCapacity(totalWeight * perWeight)
        for (index, member) in members.enumerated() {
            for replica in 0..<(member.weight * perWeight) {
                points.append((stableHash(Array("\(member.name)#\(replica)".utf8)), Int32(index)))
            }
        }
        points.sort { $0.hash < $1.hash || ($0.hash == $1.hash && $0.owner < $1.owner) }
        pointCount = points.count
        hashes = FixedArray(points.map(\.hash))
        owners = FixedArray(points.map(\.owner))
    }

    /// The first point at or after `hash`, wrapping round the circle.
    @inline(__always)
    func firstPoint(atOrAfter hash: UInt64) -> Int {
        var low = 0, high = pointCount
        while low < high {
            let middle = (low + high) / 2
            if hashes[middle] < hash { low = middle + 1 } else { high = middle }
        }
        return low == pointCount ? 0 : low
    }

    /// The pool member that owns `point`.
    @inline(__always)
    func owner(of point: Int) -> Int { Int(owners[point]) }
}

/// A 64-bit hash that is the same in every process and on every run (FNV-1a, then a finalising mix so that
/// similar inputs spread over the whole circle).
func stableHash<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return mix64(hash)
}

/// splitmix64's finaliser: every input bit affects every output bit.
@inline(__always)
func mix64(_ value: UInt64) -> UInt64 {
    var z = value
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
