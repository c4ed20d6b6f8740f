@testable import RingProxy
import XCTest

/// The configuration file: both layouts, every section, and errors that name their key and line.
final class ConfigTests: XCTestCase, ConfigLoading {
    func testListenersLayoutWithHealthAndOperations() throws {
        let config = try load("""
            balance = "round-robin"
            admin = 9901
            drain_timeout = "10s"
            report_interval = 5
            log_format = "json"

            [health]
            fail_threshold = 5
            fail_timeout = "30s"
            interval = "2s"
            rise = 3

            [[listeners]]
            name = "web"
            bind = "127.0.0.1:8080"
            send_proxy = "v2"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9000
            weight = 3
            max_connections = 100
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9001

            [[listeners]]
            name = "cache"
            host = "127.0.0.1"
            port = 6380
            balance = "source-hash"
            [[listeners.backends]]
            host = "::1"
            port = 6379
            [[listeners.backends]]
            host = "[::1]"
            port = 6380
            """)
        XCTAssertEqual(config.listeners.map(\.name), ["web", "cache"])
        XCTAssertEqual(config.listeners.map(\.balance), [.roundRobin, .sourceHash], "a listener inherits the top-level balance")
        XCTAssertEqual(config.listeners.map(\.sendProxy), [.v2, nil])
        XCTAssertEqual(config.listeners[0].backends.map(\.weight), [3, 1])
        XCTAssertEqual(config.listeners[0].backends.map(\.maxConnections), [100, 0])
        XCTAssertEqual(config.listeners[1].backends.map(\.name), ["[::1]:6379", "[::1]:6380"], "an IPv6 host may come with or without brackets")
        XCTAssertEqual(config.listeners[1].address.port, 6380)
        XCTAssertEqual(config.health.failThreshold, 5)
        XCTAssertEqual(config.health.failTimeout, .seconds(30))
        XCTAssertEqual(config.health.checks, HealthChecks(interval: .seconds(2), timeout: .seconds(2), rise: 3, fall: 3))
        XCTAssertEqual(config.admin?.description, "127.0.0.1:9901", "the admin endpoint stays local unless told otherwise")
        XCTAssertEqual(config.drainTimeout, .seconds(10))
        XCTAssertEqual(config.reportInterval, .seconds(5))
        XCTAssertEqual(config.logFormat, .json)
    }

    func testFlatLayoutKeepsItsDefaults() throws {
        let config = try load("port = 8080\n[[backends]]\nhost = \"127.0.0.1\"\nport = 9000\n")
        XCTAssertEqual(config.listeners.count, 1)
        XCTAssertEqual(config.listeners[0].name, "default")
        XCTAssertEqual(config.listeners[0].address.description, "0.0.0.0:8080")
        XCTAssertEqual(config.listeners[0].balance, .powerOfTwoChoices)
        XCTAssertNil(config.health.checks)
        XCTAssertNil(config.admin)
        XCTAssertEqual(config.drainTimeout, .seconds(30))
    }

    /// Workers are pinned only when given CPUs of their own (or told to): on a shared host a pinned worker
    /// waits for a busy CPU while another idles.
    func testWorkersArePinnedOnlyWithCPUsOrWhenAsked() throws {
        let pool = "\n[[backends]]\nhost = \"127.0.0.1\"\nport = 9000\n"
        XCTAssertFalse(try load("port = 8080" + pool).pin)
        XCTAssertTrue(try load("port = 8080\ncpus = \"1\"" + pool).pin)
        XCTAssertTrue(try load("port = 8080\npin = true" + pool).pin)
        XCTAssertFalse(try load("port = 8080\ncpus = \"1\"\npin = false" + pool).pin)
    }

    func testMixingTheFlatLayoutWithListenersIsAnError() {
        let problems = errors("""
            port = 8080
            [[backends]]
            host = "127.0.0.1"
            port = 9000
            [[listeners]]
            bind = "127.0.0.1:8081"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9001
            """)
        XCTAssertEqual(problems, ["config error: test.toml:1: port: the flat layout (host, port, [[backends]], --listen, --backend) cannot be mixed with [[listeners]]"])
    }

