import Glibc
import RingDNS
@testable import RingProxy
import XCTest

/// Discovery's rules without a resolver: TTL clamping, a failing resolver keeps the last set, an empty answer
/// empties it only after `dns_hold`; which addresses each `resolve` mode keeps; SRV priorities and weights.
final class DNSRecordStateTests: XCTestCase {
    private let policy = DNSPolicy(minTTL: 1000, maxTTL: 300_000, hold: 30_000)

    private func target(_ host: String, _ port: UInt16 = 80, weight: Int? = nil) -> DNSTarget {
        DNSTarget(address: SocketAddress(numericHost: host, port: port)!, weight: weight)
    }

    func testTTLIsClampedToTheMinimumAndMaximum() {
        XCTAssertEqual(policy.keep(ttl: 0), 1000)
        XCTAssertEqual(policy.keep(ttl: 30), 30_000)
        XCTAssertEqual(policy.keep(ttl: 86_400), 300_000)
        var state = DNSRecordState(targets: [target("10.0.0.1")], now: 0, policy: policy)
        XCTAssertEqual(state.due, 1000, "the first answer's TTL is not known: asked again after the shortest")
        XCTAssertEqual(state.apply(.found([target("10.0.0.1")], ttl: 5), now: 2000, policy: policy), .unchanged)
        XCTAssertEqual(state.due, 7000)
        XCTAssertEqual(state.apply(.found([target("10.0.0.1")], ttl: 0), now: 7000, policy: policy), .unchanged)
        XCTAssertEqual(state.due, 8000)
    }

    func testANewSetIsAChangeButTheSameSetInAnotherOrderIsNot() {
        var state = DNSRecordState(targets: [target("10.0.0.1"), target("10.0.0.2")], now: 0, policy: policy)
        XCTAssertEqual(state.apply(.found([target("10.0.0.2"), target("10.0.0.1")], ttl: 1), now: 1000, policy: policy), .unchanged)
        XCTAssertEqual(state.apply(.found([target("10.0.0.2"), target("10.0.0.3")], ttl: 1), now: 2000, policy: policy), .changed)
        XCTAssertEqual(state.targets, [target("10.0.0.2"), target("10.0.0.3")])
        XCTAssertEqual(state.apply(.found([target("10.0.0.2", weight: 5), target("10.0.0.3")], ttl: 1), now: 3000, policy: policy),
                       .changed, "a new SRV weight is a change")
    }

    func testAFailingResolverKeepsTheLastSetAndAsksAgainSoon() {
        var state = DNSRecordState(targets: [target("10.0.0.1")], now: 0, policy: policy)
        _ = state.apply(.found([target("10.0.0.1")], ttl: 60), now: 1000, policy: policy)
        for second in 2...100 {
            let now = Int64(second) * 1000
            XCTAssertEqual(state.apply(.failed("Timeout while contacting DNS servers"), now: now, policy: policy),
                           .failed("Timeout while contacting DNS servers"))
            XCTAssertEqual(state.due, now + 1000)
        }
        XCTAssertEqual(state.targets, [target("10.0.0.1")], "100 s of failures, well past dns_hold: the set stays")
    }

    func testAnEmptyAnswerEmptiesTheSetOnlyAfterTheHold() {
        var state = DNSRecordState(targets: [target("10.0.0.1")], now: 0, policy: policy)
        XCTAssertEqual(state.apply(.none("no such name (NXDOMAIN)"), now: 10_000, policy: policy), .holding("no such name (NXDOMAIN)"))
        XCTAssertEqual(state.emptySince, 10_000)
        XCTAssertEqual(state.apply(.none("no records"), now: 39_000, policy: policy), .holding("no records"))
        XCTAssertEqual(state.due, 40_000, "asked again when the hold ends, not later")
        XCTAssertEqual(state.targets, [target("10.0.0.1")])
        XCTAssertEqual(state.apply(.none("no records"), now: 40_000, policy: policy), .emptied("no records"))
        XCTAssertEqual(state.targets, [])
        XCTAssertEqual(state.apply(.none("no records"), now: 41_000, policy: policy), .unchanged)
        XCTAssertEqual(state.apply(.found([target("10.0.0.9")], ttl: 1), now: 42_000, policy: policy), .changed)
    }

    func testAnAnswerWithinTheHoldStartsItAfresh() {
        var state = DNSRecordState(targets: [target("10.0.0.1")], now: 0, policy: policy)
        _ = state.apply(.none("no records"), now: 1000, policy: policy)
        XCTAssertEqual(state.apply(.found([target("10.0.0.1")], ttl: 1), now: 20_000, policy: policy), .unchanged)
        XCTAssertNil(state.emptySince)
        XCTAssertEqual(state.apply(.none("no records"), now: 35_000, policy: policy), .holding("no records"),
                       "34 s after the first empty answer, but 0 s after the last found one")
        XCTAssertEqual(state.apply(.failed("Server failed"), now: 50_000, policy: policy), .failed("Server failed"))
        XCTAssertEqual(state.apply(.none("no records"), now: 65_000, policy: policy), .emptied("no records"),
                       "a failure in between neither ends nor restarts the hold")
    }

