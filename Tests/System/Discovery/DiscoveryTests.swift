import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// DNS discovery against a real DNS server (dnsmasq, TTL 1 s) whose records change while clients run:
/// backends on several 127.0.0.x addresses (and ::1) that say who they are, A, AAAA and SRV records added
/// and removed, the resolver killed, a name gone.
final class DiscoveryTests: XCTestCase {
    private let source = SettingSource(key: "test")
    private let web = "web.\(DNSMasq.domain)"
    /// How much later than one TTL new connections may follow a change. A name is asked again each TTL, so a
    /// change lands within one TTL plus a lookup's round trip and the plan switch: measured 0.92-0.96 s with a
    /// 1 s TTL on a loaded 2-CPU machine; the margin leaves room for its scheduling.
    private let followMargin: Int64 = 750

    private func named(_ host: String, port: UInt16) -> BackendSpec {
        BackendSpec(host: Setting(host, source), port: Setting(Int(port), source), source: source)
    }

    private func proxy(_ dns: DNSMasq, _ backends: [BackendSpec], configure: (inout ProxySettings) -> Void = { _ in }) throws -> ProxyHarness {
        try ProxyHarness(backends: []) { settings in
            settings.backends = backends
            settings.resolvers = Setting([dns.resolver], self.source)
            configure(&settings)
        }
    }

    private func hosts(_ proxy: ProxyHarness) -> Set<String> { Set(proxy.pool.members.map(\.address.host)) }

