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
}
