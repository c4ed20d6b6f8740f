import CURing
import Glibc
import Logging
import RingDNS

/// What discovery has done for one name, for `/metrics`.
public struct DNSNameStats: Sendable, Equatable {
    /// Lookups answered (found, empty or failed).
    public var queries = 0
    /// Lookups with no answer (timeout, SERVFAIL, unreachable resolver).
    public var failures = 0
    /// New address sets published.
    public var changes = 0
    /// Addresses in the set now.
    public var addresses = 0
}

/// What the control plane and the discovery thread share, behind a lock.
private struct DiscoveryShared {
    /// A configuration published since the thread last looked (a reload).
    var config: ProxyConfig?
    var stopping = false
    var stats: [DNSQuery: DNSNameStats] = [:]
}

/// DNS discovery: one control thread (never a worker) with its own c-ares channel follows every backend name
/// of the running configuration, asks again when an answer's TTL (clamped) runs out, and hands each changed
/// set to `publish`, which makes a new plan the way a reload does. The thread blocks only in poll on the
/// channel's sockets and an eventfd that a reload or stop writes.
final class Discovery: @unchecked Sendable {
    private let wake: Int32
    private let shared: Locked<DiscoveryShared>
    private var thread = pthread_t()

    init?(config: ProxyConfig, logger: Logger, publish: @escaping @Sendable ([DNSQuery: [DNSTarget]]) -> Void) {
        wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wake >= 0 else {
            logger.error("DNS discovery is off: no eventfd", metadata: ["errno": "\(errnoName(errno))"])
            return nil
        }
        let shared = Locked(DiscoveryShared(config: config))
        self.shared = shared
        let started = WorkerThread.start(name: "ringproxy-dns", cpu: nil) { [wake] in
            var loop = DiscoveryLoop(wake: wake, shared: shared, logger: logger, publish: publish)
            loop.run()
        }
        guard case .success(let thread) = started else {
            Glibc.close(wake)
            logger.error("DNS discovery is off: cannot start its thread")
            return nil
        }
        self.thread = thread
    }

    /// Follows the names of `config` from now on (after a reload), starting from its sets.
    func follow(_ config: ProxyConfig) {
        shared.withLock { $0.config = config }
        signal()
    }

    var stats: [DNSQuery: DNSNameStats] { shared.withLock { $0.stats } }

    func stop() {
        shared.withLock { $0.stopping = true }
        signal()
        WorkerThread.join(thread)
        Glibc.close(wake)
    }

    private func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }
}

/// The discovery thread's state: the channel, each name's record state, the lookups in flight.
private struct DiscoveryLoop {
    /// Answers delivered by the channel's callbacks (which run inside `wait`, on this thread).
    private final class Inbox {
        var answers: [(query: DNSQuery, channel: Int, answer: DNSAnswer<DNSTarget>)] = []
    }

    let wake: Int32
    let shared: Locked<DiscoveryShared>
    let logger: Logger
    let publish: @Sendable ([DNSQuery: [DNSTarget]]) -> Void
    private var channel: DNSChannel?
    /// Bumped with each new channel, so that answers of a channel replaced (its resolvers changed) are ignored.
    private var channelNumber = 0
    private var resolvers: [String]?
    private var policy = DNSPolicy(minTTL: 1000, maxTTL: 300_000, hold: 30_000)
    private var states: [DNSQuery: DNSRecordState] = [:]
    private var inFlight = Set<DNSQuery>()
    /// Names whose last lookup failed (logged once, until they answer again).
    private var failing = Set<DNSQuery>()
    private let inbox = Inbox()

    init(wake: Int32, shared: Locked<DiscoveryShared>, logger: Logger, publish: @escaping @Sendable ([DNSQuery: [DNSTarget]]) -> Void) {
        self.wake = wake
        self.shared = shared
        self.logger = logger
        self.publish = publish
    }

    mutating func run() {
        while true {
            let (config, stopping) = shared.withLock { state in
                defer { state.config = nil }
                return (state.config, state.stopping)
            }
            if stopping { break }
            if let config { adopt(config) }
            let now = monotonicMilliseconds()
            startDueLookups(now: now)
            let next = states.filter { !inFlight.contains($0.key) }.map(\.value.due).min() ?? now + 1000
            let woken = channel?.wait(milliseconds: Int(max(0, min(1000, next - now))), extra: wake) ?? waitForWake()
            if woken {
                var value: UInt64 = 0
                _ = Glibc.read(wake, &value, 8)
            }
            handleAnswers()
        }
        channel = nil
    }