    func testNewConnectionsFollowRecordsAddedAndRemovedUnderLoadAndNoClientFails() throws {
        let backends = try TestServer.bannersOnOnePort(["127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"])
        let port = backends["127.0.0.2"]!.port
        let dns = try DNSMasq(hosts: ["127.0.0.2 \(web)", "127.0.0.3 \(web)"])
        let proxy = try proxy(dns, [named(web, port: port)])
        defer { proxy.stop() }
        XCTAssertEqual(hosts(proxy), ["127.0.0.2", "127.0.0.3"], "every A record is a backend")
        let admin = AdminServer(proxy: proxy.proxy, address: SocketAddress(numericHost: "127.0.0.1", port: 0)!)
        let adminAddress = try admin.start()
        defer { admin.stop() }

        // A connection to 127.0.0.3, held open across that address's removal.
        var held: TestClient?
        for _ in 0..<64 where held == nil {
            let client = try TestClient(proxy.address)
            if try client.receiveLine() == "127.0.0.3" { held = client }
        }
        let longLived = try XCTUnwrap(held)

        let loops = (0..<4).map { _ in ConnectionLoop(proxy.address) }
        func attempts() -> Int { loops.reduce(0) { $0 + $1.attempts } }
        func answered(_ host: String) -> Int { loops.reduce(0) { $0 + ($1.answers[host] ?? 0) } }
        XCTAssertTrue(eventually(10) { attempts() >= 200 })

        // Added: an A record (127.0.0.4) and an AAAA record (::1).
        try dns.setHosts(["127.0.0.2 \(web)", "127.0.0.3 \(web)", "127.0.0.4 \(web)", "::1 \(web)"])
        let added = monotonicMilliseconds()
        var addedInPlan: Int64?, addedServing: Int64?
        XCTAssertTrue(eventually(10) {
            let now = monotonicMilliseconds()
            if addedInPlan == nil, hosts(proxy) == ["127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"] { addedInPlan = now }
            if addedServing == nil, answered("127.0.0.4") > 0, answered("::1") > 0 { addedServing = now }
            return addedInPlan != nil && addedServing != nil
        }, "pool \(hosts(proxy)), answers \(loops.map(\.answers))")

        // Removed: 127.0.0.3.
        try dns.setHosts(["127.0.0.2 \(web)", "127.0.0.4 \(web)", "::1 \(web)"])
        let removed = monotonicMilliseconds()
        var removedFromPlan: Int64?
        XCTAssertTrue(eventually(10) {
            guard !hosts(proxy).contains("127.0.0.3") else { return false }
            removedFromPlan = monotonicMilliseconds()
            return true
        })
        // An attempt in flight when the plan switched may still have picked it; two more per loop have not.
        let attemptsAtSwitch = loops.map(\.attempts)
        XCTAssertTrue(eventually(5) { zip(loops, attemptsAtSwitch).allSatisfy { $0.attempts >= $1 + 2 } })
        let acceptedAtSwitch = backends["127.0.0.3"]!.acceptedCount
        let attemptsAfterSwitch = attempts()
        XCTAssertTrue(eventually(10) { attempts() >= attemptsAfterSwitch + 300 })
        XCTAssertEqual(backends["127.0.0.3"]!.acceptedCount, acceptedAtSwitch, "no new connection reached the removed address")
        try longLived.send("still here\n")
        XCTAssertEqual(try longLived.receiveLine(), "still here", "the removed address's open connection keeps flowing")

        let results = loops.map { $0.stop() }
        let total = results.reduce(0) { $0 + $1.attempts }
        XCTAssertEqual(results.flatMap(\.failures), [], "\(total) connections")
        for host in ["127.0.0.2", "127.0.0.4", "::1"] { XCTAssertGreaterThan(answered(host), 0, host) }

        // Where each address came from, and what the resolver did.
        let metrics = try HTTPGet(adminAddress, "/metrics")
        let info = metrics.body.split(separator: "\n").filter { $0.hasPrefix("ringproxy_backend_info{") }
        XCTAssertEqual(info.count, 3, "\(info)")
        XCTAssertTrue(info.allSatisfy { $0.contains("origin=\"\(web)\"") && $0.split(separator: " ").last.flatMap { Double($0) } == 1 }, "\(info)")
        XCTAssertTrue(info.contains { $0.contains("address=\"[::1]:\(port)\"") && $0.contains("backend=\"\(web):\(port) ([::1]:\(port))\"") }, "\(info)")
        XCTAssertGreaterThanOrEqual(metrics.metric("ringproxy_dns_changes_total{name=\"\(web)\"}") ?? 0, 2)
        XCTAssertGreaterThanOrEqual(metrics.metric("ringproxy_dns_queries_total{name=\"\(web)\"}") ?? 0, 2)
        XCTAssertEqual(metrics.metric("ringproxy_dns_failures_total{name=\"\(web)\"}"), 0)
        XCTAssertEqual(metrics.metric("ringproxy_dns_addresses{name=\"\(web)\"}"), 3)
        let document = try decodeBackends(adminAddress)
        XCTAssertEqual(Set(document.listeners[0].backends.map(\.origin)), [web])

        let followAdd = try XCTUnwrap(addedServing) - added, followRemove = try XCTUnwrap(removedFromPlan) - removed
        let ttl = Int64(DNSMasq.ttlSeconds * 1000)
        XCTAssertLessThanOrEqual(followAdd, ttl + followMargin, "new connections reached the added addresses within one TTL")
        XCTAssertLessThanOrEqual(followRemove, ttl + followMargin, "new connections left the removed address within one TTL")
        print("DNS under load: \(total) connections by 4 clients, \(results.flatMap(\.failures).count) failed; records added: in the plan after "
              + "\(try XCTUnwrap(addedInPlan) - added) ms, first new connections there after \(followAdd) ms; record removed: out of the "
              + "plan after \(followRemove) ms (TTL \(ttl) ms); answers \(loops.map(\.answers))")
    }