    func testErrorsInNestedTablesNameTheirKeyAndLine() {
        let problems = errors("""
            balance = "fastest"
            [health]
            rise = 2
            [[listeners]]
            name = "a"
            bind = "127.0.0.1:8080"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9000
            [[listeners]]
            name = "a"
            bind = "127.0.0.1:8081"
            send_proxy = "v3"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9000
            wieght = 2
            [[listeners.backends]]
            host = "127.0.0.1"
            port = 9000
            max_connections = -1
            """)
        XCTAssertEqual(problems, [
            "config error: test.toml:1: balance: expected one of \"weighted-random\", \"round-robin\", \"least-conn\", \"p2c\", \"source-hash\", got 'fastest'",
            "config error: test.toml:3: health.rise: active health checks need health.interval",
            "config error: test.toml:11: listeners[1].name: duplicate listener name 'a' (already used by listeners[0])",
            "config error: test.toml:13: listeners[1].send_proxy: expected \"v1\", \"v2\" or \"none\", got 'v3'",
            "config error: test.toml:17: listeners[1].backends[0].wieght: unknown key (did you mean 'weight'?)",
            "config error: test.toml:18: listeners[1].backends[1]: duplicate backend 127.0.0.1:9000 (already listed as listeners[1].backends[0])",
            "config error: test.toml:21: listeners[1].backends[1].max_connections: expected a connection limit (0 = none) from 0 to 10000000, got -1",
        ])
    }

    func testWindowsLineEndsKeepLineNumbers() {
        let problems = errors("host = \"127.0.0.1\"\r\nport = 8080\r\n\r\n[[backends]]\r\nhost = \"127.0.0.1\"\r\nport = 70000\r\n")
        XCTAssertEqual(problems, ["config error: test.toml:6: backends[0].port: expected a port from 1 to 65535, got 70000"])
    }

    func testListenerWithoutBackendsOrAddressIsAnError() {
        let problems = errors("[[listeners]]\nname = \"lonely\"\n")
        XCTAssertEqual(problems, [
            "config error: test.toml:1: listeners[0]: missing bind (host:port)",
            "config error: test.toml: listeners[0].backends: no backends: add [[listeners.backends]] entries under this listener",
        ])
    }
}

/// `[health]`'s check types and slow start.
final class HealthCheckConfigTests: XCTestCase {
    private func load(_ health: String) throws -> ProxyConfig {
        try ProxyConfig.validate(ConfigFile.parse("port = 8080\n[health]\n\(health)\n[[backends]]\nhost = \"127.0.0.1\"\nport = 9000\n", file: "t.toml"),
                                 file: "t.toml", allowedCPUs: [0])
    }

    private func errors(_ health: String) -> String {
        do { _ = try load(health); return "" } catch { return "\(error)" }
    }

    func testSendExpectWithTextOrHexAndAWindow() throws {
        let redis = try load("interval = \"1s\"\ntype = \"send-expect\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"\nexpect_within = 64")
        XCTAssertEqual(redis.health.checks?.probe, .sendExpect(send: Array("PING\r\n".utf8), expect: Array("+PONG".utf8), within: 64))
        let postgres = try load("interval = 1\ntype = \"send-expect\"\nsend_hex = \"00000008 04d2162f\"\nexpect = \"N\"\ncheck_port = 5433")
        XCTAssertEqual(postgres.health.checks?.probe, .sendExpect(send: [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F], expect: [0x4E], within: 4096))
        XCTAssertEqual(postgres.health.checks?.port, 5433)
    }

    func testHTTPWithMethodPathHostAndStatuses() throws {
        let config = try load("interval = 1\ntype = \"http\"\npath = \"/primary\"\nhost = \"db\"\nstatus = [200, 204]\nslow_start = \"30s\"")
        XCTAssertEqual(config.health.checks?.probe, .http(HTTPProbe(method: "GET", path: "/primary", host: "db", statuses: [200, 204])))
        XCTAssertEqual(config.health.slowStart, .seconds(30))
        XCTAssertEqual(try load("").health.slowStart, .zero)
        XCTAssertEqual(try load("interval = 1").health.checks?.probe, .connect)
    }

    func testBadCheckKeysAreErrorsThatNameTheKey() {
        XCTAssertTrue(errors("interval = 1\ntype = \"ping\"").contains("health.type: expected \"connect\", \"send-expect\" or \"http\", got \"ping\""))
        XCTAssertTrue(errors("interval = 1\ntype = \"send-expect\"\nsend = \"PING\"").contains("needs health.expect"))
        XCTAssertTrue(errors("interval = 1\ntype = \"send-expect\"\nexpect = \"x\"\nsend_hex = \"0g\"").contains("health.send_hex: expected pairs of hex digits"))
        XCTAssertTrue(errors("interval = 1\ntype = \"http\"\nexpect = \"x\"").contains("health.expect: applies to health.type = \"send-expect\" only"))
        XCTAssertTrue(errors("interval = 1\npath = \"/x\"").contains("health.path: applies to health.type = \"http\" only"))
        XCTAssertTrue(errors("interval = 1\ntype = \"http\"\nstatus = [99]").contains("health.status: expected HTTP status codes"))
        XCTAssertTrue(errors("interval = 1\ntype = \"http\"\npath = \"no-slash\"").contains("health.path: expected a path starting with '/'"))
        XCTAssertTrue(errors("type = \"http\"").contains("health.type: active health checks need health.interval"))
        XCTAssertTrue(errors("slow_start = -1").contains("health.slow_start: expected a duration like 3"))
    }
}
