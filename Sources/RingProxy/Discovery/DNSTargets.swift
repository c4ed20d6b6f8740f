import Glibc
import RingDNS

/// How answers become backends: which addresses a `resolve` mode keeps, SRV records' ports and weights. Pure
/// functions, so the unit tests check them without a resolver.
enum DNSTargets {
    /// The addresses of an address query, in a stable order (by family, then bytes), with its port.
    static func addresses(_ found: [SocketAddress], port: UInt16, mode: ResolveMode) -> [DNSTarget] {
        let kept: [SocketAddress]
        switch mode {
        case .all: kept = found
        case .ipv4: kept = found.filter { $0.family == AF_INET }
        case .ipv6: kept = found.filter { $0.family == AF_INET6 }
        case .first: kept = (found.first { $0.family == AF_INET } ?? found.first).map { [$0] } ?? []
        }
        return sorted(kept).map { DNSTarget(address: $0.withPort(port)) }
    }

    /// The records of the lowest priority (RFC 2782: the others are for when those fail, which health checks
    /// and retries handle here), each target's addresses at the record's port, weighted by the record.
    static func service(_ records: [SRVRecord], addresses: [String: [SocketAddress]], mode: ResolveMode) -> [DNSTarget] {
        guard let priority = records.map(\.priority).min() else { return [] }
        var targets: [DNSTarget] = []
        for record in records where record.priority == priority {
            // RFC 2782's weight 0 means "rarely": the smallest weight that still takes connections.
            let weight = min(ProxyConfig.Limits.weight.upperBound, max(1, Int(record.weight)))
            for target in self.addresses(addresses[record.target] ?? [], port: record.port, mode: mode)
            where !targets.contains(where: { $0.address == target.address }) {
                targets.append(DNSTarget(address: target.address, weight: weight))
            }
        }
        return targets
    }

    /// The address family to ask for in `mode`.
    static func family(_ mode: ResolveMode) -> Int32 {
        switch mode {
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        case .all, .first: AF_UNSPEC
        }
    }

    private static func sorted(_ addresses: [SocketAddress]) -> [SocketAddress] {
        addresses.sorted { left, right in
            left.family != right.family ? left.family < right.family : left.addressBytes.lexicographicallyPrecedes(right.addressBytes)
        }
    }
}