    func testAFailingResolverKeepsTheLastSetAndAGoneNameEmptiesOnlyAfterTheHold() throws {
        let backends = try TestServer.bannersOnOnePort(["127.0.0.2", "127.0.0.5"])
        let port = backends["127.0.0.2"]!.port
        let dns = try DNSMasq(hosts: ["127.0.0.2 \(web)"])
        // 127.0.0.5 from the file carries the clients while the name has no address.
        let proxy = try proxy(dns, [named(web, port: port), named("127.0.0.5", port: port)]) { settings in
            settings.dnsHold = Setting(.seconds(2), self.source)
        }
        defer { proxy.stop() }
        let query = DNSQuery(kind: .address, name: web, port: port, mode: .all)
        func stats() -> DNSNameStats { proxy.proxy.discoveryStats[query] ?? DNSNameStats() }
        XCTAssertEqual(hosts(proxy), ["127.0.0.2", "127.0.0.5"])
        let loop = ConnectionLoop(proxy.address)

        dns.stop()
        let failuresBefore = stats().failures
        XCTAssertTrue(eventually(10) { stats().failures >= failuresBefore + 4 }, "\(stats())")
        XCTAssertEqual(hosts(proxy), ["127.0.0.2", "127.0.0.5"], "a dead resolver keeps the last set, past dns_hold")
        let servedBefore = loop.answers["127.0.0.2"] ?? 0
        XCTAssertTrue(eventually(5) { (loop.answers["127.0.0.2"] ?? 0) >= servedBefore + 20 })

        // The resolver is back, and the name is gone (NXDOMAIN): its addresses stay for dns_hold.
        // The first NXDOMAIN may come while `restart` still waits for dnsmasq to answer it: the hold is measured
        // from before the restart (it cannot begin earlier), its end bounded from after.
        let restarting = monotonicMilliseconds()
        try dns.restart(hosts: ["127.0.0.9 other.\(DNSMasq.domain)"])
        let gone = monotonicMilliseconds()
        var emptied: Int64?
        XCTAssertTrue(eventually(10) {
            guard !hosts(proxy).contains("127.0.0.2") else { return false }
            emptied = monotonicMilliseconds()
            return true
        })
        let emptiedAt = try XCTUnwrap(emptied)
        XCTAssertGreaterThanOrEqual(emptiedAt - restarting, 2000, "kept for dns_hold after the first NXDOMAIN")
        XCTAssertLessThanOrEqual(emptiedAt - gone, 2000 + Int64(DNSMasq.ttlSeconds * 1000) + followMargin)
        XCTAssertEqual(hosts(proxy), ["127.0.0.5"])
        XCTAssertEqual(stats().addresses, 0)

        // And back.
        try dns.setHosts(["127.0.0.2 \(web)"])
        XCTAssertTrue(eventually(5) { hosts(proxy) == ["127.0.0.2", "127.0.0.5"] })
        let result = loop.stop()
        XCTAssertEqual(result.failures, [], "\(result.attempts) connections")
        print("resolver down: \(stats().failures) failed lookups, set kept; NXDOMAIN: emptied \(emptiedAt - gone) ms after the restart (dns_hold 2 s); "
              + "\(result.attempts) connections, \(result.failures.count) failed")
    }

