import Glibc
@testable import RingProxy
import XCTest

/// Runtime control of backends that DNS discovery gives (dnsmasq, TTL 1 s): an override is keyed by pool and
/// address, so it applies to a discovered address, stays through the plans discovery publishes, and goes
/// when the record does.
final class DiscoveredControlTests: XCTestCase {
    private let source = SettingSource(key: "test")
    private let web = "web.\(DNSMasq.domain)"

    func testOverridesApplyToDiscoveredAddressesStayThroughNewPlansAndGoWithTheRecord() throws {
        let backends = try TestServer.bannersOnOnePort(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        let port = backends["127.0.0.2"]!.port
        let dns = try DNSMasq(hosts: ["127.0.0.2 \(web)", "127.0.0.3 \(web)"])
        let proxy = try ProxyHarness(backends: []) { settings in
            settings.backends = [BackendSpec(host: Setting(self.web, self.source), port: Setting(Int(port), self.source), source: self.source)]
            settings.resolvers = Setting([dns.resolver], self.source)
            settings.balance = Setting("round-robin", self.source)
        }
        defer { proxy.stop() }
        let admin = AdminServer(proxy: proxy.proxy, address: SocketAddress(numericHost: "127.0.0.1", port: 0)!)
        let adminAddress = try admin.start()
        defer { admin.stop() }
        func member(_ host: String) -> BackendPool.Member? { proxy.pool.members.first { $0.address.host == host } }
        func key(_ host: String) -> BackendKey { BackendKey(pool: "default", address: SocketAddress(numericHost: host, port: port)!) }
        func answers(_ count: Int) throws -> [String: Int] {
            var answers: [String: Int] = [:]
            for _ in 0..<count { answers[try TestClient(proxy.address).receiveLine(), default: 0] += 1 }
            return answers
        }

        let drained = try adminRequest(adminAddress, "PUT", "/backends/default/127.0.0.3:\(port)", body: "state=drain")
        XCTAssertEqual(drained.status, 200, drained.body)
        XCTAssertTrue(drained.body.contains(#""state" : "drain""#) && drained.body.contains(#""origin" : "\#(web)""#), drained.body)
        let weighed = try adminRequest(adminAddress, "PUT", "/backends/default/127.0.0.2:\(port)", body: "weight=3")
        XCTAssertEqual(weighed.status, 200, weighed.body)
        XCTAssertEqual(member("127.0.0.2")?.weight, 3)
        XCTAssertEqual(member("127.0.0.2")?.configuredWeight, 1)

        // A record added: discovery publishes a new plan, which keeps both overrides.
        try dns.setHosts(["127.0.0.2 \(web)", "127.0.0.3 \(web)", "127.0.0.4 \(web)"])
        XCTAssertTrue(eventually(10) { member("127.0.0.4") != nil }, "\(proxy.pool.members.map(\.name))")
        XCTAssertEqual(member("127.0.0.2")?.weight, 3, "the weight override outlives discovery's plan")
        XCTAssertEqual(proxy.table.health(of: try XCTUnwrap(member("127.0.0.3")).id).adminState, .drain)
        XCTAssertEqual(proxy.proxy.override(of: key("127.0.0.3")), BackendOverride(state: .drain))
        let split = try answers(200)
        XCTAssertNil(split["127.0.0.3"], "no connection reaches the drained address: \(split)")
        // Round robin over 3:1, exact per worker over each cycle of 4 picks (two workers: a few picks off).
        XCTAssertEqual(Double(split["127.0.0.2"] ?? 0) / 200, 0.75, accuracy: 0.05, "\(split)")

        // The record removed: the address leaves the pool and its override goes; back, it starts ready.
        try dns.setHosts(["127.0.0.2 \(web)", "127.0.0.4 \(web)"])
        XCTAssertTrue(eventually(10) { member("127.0.0.3") == nil })
        XCTAssertNil(proxy.proxy.override(of: key("127.0.0.3")))
        try dns.setHosts(["127.0.0.2 \(web)", "127.0.0.3 \(web)", "127.0.0.4 \(web)"])
        XCTAssertTrue(eventually(10) { member("127.0.0.3") != nil })
        XCTAssertEqual(proxy.table.health(of: try XCTUnwrap(member("127.0.0.3")).id).adminState, .ready)
        XCTAssertGreaterThan(try answers(60)["127.0.0.3"] ?? 0, 0, "the returned address takes connections again")
        XCTAssertEqual(member("127.0.0.2")?.weight, 3, "the other override stays")
        print("discovered backends under control: split with 127.0.0.3 drained and 127.0.0.2 at weight 3: \(split)")
    }

    /// Slow start for discovered addresses: one that appears ramps, and so does one whose record comes back
    /// (its row, kept for the life of the process, is not a reason to skip the ramp).
    func testADiscoveredAddressRampsWhenItAppearsAndWhenItComesBack() throws {
        let backends = try TestServer.bannersOnOnePort(["127.0.0.2", "127.0.0.3"])
        let port = backends["127.0.0.2"]!.port
        let dns = try DNSMasq(hosts: ["127.0.0.2 \(web)"])
        let proxy = try ProxyHarness(backends: []) { settings in
            settings.backends = [BackendSpec(host: Setting(self.web, self.source), port: Setting(Int(port), self.source), source: self.source)]
            settings.resolvers = Setting([dns.resolver], self.source)
            settings.health.slowStart = Setting(.seconds(2), self.source)
        }
        defer { proxy.stop() }
        func rampStart(_ host: String) -> Int64? {
            proxy.pool.members.first { $0.address.host == host }.map { proxy.table.health(of: $0.id).rampStart }
        }
        XCTAssertEqual(rampStart("127.0.0.2"), 0, "up since the start: no ramp")

        let added = monotonicMilliseconds()
        try dns.setHosts(["127.0.0.2 \(web)", "127.0.0.3 \(web)"])
        XCTAssertTrue(eventually(10) { rampStart("127.0.0.3") != nil })
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(rampStart("127.0.0.3")), added, "a new address ramps")

        try dns.setHosts(["127.0.0.2 \(web)"])
        XCTAssertTrue(eventually(10) { rampStart("127.0.0.3") == nil })
        let back = monotonicMilliseconds()
        try dns.setHosts(["127.0.0.2 \(web)", "127.0.0.3 \(web)"])
        XCTAssertTrue(eventually(10) { rampStart("127.0.0.3") != nil })
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(rampStart("127.0.0.3")), back, "an address that comes back ramps again")
        XCTAssertEqual(rampStart("127.0.0.2"), 0, "an address that stays does not")
    }
}
