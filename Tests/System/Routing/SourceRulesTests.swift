import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// Source rules (allow, deny: deny wins, an empty allow is all) and per-client limits, exact across workers,
/// from many 127.x.y.z source addresses.
final class SourceRulesTests: XCTestCase {
    private func listener(_ backend: SocketAddress, _ keys: String) -> String {
        """
        [[listeners]]
        name = "guarded"
        bind = "127.0.0.1:0"
        \(keys)
        [[listeners.backends]]
        host = "\(backend.host)"
        port = \(backend.port)
        """
    }

    private func served(_ proxy: RoutedProxy, from source: String) -> Bool {
        guard let client = try? TestClient(proxy.address(), from: SocketAddress(numericHost: source, port: 0)!, timeout: 3) else { return false }
        return (try? client.receiveLine()) == "ok"
    }

    func testAllowAndDenyMatrix() throws {
        let backend = try TestServer(.banner("ok"))
        let cases: [(keys: String, served: [String], refused: [String])] = [
            ("deny = [\"127.0.0.5/32\"]", ["127.0.0.1", "127.0.1.1"], ["127.0.0.5"]),
            ("allow = [\"127.0.0.0/24\"]", ["127.0.0.1", "127.0.0.5"], ["127.0.1.1"]),
            ("allow = [\"127.0.0.0/24\"]\ndeny = [\"127.0.0.5/32\"]", ["127.0.0.1"], ["127.0.0.5", "127.0.1.1"]),
            ("allow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.0/8\"]", [], ["127.0.0.1", "127.0.1.1"]),
            ("allow = [\"::1/128\"]", [], ["127.0.0.1"]),
        ]
        for (keys, allowed, refused) in cases {
            let proxy = try RoutedProxy(listener(backend.address, keys))
            defer { proxy.stop() }
            for source in allowed { XCTAssertTrue(served(proxy, from: source), "\(keys): \(source) refused") }
            for source in refused { XCTAssertFalse(served(proxy, from: source), "\(keys): \(source) served") }
            XCTAssertTrue(eventually(3) { proxy.total(.rejectedDenied) == refused.count }, "\(keys): denied \(proxy.total(.rejectedDenied))")
        }
    }

