@testable import RingProxy
import XCTest

/// The front door's keys (issue 12): named pools, routes, PROXY in, source rules, per-client limits; and the
/// layouts without them loading as before.
final class RoutingConfigTests: XCTestCase, ConfigLoading {
    private static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    func testFrontDoorSeedLoadsEveryKey() throws {
        let text = try String(contentsOf: Self.corpus.appendingPathComponent("listeners-routing.toml"), encoding: .utf8)
        let config = try load(text)
        XCTAssertEqual(config.listeners.map(\.name), ["front", "mail"])
        let front = config.listeners[0]
        XCTAssertEqual(front.defaultPool, "web")
        XCTAssertEqual(front.backends.map(\.name), ["127.0.0.1:9543"], "the default pool's backends are the listener's own")
        XCTAssertEqual(front.rowKey, "pools.web")
        let routing = try XCTUnwrap(front.routing)
        XCTAssertEqual(routing.routes.map(\.pool.name), ["api", "web"])
        XCTAssertEqual(routing.routes[0].pool.balance, .leastConnections)
        XCTAssertEqual(routing.routes[0].pool.backends.map(\.weight), [1, 2])
        XCTAssertEqual(routing.routes[1].alpn, ["h2", "http/1.1"])
        XCTAssertTrue(routing.hasDefaultPool)
        XCTAssertFalse(routing.acceptProxy.isEmpty)
        XCTAssertEqual(routing.maxConnectionsPerClient, 64)
        XCTAssertEqual(routing.newConnectionsPerClient, 20)
        XCTAssertEqual(routing.newConnectionsBurst, 40)
        XCTAssertEqual(routing.prereadMax, 16 * 1024)
        XCTAssertEqual(routing.prereadTimeout, .seconds(5))
        XCTAssertTrue(routing.prereads)

        let mail = config.listeners[1]
        XCTAssertEqual(mail.backends, [], "routes and no default: unmatched clients are closed")
        XCTAssertEqual(mail.routing?.hasDefaultPool, false)
        XCTAssertEqual(mail.routing?.routes.map(\.pool.name), ["mail", "web"])
    }

    func testDefaultsAndAListenerWithoutRoutingKeysKeepsThePlainPath() throws {
        let config = try load("""
            [pools.web]
            backends = [{ host = "127.0.0.1", port = 9000 }]
            [[listeners]]
            name = "plain"
            bind = "127.0.0.1:8080"
            default_pool = "web"
            [[listeners]]
            name = "guarded"
            bind = "127.0.0.1:8081"
            deny = ["192.0.2.1/32"]
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9001
            """)
        XCTAssertNil(config.listeners[0].routing, "a default_pool alone needs no routing stage")
        XCTAssertEqual(config.listeners[0].backends.map(\.name), ["127.0.0.1:9000"])
        let guarded = try XCTUnwrap(config.listeners[1].routing)
        XCTAssertFalse(guarded.prereads, "rules alone are checked at accept: nothing is read before connect")
        XCTAssertEqual(guarded.prereadMax, ListenerRouting.defaultPrereadMax)
        XCTAssertEqual(guarded.prereadTimeout, ListenerRouting.defaultPrereadTimeout)
        XCTAssertEqual(config.listeners[1].rowKey, "guarded")
    }

    func testErrorsNameTheKeyAndLine() {
        let problems = errors("""
            [pools.api]
            balance = "fastest"
            backends = [{ host = "127.0.0.1", port = 9443 }]

            [[listeners]]
            name = "front"
            bind = "127.0.0.1:8443"
            default_pool = "nowhere"
            accept_proxy = ["10.0.0.0/33"]
            max_connections_per_client = -1
            new_connections_burst = 5
            preread_max = 100
            routes = [{ sni = ["api.example.com"] }, { sni = ["x..y"], pool = "api", colour = "red" }]
            """)
        let expected = [
            "test.toml:2: pools.api.balance",
            "test.toml:8: listeners[0].default_pool",
            "test.toml:9: listeners[0].accept_proxy",
            "test.toml:10: listeners[0].max_connections_per_client",
            "test.toml:11: listeners[0].new_connections_burst",
            "test.toml:12: listeners[0].preread_max",
            "test.toml:13: listeners[0].routes[0]",
            "test.toml:13: listeners[0].routes[1].colour",
        ]
        for key in expected {
            XCTAssertTrue(problems.contains { $0.contains(key) }, "no error for \(key) in:\n\(problems.joined(separator: "\n"))")
        }
    }

    func testPoolsBelongToTheListenersLayout() {
        let problems = errors("""
            port = 8080
            [[backends]]
            host = "127.0.0.1"
            port = 9000
            [pools.web]
            backends = [{ host = "127.0.0.1", port = 9001 }]
            """)
        XCTAssertTrue(problems.contains { $0.contains("pools.web") && $0.contains("[[listeners]]") }, problems.joined(separator: "\n"))
    }