    func testResolveModesKeepTheirAddressesInAStableOrder() {
        let found = ["10.0.0.2", "2001:db8::1", "10.0.0.1"].map { SocketAddress(numericHost: $0, port: 0)! }
        func hosts(_ mode: ResolveMode) -> [String] { DNSTargets.addresses(found, port: 8080, mode: mode).map { "\($0.address)" } }
        XCTAssertEqual(hosts(.all), ["10.0.0.1:8080", "10.0.0.2:8080", "[2001:db8::1]:8080"])
        XCTAssertEqual(hosts(.first), ["10.0.0.2:8080"], "the first IPv4 address, as the name meant before")
        XCTAssertEqual(hosts(.ipv4), ["10.0.0.1:8080", "10.0.0.2:8080"])
        XCTAssertEqual(hosts(.ipv6), ["[2001:db8::1]:8080"])
        XCTAssertEqual(DNSTargets.addresses([found[1]], port: 1, mode: .first).map { "\($0.address)" }, ["[2001:db8::1]:1"])
        XCTAssertEqual(DNSTargets.family(.ipv6), AF_INET6)
    }

    func testSRVKeepsTheLowestPriorityWithEachRecordsPortAndWeight() {
        let records = [
            SRVRecord(target: "a.svc", port: 5432, weight: 3, priority: 10),
            SRVRecord(target: "b.svc", port: 5433, weight: 0, priority: 10),
            SRVRecord(target: "c.svc", port: 5434, weight: 50, priority: 20),
            SRVRecord(target: "d.svc", port: 5435, weight: 1000, priority: 10),
        ]
        let addresses = ["a.svc": ["10.0.0.1"], "b.svc": ["10.0.0.2", "10.0.0.3"], "c.svc": ["10.0.0.4"], "d.svc": ["10.0.0.5"]]
            .mapValues { $0.map { SocketAddress(numericHost: $0, port: 0)! } }
        let targets = DNSTargets.service(records, addresses: addresses, mode: .all)
        XCTAssertEqual(targets, [
            target("10.0.0.1", 5432, weight: 3), target("10.0.0.2", 5433, weight: 1), target("10.0.0.3", 5433, weight: 1),
            target("10.0.0.5", 5435, weight: 256),
        ], "weight 0 takes the least share that still takes connections; above 256 is clamped; priority 20 is left out")
        XCTAssertEqual(DNSTargets.service(records, addresses: [:], mode: .all), [], "targets without addresses give nothing")
    }

    func testTheSRVAnswersTTLIsTheSmallestOfItsRecords() {
        // _pg._tcp.db: two SRV records (TTL 30 and 7) behind a compressed name, and an A record (TTL 2) after them.
        var message: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0]
        message += [3] + Array("_pg".utf8) + [4] + Array("_tcp".utf8) + [2] + Array("db".utf8) + [0, 0, 33, 0, 1]
        func srv(ttl: UInt32, target: String) -> [UInt8] {
            let rdata: [UInt8] = [0, 1, 0, 5, 0x15, 0x38] + [UInt8(target.utf8.count)] + Array(target.utf8) + [0]
            return [0xC0, 12, 0, 33, 0, 1] + withUnsafeBytes(of: ttl.bigEndian, Array.init) + [0, UInt8(rdata.count)] + rdata
        }
        message += srv(ttl: 30, target: "a") + srv(ttl: 7, target: "b")
        message += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 2, 0, 4, 10, 0, 0, 1]
        XCTAssertEqual(DNSMessage.minimumAnswerTTL(message, type: 33), 7)
        XCTAssertEqual(DNSMessage.minimumAnswerTTL(message, type: 1), 2)
        XCTAssertNil(DNSMessage.minimumAnswerTTL(Array(message.prefix(40)), type: 33), "a truncated message")
        XCTAssertNil(DNSMessage.minimumAnswerTTL([0, 1, 2], type: 33))
    }

    func testExpansionKeepsFileBackendsFirstAndNamesEachAddress() throws {
        let query = DNSQuery(kind: .address, name: "web.internal", port: 8080, mode: .all)
        let listener = ProxyConfig.Listener(
            name: "web", address: SocketAddress(numeric: "127.0.0.1:80")!, balance: .default, sendProxy: nil,
            backends: [.init(name: "10.0.0.1:8080", address: SocketAddress(numeric: "10.0.0.1:8080")!, weight: 1, maxConnections: 0)],
            names: [NamedBackend(query: query, name: "web.internal:8080", weight: 2, maxConnections: 7)])
        let expanded = listener.expanded(with: [query: [target("10.0.0.1", 8080), target("10.0.0.2", 8080)]])
        XCTAssertEqual(expanded.backends.map(\.name), ["10.0.0.1:8080", "web.internal:8080 (10.0.0.2:8080)"],
                       "an address already in the pool is not added twice")
        XCTAssertEqual(expanded.backends[1].weight, 2)
        XCTAssertEqual(expanded.backends[1].maxConnections, 7)
        XCTAssertEqual(expanded.backends[1].origin, query)
        XCTAssertEqual(expanded.expanded(with: [:]).backends.count, 1, "a name with no set has no backend")
    }
}
