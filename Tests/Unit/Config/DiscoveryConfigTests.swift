@testable import RingProxy
import XCTest

/// The discovery keys: `resolve`, `srv`, `resolvers`, `dns_min_ttl`/`dns_max_ttl`, `dns_hold`, `dns_start`.
/// A resolver on a port where nothing listens refuses at once, so no test waits on the network.
final class DiscoveryConfigTests: XCTestCase, ConfigLoading {
    func testDefaultsAndEveryKey() throws {
        let defaults = try load("port = 8080\n[[backends]]\nhost = \"127.0.0.1\"\nport = 9000\n")
        XCTAssertNil(defaults.resolvers)
        XCTAssertEqual(defaults.dnsMinTTL, .seconds(1))
        XCTAssertEqual(defaults.dnsMaxTTL, .seconds(300))
        XCTAssertEqual(defaults.dnsHold, .seconds(30))
        XCTAssertEqual(defaults.dnsStart, .fail)
        XCTAssertTrue(defaults.queries.isEmpty, "numeric hosts are not followed")

        let config = try load("""
            port = 8080
            resolvers = ["127.0.0.1:9"]
            dns_min_ttl = "2s"
            dns_max_ttl = "1m"
            dns_hold = "5s"
            dns_start = "wait"
            [[backends]]
            srv = "_pg._tcp.db.service.consul"
            resolve = "ipv4"
            max_connections = 10
            [[backends]]
            host = "web.invalid"
            port = 9000
            weight = 4
            resolve = "first"
            """)
        XCTAssertEqual(config.resolvers, ["127.0.0.1:9"])
        XCTAssertEqual(config.dnsMinTTL, .seconds(2))
        XCTAssertEqual(config.dnsMaxTTL, .seconds(60))
        XCTAssertEqual(config.dnsHold, .seconds(5))
        XCTAssertEqual(config.dnsStart, .wait)
        XCTAssertEqual(config.listeners[0].names, [
            NamedBackend(query: DNSQuery(kind: .srv, name: "_pg._tcp.db.service.consul", port: 0, mode: .ipv4),
                         name: "_pg._tcp.db.service.consul", weight: 1, maxConnections: 10),
            NamedBackend(query: DNSQuery(kind: .address, name: "web.invalid", port: 9000, mode: .first),
                         name: "web.invalid:9000", weight: 4, maxConnections: 0),
        ])
        XCTAssertEqual(config.listeners[0].backends, [], "dns_start = wait: the pool starts empty while the names do not resolve")
    }

    func testAnUnresolvableNameIsAnErrorByDefaultNamingItsKey() {
        let found = errors("""
            port = 8080
            resolvers = ["127.0.0.1:9"]
            [[backends]]
            host = "web.invalid"
            port = 9000
            [[backends]]
            srv = "_x._tcp.invalid"
            """)
        XCTAssertEqual(found.count, 2, "\(found)")
        XCTAssertTrue(found.contains { $0.contains(":4: backends[0].host: cannot resolve host 'web.invalid':") }, "\(found)")
        XCTAssertTrue(found.contains { $0.contains(":7: backends[1].srv: cannot resolve SRV name '_x._tcp.invalid':") }, "\(found)")
    }

    func testResolversAreNumericAddressesWithPort53ByDefault() {
        var check = ConfigValidation(issues: [])
        let servers = check.resolvers(Setting(["127.0.0.1:9", "10.0.0.53", "::1", "[::1]:5353", "[fd00::53]"], SettingSource(key: "resolvers")))
        XCTAssertEqual(servers, ["127.0.0.1:9", "10.0.0.53:53", "[::1]:53", "[::1]:5353", "[fd00::53]:53"])
        XCTAssertEqual(check.issues, [])
    }

    func testBadDiscoveryValuesAreErrors() {
        let found = errors("""
            port = 8080
            resolvers = ["dns.example:53", "127.0.0.1:99999"]
            dns_min_ttl = "10s"
            dns_max_ttl = "5s"
            dns_hold = 0
            dns_start = "later"
            [[backends]]
            srv = "_pg._tcp.db"
            host = "127.0.0.1"
            [[backends]]
            host = "127.0.0.1"
            port = 9000
            resolve = "some"
            """)
        let expected = [
            "resolvers: expected a resolver address like 127.0.0.1:53 or [::1]:53, got 'dns.example:53'",
            "resolvers: expected a resolver address like 127.0.0.1:53 or [::1]:53, got '127.0.0.1:99999'",
            "dns_max_ttl: dns_max_ttl (5s) is below dns_min_ttl (10s)",
            "dns_hold: expected a duration greater than zero",
            "dns_start: expected one of \"fail\", \"wait\", got 'later'",
            "backends[0].host: give either srv or host and port, not both",
            "backends[1].resolve: expected one of \"all\", \"first\", \"ipv4\", \"ipv6\", got 'some'",
        ]
        for message in expected {
            XCTAssertTrue(found.contains { $0.hasSuffix(message) }, "missing '\(message)' in \(found)")
        }
        XCTAssertEqual(found.count, expected.count, "\(found): no lookup with resolvers in error")
    }
}

/// Names in named pools (issue 12's `[pools.NAME]`): followed like a listener's own, for the default pool and
/// for each route's pool, and expanded into both when discovery finds addresses.
final class DiscoveryPoolConfigTests: XCTestCase {
    func testNamesInNamedPoolsAreFollowedAndExpandedForRoutesAndTheDefaultPool() throws {
        let config = try ProxyConfig.validate(ConfigFile.parse("""
            resolvers = ["127.0.0.1:9"]
            dns_start = "wait"
            [pools.api]
            backends = [{ host = "api.invalid", port = 443 }, { host = "127.0.0.1", port = 9001 }]
            [pools.web]
            backends = [{ srv = "_web._tcp.invalid" }]
            [[listeners]]
            bind = "127.0.0.1:0"
            routes = [{ sni = ["api.example.com"], pool = "api" }]
            default_pool = "web"
            """, file: "test.toml"), file: "test.toml", allowedCPUs: [0, 1])
        let api = DNSQuery(kind: .address, name: "api.invalid", port: 443, mode: .all)
        let web = DNSQuery(kind: .srv, name: "_web._tcp.invalid", port: 0, mode: .all)
        XCTAssertEqual(config.queries, [api, web])
        XCTAssertEqual(config.listeners[0].names.map(\.query), [web], "the default pool's names are the listener's")
        XCTAssertEqual(config.listeners[0].routing?.routes[0].pool.names.map(\.query), [api])
        XCTAssertEqual(config.listeners[0].routing?.routes[0].pool.backends.map(\.name), ["127.0.0.1:9001"])

        let found = config.expanded(with: [
            api: [DNSTarget(address: SocketAddress(numeric: "10.0.0.1:443")!)],
            web: [DNSTarget(address: SocketAddress(numeric: "10.0.0.2:8443")!, weight: 5)],
        ])
        XCTAssertEqual(found.listeners[0].routing?.routes[0].pool.backends.map(\.name),
                       ["127.0.0.1:9001", "api.invalid:443 (10.0.0.1:443)"], "file backends first")
        XCTAssertEqual(found.listeners[0].backends.map(\.weight), [5])
        XCTAssertEqual(found.discoveredSets[api], [DNSTarget(address: SocketAddress(numeric: "10.0.0.1:443")!)],
                       "a route pool's addresses are what discovery holds for its name")
        XCTAssertEqual(found.expanded(with: [api: [], web: []]).listeners[0].routing?.routes[0].pool.backends.map(\.name),
                       ["127.0.0.1:9001"])
    }
}