    /// The flat layout takes source rules, per-client limits and PROXY in at the top level; so does a file of
    /// `[[listeners]]`, where they are every listener's default, each key overridden where a listener sets it.
    func testTopLevelRulesGuardTheFlatListenerAndAreEveryListenersDefault() throws {
        let flat = try load("""
            port = 8443
            allow = ["10.0.0.0/8"]
            deny = ["10.1.0.0/16"]
            accept_proxy = ["192.0.2.0/24"]
            max_connections_per_client = 4
            [[backends]]
            host = "127.0.0.1"
            port = 9000
            """)
        let guarded = try XCTUnwrap(flat.listeners[0].routing)
        XCTAssertEqual("\(guarded.allow)", "[\"10.0.0.0/8\"]")
        XCTAssertEqual("\(guarded.deny)", "[\"10.1.0.0/16\"]")
        XCTAssertEqual("\(guarded.acceptProxy)", "[\"192.0.2.0/24\"]")
        XCTAssertEqual(guarded.maxConnectionsPerClient, 4)
        XCTAssertTrue(guarded.hasDefaultPool)
        XCTAssertEqual(flat.listeners[0].backends.map(\.name), ["127.0.0.1:9000"])

        let layered = try load("""
            allow = ["127.0.0.0/8"]
            max_connections_per_client = 10
            [[listeners]]
            name = "inherits"
            bind = "127.0.0.1:8080"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9000
            [[listeners]]
            name = "overrides"
            bind = "127.0.0.1:8081"
            allow = ["10.0.0.0/8"]
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9001
            """)
        let inherits = try XCTUnwrap(layered.listeners[0].routing), overrides = try XCTUnwrap(layered.listeners[1].routing)
        XCTAssertEqual("\(inherits.allow)", "[\"127.0.0.0/8\"]")
        XCTAssertEqual(inherits.maxConnectionsPerClient, 10)
        XCTAssertEqual("\(overrides.allow)", "[\"10.0.0.0/8\"]", "a listener's own key wins")
        XCTAssertEqual(overrides.maxConnectionsPerClient, 10, "and the keys it leaves out come from the top level")

        XCTAssertNil(try load("port = 8080\n[[backends]]\nhost = \"127.0.0.1\"\nport = 9000\n").listeners[0].routing,
                     "without any of them the flat listener keeps the plain path")
    }

    func testRoutesAtTheTopLevelSayWhereTheyBelong() {
        let problems = errors("""
            port = 8443
            routes = [{ sni = ["api.example.com"], pool = "api" }]
            default_pool = "api"
            allow = ["10.0.0.0/33"]
            [[backends]]
            host = "127.0.0.1"
            port = 9000
            """)
        for key in ["test.toml:2: routes", "test.toml:3: default_pool"] {
            XCTAssertTrue(problems.contains { $0.contains(key) && $0.contains("[[listeners]]") && $0.contains("[pools.NAME]") },
                          "no error for \(key) in:\n\(problems.joined(separator: "\n"))")
        }
        XCTAssertTrue(problems.contains { $0.contains("test.toml:4: allow") }, problems.joined(separator: "\n"))

        let inherited = errors("""
            deny = ["10.0.0.0/33"]
            [[listeners]]
            bind = "127.0.0.1:8080"
            backends = [{ host = "127.0.0.1", port = 9000 }]
            [[listeners]]
            bind = "127.0.0.1:8081"
            backends = [{ host = "127.0.0.1", port = 9001 }]
            """)
        XCTAssertEqual(inherited.filter { $0.contains("deny") }.count, 1, "a bad inherited key is reported once: \(inherited)")
    }

    func testBackendsAndDefaultPoolTogetherIsAnError() {
        let problems = errors("""
            [pools.web]
            backends = [{ host = "127.0.0.1", port = 9001 }]
            [[listeners]]
            bind = "127.0.0.1:8080"
            default_pool = "web"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9000
            """)
        XCTAssertTrue(problems.contains { $0.contains("default_pool") && $0.contains("not both") }, problems.joined(separator: "\n"))
    }

    func testRouteMatchingBySNIAndALPN() throws {
        let config = try load("""
            [pools.api]
            backends = [{ host = "127.0.0.1", port = 9443 }]
            [pools.h2]
            backends = [{ host = "127.0.0.1", port = 9444 }]
            [[listeners]]
            bind = "127.0.0.1:8443"
            routes = [{ sni = ["api.example.com"], pool = "api" }, { alpn = ["h2"], pool = "h2" }]
            """)
        let routes = try XCTUnwrap(config.listeners[0].routing?.routes)
        let api = ClientHello(serverName: "api.example.com", alpn: [])
        let h2 = ClientHello(serverName: "www.example.com", alpn: ["h2", "http/1.1"])
        XCTAssertTrue(routes[0].matches(api))
        XCTAssertFalse(routes[0].matches(h2))
        XCTAssertFalse(routes[0].matches(nil), "no ClientHello: no server name to match")
        XCTAssertTrue(routes[1].matches(h2))
        XCTAssertFalse(routes[1].matches(api))
    }
}
