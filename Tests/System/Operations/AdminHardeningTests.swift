import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// The admin endpoint as a side door: a bearer token beyond loopback, a connection limit, an idle timeout,
/// and its descriptors kept out of the data plane's share.
final class AdminHardeningTests: XCTestCase {
    private let token = "0f3a9c1e7b2d4a6f8e0c2b4d6a8f0e1c"

    /// One request on a new connection; the status line's code and the whole response.
    private func request(_ address: SocketAddress, _ path: String, authorization: String? = nil) throws -> (status: Int, text: String) {
        let client = try TestClient(address, timeout: 5)
        var head = "GET \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n"
        if let authorization { head += "Authorization: \(authorization)\r\n" }
        try client.send(head + "\r\n")
        let text = String(decoding: try client.receiveUntilClose(), as: UTF8.self)
        guard let code = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw TestFailure("not an HTTP response: \(text.prefix(200))")
        }
        return (code, text)
    }

    private func startProxy(admin: UInt16, extra: [String] = []) throws -> (BuiltBinary.Running, TestServer) {
        let backend = try TestServer(.echo)
        let running = try BuiltBinary("ringproxy").start([
            "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:\(backend.port)", "--threads", "1", "--no-pin",
            "--admin", "127.0.0.1:\(admin)",
        ] + extra)
        return (running, backend)
    }

    func testWithATokenEveryPathButHealthzNeedsTheBearerToken() throws {
        let file = try temporaryFile(token + "\n", suffix: ".token")
        let port = try deadAddress().port
        let (running, _) = try startProxy(admin: port, extra: ["--admin-token-file", file])
        defer { running.signal(SIGTERM); _ = running.finish() }
        let admin = SocketAddress(numericHost: "127.0.0.1", port: port)!
        XCTAssertTrue(eventually(5) { (try? self.request(admin, "/healthz"))?.status == 200 }, "/healthz needs no token (probes)")
        for path in ["/metrics", "/backends", "/nowhere"] {
            let missing = try request(admin, path)
            XCTAssertEqual(missing.status, 401, path)
            XCTAssertTrue(missing.text.contains("WWW-Authenticate: Bearer"), missing.text)
            XCTAssertFalse(missing.text.contains("127.0.0.1"), "nothing of the topology leaks: \(missing.text)")
        }
        XCTAssertEqual(try request(admin, "/metrics", authorization: "Bearer \(token.dropLast())").status, 401, "a prefix of the token")
        XCTAssertEqual(try request(admin, "/metrics", authorization: "Bearer \(token)x").status, 401, "the token and more")
        XCTAssertEqual(try request(admin, "/metrics", authorization: token).status, 401, "no Bearer scheme")
        XCTAssertEqual(try request(admin, "/backends", authorization: "Bearer \(token)").status, 200)
        let metrics = try request(admin, "/metrics", authorization: "bearer \(token)")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.text.contains("ringproxy_admin_unauthorized_total 6"), metrics.text)
    }

    func testAnAdminBeyondLoopbackWithoutATokenIsAConfigurationError() throws {
        let ringproxy = try BuiltBinary("ringproxy")
        let base = ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9000", "--check"]
        let open = try ringproxy.run(base + ["--admin", "0.0.0.0:9901"])
        XCTAssertEqual(open.status, 2)
        XCTAssertEqual(open.stderr, "ringproxy: config error: --admin: the admin endpoint on 0.0.0.0:9901 is reachable beyond this machine: "
                       + "set admin_token_file (--admin-token-file) to a file holding a bearer token, or listen on 127.0.0.1\n")
        let short = try temporaryFile("secret\n", suffix: ".token")
        let config = try temporaryFile("""
            admin = "[::]:9901"
            admin_token_file = "\(short)"
            [[backends]]
            host = "127.0.0.1"
            port = 9000
            """)
        let weak = try ringproxy.run(["--config", config, "--check"])
        XCTAssertEqual(weak.status, 2)
        XCTAssertTrue(weak.stderr.contains("\(config):2: admin_token_file: the admin token in '\(short)' is 6 characters; use at least 16"), weak.stderr)
        let file = try temporaryFile(token, suffix: ".token")
        let guarded = try ringproxy.run(base + ["--admin", "0.0.0.0:9901", "--admin-token-file", file])
        XCTAssertEqual(guarded.status, 0, guarded.stderr)
        XCTAssertTrue(guarded.stdout.contains("admin 0.0.0.0:9901 (bearer token from \(file))"), guarded.stdout)
        XCTAssertFalse(guarded.stdout.contains(token), "the token is never printed")
    }

    func testConnectionsBeyondTheLimitAreClosedAtOnceWhileOneWithinItIsAnswered() throws {
        let port = try deadAddress().port
        let (running, _) = try startProxy(admin: port)
        defer { running.signal(SIGTERM); _ = running.finish() }
        let admin = SocketAddress(numericHost: "127.0.0.1", port: port)!
        XCTAssertTrue(eventually(5) { (try? self.request(admin, "/healthz"))?.status == 200 })
        let limit = AdminLimits.standard.maxConnections
        var held = try (0..<limit - 1).map { _ in try TestClient(admin, timeout: 5) }
        let bystander = try TestClient(admin, timeout: 5)
        XCTAssertTrue(eventually(3) { (try? HTTPGet(admin, "/healthz")) == nil }, "every place is taken")
        let started = monotonicMilliseconds()
        for index in 0..<20 {
            let extra = try TestClient(admin, timeout: 5)
            XCTAssertEqual(try extra.receiveUntilClose(), [], "connection \(index) beyond the limit is closed unanswered")
        }
        let elapsed = monotonicMilliseconds() - started
        XCTAssertLessThan(elapsed, 1000, "closed at once, not after the idle timeout")
        try bystander.send("GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(String(decoding: try bystander.receiveUntilClose(), as: UTF8.self).hasPrefix("HTTP/1.1 200 OK"))
        held.removeAll()
        // The 20, and the probe that found every place taken.
        let refused = { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_admin_connections_refused_total") ?? 0 }
        XCTAssertTrue(eventually(3) { refused() >= 21 })
        print("admin limit: \(limit) open, 20 beyond it closed in \(elapsed) ms; refused_total \(refused())")
    }

    func testAnIdleAdminConnectionIsClosedAfterTheIdleTimeout() throws {
        let backend = try TestServer(.echo)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let server = AdminServer(proxy: proxy.proxy, address: SocketAddress(numericHost: "127.0.0.1", port: 0)!,
                                 limits: AdminLimits(maxConnections: 64, idleTimeout: .seconds(1)))
        let admin = try server.start()
        defer { server.stop() }
        let idle = try TestClient(admin, timeout: 5)
        let opened = monotonicMilliseconds()
        XCTAssertEqual(try idle.receiveUntilClose(), [])
        let lasted = monotonicMilliseconds() - opened
        XCTAssertGreaterThanOrEqual(lasted, 950)
        XCTAssertLessThan(lasted, 1500)
        XCTAssertEqual(try HTTPGet(admin, "/metrics").metric("ringproxy_admin_idle_closed_total"), 1)
        print("admin idle timeout 1 s: closed after \(lasted) ms")
    }

    func testTheAdminConnectionLimitIsKeptOutOfTheDataPlanesDescriptors() throws {
        let backend = try TestServer(.echo)
        let ringproxy = try BuiltBinary("ringproxy")
        func loweredTo(admin: Bool) throws -> Int {
            let ports = try deadAddresses(2).map(\.port)
        let (port, adminPort) = (ports[0], ports[1])
            let running = try BuiltBinary.shell(
                "ulimit -n 256 && exec \(ringproxy.url.path) --listen 127.0.0.1:\(port) --backend 127.0.0.1:\(backend.port) --threads 1 --no-pin"
                    + (admin ? " --admin 127.0.0.1:\(adminPort)" : ""))
            let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
            XCTAssertTrue(eventually(5) { (try? TestClient(address)) != nil })
            running.signal(SIGTERM)
            let stderr = running.finish().stderr
            guard let value = stderr.split(separator: " ").first(where: { $0.hasPrefix("lowered_to=") }).flatMap({ Int($0.dropFirst(11)) }) else {
                throw TestFailure("no lowered max_connections in: \(stderr)")
            }
            return value
        }
        let without = try loweredTo(admin: false), with = try loweredTo(admin: true)
        XCTAssertEqual(without - with, AdminLimits.standard.descriptors / 2, "two descriptors per client, \(AdminLimits.standard.descriptors) for the admin")
        print("ulimit -n 256: max_connections \(without) without the admin endpoint, \(with) with it")
    }
}