    /// The one-listener flat layout takes the rules at the top level: the binary with such a file shows them in
    /// `--check`, refuses and serves by them, and a SIGHUP with new rules applies them to the next clients.
    func testTheFlatLayoutTakesRulesAtTheTopLevelAndAReloadChangesThem() throws {
        let backend = try TestServer(.banner("ok"))
        let port = try deadAddress().port
        func file(_ rules: String) -> String {
            "port = \(port)\nhost = \"127.0.0.1\"\n\(rules)\n[[backends]]\nhost = \"127.0.0.1\"\nport = \(backend.port)\n"
        }
        let path = try temporaryFile(file("allow = [\"127.0.0.0/24\"]\ndeny = [\"127.0.0.5\"]"))
        defer { unlink(path) }
        let ringproxy = try BuiltBinary("ringproxy")
        let check = try ringproxy.run(["--config", path, "--check"])
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertTrue(check.stdout.contains("    allow [\"127.0.0.0/24\"]; deny [\"127.0.0.5/32\"]"), check.stdout)
        // The flags are the same keys: each one given replaces the file's, the others stay.
        let flagged = try ringproxy.run(["--config", path, "--allow", "127.0.1.0/24", "--max-connections-per-client", "3", "--check"])
        XCTAssertTrue(flagged.stdout.contains("    allow [\"127.0.1.0/24\"]; deny [\"127.0.0.5/32\"]; at most 3 connections per client"),
                      flagged.stdout + flagged.stderr)
        let bad = try ringproxy.run(["--config", path, "--deny", "10.0.0.0/33", "--check"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertEqual(bad.stderr, "ringproxy: config error: --deny: expected an address block like \"10.0.0.0/8\" or \"::1/128\", got '10.0.0.0/33'\n",
                       "a flag's problem, named by the flag alone (not the file's)")
        let running = try ringproxy.start(["--config", path, "--threads", "1", "--no-pin"])
        defer {
            running.signal(SIGKILL)
            _ = running.finish()
        }
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        func served(from source: String) -> Bool {
            guard let client = try? TestClient(address, from: SocketAddress(numericHost: source, port: 0)!, timeout: 3) else { return false }
            return (try? client.receiveLine()) == "ok"
        }
        XCTAssertTrue(eventually(5) { served(from: "127.0.0.1") }, "the proxy serves an allowed source")
        XCTAssertFalse(served(from: "127.0.0.5"), "denied")
        XCTAssertFalse(served(from: "127.0.1.1"), "not allowed")

        try file("deny = [\"127.0.0.1\"]").write(toFile: path, atomically: true, encoding: .utf8)
        running.signal(SIGHUP)
        XCTAssertTrue(eventually(5) { served(from: "127.0.1.1") }, "the reloaded rules allow every source not denied")
        XCTAssertTrue(served(from: "127.0.0.5"))
        XCTAssertFalse(served(from: "127.0.0.1"), "denied after the reload")
    }

    /// Behind a trusted balancer the rules apply to the client its header names.
    func testRulesApplyToTheAddressThePROXYHeaderNames() throws {
        let backend = try TestServer(.banner("ok"))
        let proxy = try RoutedProxy(listener(backend.address, """
            accept_proxy = ["127.0.0.2/32"]
            deny = ["192.0.2.0/24"]
            """))
        defer { proxy.stop() }
        let balancer = SocketAddress(numericHost: "127.0.0.2", port: 0)!
        let denied = try TestClient(proxy.address(), from: balancer)
        try denied.send("PROXY TCP4 192.0.2.9 127.0.0.1 5000 443\r\n")
        XCTAssertNotEqual(denied.awaitEnd(within: 3).end, .stillOpen)
        let allowed = try TestClient(proxy.address(), from: balancer)
        try allowed.send("PROXY TCP4 198.51.100.9 127.0.0.1 5000 443\r\n")
        XCTAssertEqual(try allowed.receiveLine(), "ok")
        XCTAssertTrue(eventually(3) { proxy.total(.rejectedDenied) == 1 })
    }

    /// `max_connections_per_client = 3` with two workers: the fourth connection of one client is closed,
    /// whichever worker takes it; other clients are not touched; a closed connection frees its place.
    func testConnectionsPerClientAreExactAcrossWorkers() throws {
        let backend = try TestServer(.banner("ok"))
        let proxy = try RoutedProxy(listener(backend.address, "max_connections_per_client = 3"), threads: 2)
        defer { proxy.stop() }
        for round in 0..<5 {
            let source = "127.0.2.\(round + 1)"
            var open = try (0..<3).map { _ in try TestClient(proxy.address(), from: SocketAddress(numericHost: source, port: 0)!) }
            for client in open { XCTAssertEqual(try client.receiveLine(), "ok", source) }
            XCTAssertFalse(served(proxy, from: source), "\(source): a fourth connection was served")
            open.removeLast()
            XCTAssertTrue(eventually(3) { self.served(proxy, from: source) }, "\(source): a closed connection did not free its place")
            _ = open
        }
        XCTAssertGreaterThanOrEqual(proxy.total(.rejectedClientConnections), 5)
        // Many clients, each within its limit, are all served.
        for index in 0..<200 {
            XCTAssertTrue(served(proxy, from: "127.3.\(index / 200).\(index % 200 + 1)"), "client \(index)")
        }
    }

    /// `new_connections_per_client = 5` with a burst of 5: ten quick connections from one client get five
    /// through (a sixth if a refill falls in the loop), and the client is served again a second later.
    func testNewConnectionsPerClientFollowTheTokenBucket() throws {
        let backend = try TestServer(.banner("ok"))
        let proxy = try RoutedProxy(listener(backend.address, "new_connections_per_client = 5\nnew_connections_burst = 5"), threads: 2)
        defer { proxy.stop() }
        let started = monotonicMilliseconds()
        let outcomes = (0..<10).map { _ in served(proxy, from: "127.0.4.1") }
        let elapsed = monotonicMilliseconds() - started
        let through = outcomes.filter { $0 }.count
        XCTAssertGreaterThanOrEqual(through, 5)
        XCTAssertLessThanOrEqual(through, 5 + Int(elapsed * 5 / 1000) + 1, "\(through) through in \(elapsed) ms")
        XCTAssertEqual(outcomes.prefix(5), [true, true, true, true, true])
        XCTAssertTrue(served(proxy, from: "127.0.4.2"), "another client has its own bucket")
        usleep(1_100_000)
        XCTAssertTrue(served(proxy, from: "127.0.4.1"), "refilled")
        XCTAssertEqual(proxy.total(.rejectedClientRate), 10 - through)
    }
}
