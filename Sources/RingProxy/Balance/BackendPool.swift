import Glibc

/// An immutable snapshot of one pool's backends, with their socket addresses in stable memory so a
/// connect submission can point at them, and the load table the workers share for it.
public final class BackendPool: @unchecked Sendable {
    public let backends: [ProxyConfig.Backend]
    public let table: BackendTable
    /// Running sums of the weights: backend i owns the range cumulativeWeights[i-1] ..< cumulativeWeights[i].
    let cumulativeWeights: [Int]
    public let totalWeight: Int
    private let addresses: UnsafeMutablePointer<sockaddr_storage>

    public init(backends: [ProxyConfig.Backend], shards: Int) {
        self.backends = backends
        table = BackendTable(backends: backends.count, shards: shards)
        var running = 0
        cumulativeWeights = backends.map { backend in
            running += backend.weight
            return running
        }
        totalWeight = running
        addresses = .allocate(capacity: max(1, backends.count))
        for (index, backend) in backends.enumerated() {
            (addresses + index).initialize(to: sockaddr_storage())
            backend.address.withSockaddr { address, length in
                UnsafeMutableRawPointer(addresses + index).copyMemory(from: address, byteCount: Int(length))
            }
        }
    }

    deinit { addresses.deallocate() }

    public var count: Int { backends.count }

    @inline(__always)
    func sockaddr(of backend: Int) -> UnsafePointer<sockaddr> {
        UnsafeRawPointer(addresses + backend).assumingMemoryBound(to: Glibc.sockaddr.self)
    }

    @inline(__always)
    func addressLength(of backend: Int) -> socklen_t { backends[backend].address.length }

    @inline(__always)
    func family(of backend: Int) -> Int32 { backends[backend].address.family }
}
