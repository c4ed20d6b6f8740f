import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// The routing stage seen from operations: its metrics (rejections by reason, a route's backends), and a
/// reload that changes the source rules without touching open connections.
final class RoutingOperationsTests: XCTestCase {
    func testMetricsCountRejectionsByReasonAndShowRoutePools() throws {
        let api = try TestServer(.echo), web = try TestServer(.echo)
        let proxy = try RoutedProxy("""
            [pools.api]
            backends = \(backendList([api.address]))
            [[listeners]]
            name = "front"
            bind = "127.0.0.1:0"
            deny = ["127.0.0.9/32"]
            routes = [{ sni = ["api.example.com"], pool = "api" }]
            [[listeners.backends]]
            host = "127.0.0.1"
            port = \(web.port)
            """, threads: 1)
        defer { proxy.stop() }
        let admin = AdminServer(proxy: proxy.proxy, address: SocketAddress(numericHost: "127.0.0.1", port: 0)!)
        let adminAddress = try admin.start()
        defer { admin.stop() }

        let hello = ClientHelloBytes.make(serverName: "api.example.com")
        let client = try TestClient(proxy.address())
        try client.send(hello)
        XCTAssertEqual(try client.receive(exactly: hello.count), hello)
        let denied = try TestClient(proxy.address(), from: SocketAddress(numericHost: "127.0.0.9", port: 0)!)
        XCTAssertNotEqual(denied.awaitEnd(within: 3).end, .stillOpen)

        let metrics = try HTTPGet(adminAddress, "/metrics")
        XCTAssertEqual(metrics.metric("ringproxy_worker_rejected_total{worker=\"0\",reason=\"denied\"}"), 1, metrics.body)
        XCTAssertEqual(metrics.metric("ringproxy_worker_rejected_total{worker=\"0\",reason=\"no_route\"}"), 0)
        XCTAssertEqual(metrics.metric("ringproxy_worker_routed_total{worker=\"0\"}"), 1)
        XCTAssertEqual(metrics.metric("ringproxy_worker_held_bytes{worker=\"0\"}"), 0)
        XCTAssertEqual(metrics.metric("ringproxy_backend_connections_total{listener=\"front\",backend=\"api/127.0.0.1:\(api.port)\"}"), 1)
        XCTAssertEqual(metrics.metric("ringproxy_backend_connections_total{listener=\"front\",backend=\"127.0.0.1:\(web.port)\"}"), 0)
    }

    func testAReloadChangesTheRulesWithoutTouchingOpenConnections() throws {
        let backend = try TestServer(.echo)
        let listener = { (deny: String) in
            """
            [[listeners]]
            name = "guarded"
            bind = "127.0.0.1:0"
            deny = [\(deny)]
            [[listeners.backends]]
            host = "127.0.0.1"
            port = \(backend.port)
            """
        }
        let proxy = try RoutedProxy(listener("\"192.0.2.0/24\""))
        defer { proxy.stop() }
        let source = SocketAddress(numericHost: "127.0.0.7", port: 0)!
        let open = try TestClient(proxy.address(), from: source)
        try open.send("before\n")
        XCTAssertEqual(try open.receiveLine(), "before")

        try proxy.reload(listener("\"127.0.0.7/32\""))
        let refused = try TestClient(proxy.address(), from: source)
        XCTAssertNotEqual(refused.awaitEnd(within: 3).end, .stillOpen, "the new rule turns a new connection away")
        XCTAssertTrue(eventually(3) { proxy.total(.rejectedDenied) == 1 })
        for round in 0..<10 {
            try open.send("after \(round)\n")
            XCTAssertEqual(try open.receiveLine(), "after \(round)", "the open connection keeps flowing")
        }
    }

    /// The client a trusted PROXY header names is the client of the access log; a rejected client has its line
    /// too, with its reason.
    func testTheAccessLogNamesTheProxiedClientAndTheRejectionReason() throws {
        let backend = try TestServer(.echo)
        let log = CapturedLog()
        let proxy = try RoutedProxy("""
            access_log = true
            [[listeners]]
            name = "front"
            bind = "127.0.0.1:0"
            accept_proxy = ["127.0.0.2/32"]
            deny = ["192.0.2.66/32"]
            [[listeners.backends]]
            host = "127.0.0.1"
            port = \(backend.port)
            """, log: log)
        defer { proxy.stop() }
        let balancer = SocketAddress(numericHost: "127.0.0.2", port: 0)!
        let served = try TestClient(proxy.address(), from: balancer)
        try served.send("PROXY TCP4 192.0.2.55 127.0.0.1 5555 443\r\nhello\n")
        XCTAssertEqual(try served.receiveLine(), "hello")
        served.shutdownWrite()
        XCTAssertEqual(served.awaitEnd(within: 3).end, .endOfStream)
        let denied = try TestClient(proxy.address(), from: balancer)
        try denied.send("PROXY TCP4 192.0.2.66 127.0.0.1 6666 443\r\n")
        XCTAssertNotEqual(denied.awaitEnd(within: 3).end, .stillOpen)
        XCTAssertTrue(eventually(3) { log.all.filter { $0.hasPrefix("connection closed") }.count == 2 }, log.all.joined(separator: "\n"))
        let lines = log.all.filter { $0.hasPrefix("connection closed") }
        XCTAssertTrue(lines.contains { $0.contains("client=192.0.2.55:5555") && $0.contains("reason=completed") && $0.contains("bytes_up=6") },
                      lines.joined(separator: "\n"))
        XCTAssertTrue(lines.contains { $0.contains("client=192.0.2.66:6666") && $0.contains("reason=denied") }, lines.joined(separator: "\n"))
    }
}