    /// Without a channel (it could not be made), only a reload or stop can change anything.
    private func waitForWake() -> Bool {
        var entry = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 1000) > 0
    }

    private mutating func adopt(_ config: ProxyConfig) {
        policy = DNSPolicy(config)
        if channel == nil || config.resolvers != resolvers {
            resolvers = config.resolvers
            // Replacing the channel answers its pending lookups (ignored: their channel number is old).
            channel = nil
            inFlight = []
            channelNumber += 1
            do {
                channel = try DNSChannel(servers: resolvers, timeoutMilliseconds: DNSLookup.timeoutMilliseconds, tries: DNSLookup.tries)
            } catch {
                logger.error("DNS discovery stopped: \(error)")
            }
        }
        let now = monotonicMilliseconds()
        let sets = config.discoveredSets
        // A name followed before with the same set keeps its state (when it is due, a hold under way).
        states = sets.reduce(into: [:]) { fresh, entry in
            if let state = states[entry.key], Set(state.targets) == Set(entry.value) {
                fresh[entry.key] = state
            } else {
                fresh[entry.key] = DNSRecordState(targets: entry.value, now: now, policy: policy)
            }
        }
        shared.withLock { state in
            state.stats = state.stats.filter { sets[$0.key] != nil }
            for (query, targets) in sets { state.stats[query, default: DNSNameStats()].addresses = targets.count }
        }
    }

    private mutating func startDueLookups(now: Int64) {
        guard let channel else { return }
        for (query, state) in states where state.due <= now && !inFlight.contains(query) {
            inFlight.insert(query)
            let number = channelNumber
            DNSLookup.start(query, on: channel) { [inbox] answer in inbox.answers.append((query, number, answer)) }
        }
    }

    private mutating func handleAnswers() {
        let answers = inbox.answers
        inbox.answers = []
        var changed = false
        let now = monotonicMilliseconds()
        for (query, number, answer) in answers where number == channelNumber {
            inFlight.remove(query)
            guard var state = states[query] else { continue }
            let outcome = state.apply(answer, now: now, policy: policy)
            states[query] = state
            record(query, outcome, state)
            changed = changed || outcome.changesTheSet
        }
        if changed { publish(states.mapValues(\.targets)) }
    }

    /// Counts, and logs each change, and each failure once until the name answers again.
    private mutating func record(_ query: DNSQuery, _ outcome: DNSRecordState.Outcome, _ state: DNSRecordState) {
        shared.withLock { shared in
            var stats = shared.stats[query, default: DNSNameStats()]
            stats.queries += 1
            if case .failed = outcome { stats.failures += 1 }
            if outcome.changesTheSet { stats.changes += 1 }
            stats.addresses = state.targets.count
            shared.stats[query] = stats
        }
        let name: Logger.MetadataValue = "\(query)"
        switch outcome {
        case .failed(let reason):
            if failing.insert(query).inserted {
                logger.warning("DNS lookup failed; keeping the last addresses", metadata: [
                    "name": name, "reason": "\(reason)", "addresses": "\(state.targets.count)",
                ])
            }
            return
        case .changed:
            logger.info("DNS addresses changed", metadata: [
                "name": name, "addresses": "\(state.targets.map { "\($0.address)" }.joined(separator: ","))",
            ])
        case .holding(let reason):
            if failing.insert(query).inserted {
                logger.warning("DNS name has no addresses; keeping the last ones for dns_hold", metadata: [
                    "name": name, "reason": "\(reason)", "dns_hold": "\(Units.text(.milliseconds(policy.hold)))",
                ])
            }
            return
        case .emptied(let reason):
            logger.warning("DNS name has had no addresses for dns_hold; its backends are removed", metadata: [
                "name": name, "reason": "\(reason)",
            ])
        case .unchanged:
            break
        }
        if failing.remove(query) != nil, outcome == .unchanged || outcome == .changed {
            logger.info("DNS lookups answer again", metadata: ["name": name])
        }
    }
}
