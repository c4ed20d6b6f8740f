import RingDNS

/// The timing rules of discovery, from the configuration (milliseconds).
struct DNSPolicy: Equatable {
    var minTTL: Int64
    var maxTTL: Int64
    var hold: Int64

    init(minTTL: Int64, maxTTL: Int64, hold: Int64) {
        self.minTTL = minTTL
        self.maxTTL = maxTTL
        self.hold = hold
    }

    init(_ config: ProxyConfig) {
        self.init(minTTL: config.dnsMinTTL.milliseconds, maxTTL: config.dnsMaxTTL.milliseconds, hold: config.dnsHold.milliseconds)
    }

    /// How long an answer with `ttl` seconds is kept: the TTL within [dns_min_ttl, dns_max_ttl].
    func keep(ttl: Int) -> Int64 { min(maxTTL, max(minTTL, Int64(ttl) * 1000)) }
}

/// One followed name: its last good set and when to ask again. A plain value that takes answers and says
/// what they did, so the rules (TTL clamping, a failing resolver keeps the set, an empty answer empties it
/// only after `dns_hold`) are unit-tested without a resolver or a clock.
struct DNSRecordState: Equatable {
    enum Outcome: Equatable {
        /// A new set (the targets differ, in any order).
        case changed
        case unchanged
        /// No answer (timeout, SERVFAIL, unreachable): the last good set stays.
        case failed(String)
        /// The name is gone or empty, but less than `dns_hold` ago: the last good set stays.
        case holding(String)
        /// The name has been gone or empty for `dns_hold`: the set is now empty.
        case emptied(String)

        var changesTheSet: Bool {
            switch self {
            case .changed, .emptied: true
            case .unchanged, .failed, .holding: false
            }
        }
    }

    private(set) var targets: [DNSTarget]
    /// When to ask again (monotonic milliseconds).
    private(set) var due: Int64
    /// Since when every answer has been empty while the set was not.
    private(set) var emptySince: Int64?

    /// A name whose set is `targets` (from the configuration's first resolution), asked again after the
    /// shortest TTL: that answer's TTL is not carried with the configuration.
    init(targets: [DNSTarget], now: Int64, policy: DNSPolicy) {
        self.targets = targets
        due = now + policy.minTTL
    }

    mutating func apply(_ answer: DNSAnswer<DNSTarget>, now: Int64, policy: DNSPolicy) -> Outcome {
        switch answer {
        case .found(let found, let ttl):
            due = now + policy.keep(ttl: ttl)
            emptySince = nil
            guard Set(found) != Set(targets) else { return .unchanged }
            targets = found
            return .changed
        case .failed(let reason):
            due = now + policy.minTTL
            return .failed(reason)
        case .none(let reason):
            due = now + policy.minTTL
            guard !targets.isEmpty else { return .unchanged }
            let since = emptySince ?? now
            if now - since >= policy.hold {
                targets = []
                emptySince = nil
                return .emptied(reason)
            }
            emptySince = since
            due = min(due, since + policy.hold)
            return .holding(reason)
        }
    }
}