    func testSRVRecordsGiveEachBackendItsHostPortAndWeight() throws {
        let first = try TestServer(.banner("a"), host: "127.0.0.2"), second = try TestServer(.banner("b"), host: "127.0.0.3")
        let service = "_echo._tcp.\(DNSMasq.domain)"
        let hostLines = ["127.0.0.2 a.\(DNSMasq.domain)", "127.0.0.3 b.\(DNSMasq.domain)"]
        let records = ["\(service),a.\(DNSMasq.domain),\(first.port),0,3", "\(service),b.\(DNSMasq.domain),\(second.port),0,1"]
        let dns = try DNSMasq(hosts: hostLines, srv: records)
        var entry = BackendSpec(host: nil, port: nil, source: source)
        entry.srv = Setting(service, source)
        // Round robin: exact proportions per worker, so the weights show in the counts.
        let proxy = try proxy(dns, [entry]) { settings in settings.balance = Setting("round-robin", self.source) }
        defer { proxy.stop() }
        func members() -> Set<String> { Set(proxy.pool.members.map { "\($0.address)@\($0.weight)" }) }
        XCTAssertEqual(members(), ["\(first.address)@3", "\(second.address)@1"])
        XCTAssertEqual(Set(proxy.pool.members.map(\.origin)), ["srv \(service)"])
        XCTAssertTrue(proxy.pool.members.contains { $0.name == "\(service) (\(first.address))" })
        var answers: [String: Int] = [:]
        for _ in 0..<80 { answers[try TestClient(proxy.address).receiveLine(), default: 0] += 1 }
        // Each of the two workers gives 3 of every 4 of its connections to a: 60 of 80, give or take one a worker.
        XCTAssertLessThanOrEqual(abs((answers["a"] ?? 0) - 60), 2, "weights 3 and 1: \(answers)")
        XCTAssertEqual((answers["a"] ?? 0) + (answers["b"] ?? 0), 80, "\(answers)")

        // SRV records change with a restart of dnsmasq.
        try dns.restart(hosts: hostLines, srv: [records[1]])
        let changed = monotonicMilliseconds()
        XCTAssertTrue(eventually(10) { members() == ["\(second.address)@1"] }, "\(members())")
        let follow = monotonicMilliseconds() - changed
        XCTAssertLessThanOrEqual(follow, Int64(DNSMasq.ttlSeconds * 1000) + followMargin)
        let acceptedBefore = first.acceptedCount
        for _ in 0..<20 { XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "b") }
        XCTAssertEqual(first.acceptedCount, acceptedBefore)
        print("SRV: weights 3:1 gave \(answers); a record removed: followed after \(follow) ms")
    }

    func testAReloadFollowsTheNewFilesNamesAndAnAddressThatStaysKeepsItsRow() throws {
        let backends = try TestServer.bannersOnOnePort(["127.0.0.2", "127.0.0.3"])
        let port = backends["127.0.0.2"]!.port
        let api = "api.\(DNSMasq.domain)"
        let dns = try DNSMasq(hosts: ["127.0.0.2 \(web)", "127.0.0.3 \(api)"])
        let proxy = try proxy(dns, [named(web, port: port)])
        defer { proxy.stop() }
        let row = proxy.pool.members[0].id
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "127.0.0.2")
        XCTAssertTrue(eventually(5) { proxy.table.sum(.active, backend: row) == 0 })

        try proxy.reload { settings in settings.backends = [self.named(self.web, port: port), self.named(api, port: port)] }
        XCTAssertEqual(hosts(proxy), ["127.0.0.2", "127.0.0.3"], "the reload resolved the new name")
        let kept = try XCTUnwrap(proxy.pool.members.first { $0.address.host == "127.0.0.2" })
        XCTAssertEqual(kept.id, row, "an address that stays keeps its row")
        XCTAssertEqual(proxy.table.sum(.total, backend: row), 1, "and its counters")

        // Discovery follows the reloaded file's names: api moves, web goes.
        try dns.setHosts(["127.0.0.3 \(web)", "127.0.0.2 \(api)"])
        XCTAssertTrue(eventually(5) { Set(proxy.pool.members.map(\.name)) == ["\(self.web):\(port) (127.0.0.3:\(port))", "\(api):\(port) (127.0.0.2:\(port))"] },
                      "\(proxy.pool.members.map(\.name))")
        XCTAssertEqual(proxy.pool.members.first { $0.address.host == "127.0.0.2" }?.id, row, "the same pool and address: the same row")

        // A reload that drops a name stops following it.
        try proxy.reload { settings in settings.backends = [self.named(self.web, port: port)] }
        let apiQuery = DNSQuery(kind: .address, name: api, port: port, mode: .all)
        XCTAssertTrue(eventually(5) { proxy.proxy.discoveryStats[apiQuery] == nil })
        XCTAssertEqual(hosts(proxy), ["127.0.0.3"])
    }

    func testStartingWithWaitServesOnceTheNameResolves() throws {
        let server = try TestServer(.banner("late"), host: "127.0.0.2")
        let late = "late.\(DNSMasq.domain)"
        let dns = try DNSMasq(hosts: ["127.0.0.9 other.\(DNSMasq.domain)"])
        let proxy = try proxy(dns, [named(late, port: server.port)]) { settings in
            settings.dnsStart = Setting("wait", self.source)
        }
        defer { proxy.stop() }
        XCTAssertEqual(proxy.pool.count, 0, "started empty: the name does not resolve")
        let early = try TestClient(proxy.address)
        XCTAssertThrowsError(try early.receiveLine(), "no backend yet: the client is closed")
        try dns.setHosts(["127.0.0.2 \(late)"])
        XCTAssertTrue(eventually(5) { proxy.pool.count == 1 })
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "late")
    }

    func testWithoutWaitAnUnresolvableNameIsAConfigurationError() throws {
        let dns = try DNSMasq(hosts: ["127.0.0.9 other.\(DNSMasq.domain)"])
        var settings = ProxySettings()
        settings.listen = [Setting("127.0.0.1:0", source)]
        settings.backends = [named("missing.\(DNSMasq.domain)", port: 9000)]
        settings.resolvers = Setting([dns.resolver], source)
        XCTAssertThrowsError(try ProxyConfig.validate(settings)) { error in
            XCTAssertTrue("\(error)".contains("cannot resolve host 'missing.\(DNSMasq.domain)': no such name (NXDOMAIN)"), "\(error)")
        }
    }

    private func decodeBackends(_ admin: SocketAddress) throws -> BackendsDocument {
        let response = try HTTPGet(admin, "/backends")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(BackendsDocument.self, from: Data(response.body.utf8))
    }
}
