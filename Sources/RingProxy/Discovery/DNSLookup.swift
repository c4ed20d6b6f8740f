import RingDNS

/// One query on a `DNSChannel`, answered as backend targets: an address lookup, or an SRV lookup followed by
/// an address lookup per target (the answer's TTL is then the smallest of them all).
enum DNSLookup {
    /// c-ares' bounds on one lookup: two tries of 2 s each (per server).
    static let timeoutMilliseconds = 2000
    static let tries = 2

    static func start(_ query: DNSQuery, on channel: DNSChannel, _ done: @escaping (DNSAnswer<DNSTarget>) -> Void) {
        let family = DNSTargets.family(query.mode)
        switch query.kind {
        case .address:
            channel.lookupAddresses(query.name, family: family) { answer in
                switch answer {
                case .found(let addresses, let ttl):
                    let targets = DNSTargets.addresses(addresses, port: query.port, mode: query.mode)
                    done(targets.isEmpty ? .none("no \(query.mode) address") : .found(targets, ttl: ttl))
                case .none(let reason): done(.none(reason))
                case .failed(let reason): done(.failed(reason))
                }
            }
        case .srv:
            channel.lookupSRV(query.name) { answer in
                switch answer {
                case .found(let records, let ttl): resolveTargets(records, ttl: ttl, query: query, on: channel, done)
                case .none(let reason): done(.none(reason))
                case .failed(let reason): done(.failed(reason))
                }
            }
        }
    }

    /// The addresses of each SRV target; a target that fails to answer fails the whole set (its last good
    /// set stays), one that does not exist only contributes nothing.
    private static func resolveTargets(_ records: [SRVRecord], ttl: Int, query: DNSQuery, on channel: DNSChannel,
                                       _ done: @escaping (DNSAnswer<DNSTarget>) -> Void) {
        let names = Array(Set(records.map(\.target)))
        var addresses: [String: [SocketAddress]] = [:]
        var failure: String?
        var smallestTTL = ttl
        var remaining = names.count
        for name in names {
            channel.lookupAddresses(name, family: DNSTargets.family(query.mode)) { answer in
                switch answer {
                case .found(let found, let targetTTL):
                    addresses[name] = found
                    smallestTTL = min(smallestTTL, targetTTL)
                case .none: break
                case .failed(let reason): failure = "SRV target \(name): \(reason)"
                }
                remaining -= 1
                guard remaining == 0 else { return }
                if let failure { return done(.failed(failure)) }
                let targets = DNSTargets.service(records, addresses: addresses, mode: query.mode)
                done(targets.isEmpty ? .none("no SRV target has an address") : .found(targets, ttl: smallestTTL))
            }
        }
    }

    /// Answers `queries` now, all at once, on a channel of the caller's (start-up and reloads: not a worker).
    static func resolveNow(_ queries: [DNSQuery], resolvers: [String]?) throws(DNSChannelError) -> [DNSQuery: DNSAnswer<DNSTarget>] {
        let channel = try DNSChannel(servers: resolvers, timeoutMilliseconds: timeoutMilliseconds, tries: tries)
        var answers: [DNSQuery: DNSAnswer<DNSTarget>] = [:]
        for query in queries { start(query, on: channel) { answers[query] = $0 } }
        channel.finish()
        return answers
    }
}
