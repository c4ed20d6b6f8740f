import Foundation
@testable import RingProxy
import XCTest

/// DNS discovery in a named pool that a route names (`[pools.NAME]` under `routes`): its name is followed like
/// a listener's own backends, and a client routed there by its server name reaches the address the name has now.
final class DiscoveryRoutingTests: XCTestCase {
    func testARoutesPoolFollowsItsNameWhileTheDefaultPoolStays() throws {
        let api = "api.\(DNSMasq.domain)"
        var first: TestServer?
        var second: TestServer?
        for _ in 0..<20 where second == nil {
            let server = try TestServer(.banner("127.0.0.2"), host: "127.0.0.2")
            first = server
            second = try? TestServer(.banner("127.0.0.3"), host: "127.0.0.3", port: server.port)
        }
        let port = try XCTUnwrap(second, "no port is free on 127.0.0.2 and 127.0.0.3").port
        let web = try TestServer(.banner("web"))
        let dns = try DNSMasq(hosts: ["127.0.0.2 \(api)"])
        let proxy = try RoutedProxy("""
            resolvers = ["\(dns.resolver)"]
            [pools.api]
            backends = [{ host = "\(api)", port = \(port) }]
            [pools.web]
            backends = [{ host = "127.0.0.1", port = \(web.port) }]
            [[listeners]]
            bind = "127.0.0.1:0"
            routes = [{ sni = ["api.example.com"], pool = "api" }]
            default_pool = "web"
            """)
        defer { proxy.stop() }
        func answer(serverName: String?) throws -> String? {
            let client = try TestClient(proxy.address())
            try client.send(ClientHelloBytes.make(serverName: serverName))
            return try client.receiveLine()
        }
        XCTAssertEqual(try answer(serverName: "api.example.com"), "127.0.0.2", "the name's address at start")
        XCTAssertEqual(try answer(serverName: nil), "web")

        try dns.setHosts(["127.0.0.3 \(api)"])
        XCTAssertTrue(eventually(10) { (try? answer(serverName: "api.example.com")) == "127.0.0.3" },
                      "the route's pool follows the new record")
        XCTAssertEqual(try answer(serverName: "api.example.com"), "127.0.0.3", "and stays on it")
        XCTAssertEqual(try answer(serverName: nil), "web", "the default pool is untouched")
        XCTAssertEqual(proxy.proxy.plan.listeners[0].routing?.pools.first?.members.map(\.origin), ["\(api)"])
        withExtendedLifetime(first) {}
    }
}
