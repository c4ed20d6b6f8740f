import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// TLS stays end to end: the proxy reads the ClientHello's server name, picks the pool, and sends the hello
/// on byte for byte.
final class SNIRoutingTests: XCTestCase {
    private func frontDoor(_ api: SocketAddress, _ web: SocketAddress, _ mail: SocketAddress, defaultPool: Bool = false,
                           extra: String = "") -> String {
        """
        [pools.api]
        backends = \(backendList([api]))
        [pools.web]
        backends = \(backendList([web]))
        [pools.mail]
        backends = \(backendList([mail]))
        [[listeners]]
        name = "front"
        bind = "127.0.0.1:0"
        \(defaultPool ? "default_pool = \"web\"" : "")
        \(extra)
        routes = [
          { sni = ["api.example.com"], pool = "api" },
          { sni = ["*.mail.example.com", "mail.example.com"], pool = "mail" },
          { sni = ["*.example.com"], pool = "web" },
        ]
        """
    }

    func testCurlReachesEachOfThreeTLSServicesByServerName() throws {
        let servers = try ["api.example.com", "www.example.com", "mail.example.com"].map { try TLSServer(name: $0) }
        let proxy = try RoutedProxy(frontDoor(servers[0].address, servers[1].address, servers[2].address))
        defer { proxy.stop() }
        XCTAssertEqual(try curlWho("api.example.com", via: proxy.address()), "api.example.com")
        XCTAssertEqual(try curlWho("www.example.com", via: proxy.address()), "www.example.com")
        XCTAssertEqual(try curlWho("mail.example.com", via: proxy.address()), "mail.example.com")
        XCTAssertEqual(try curlWho("API.Example.COM", via: proxy.address()), "api.example.com", "server names match case-insensitively")
        XCTAssertEqual(proxy.total(.routed), 4)

        // No route and no default pool: closed, counted.
        XCTAssertNil(try curlWho("www.example.org", via: proxy.address()))
        XCTAssertTrue(eventually(5) { proxy.total(.rejectedNoRoute) == 1 }, "no_route \(proxy.total(.rejectedNoRoute))")
    }

    /// nginx's http module with `listen ... ssl` as the backends, one server per name on a port of its own,
    /// each answering with its name: curl through the proxy reaches each by server name and verifies that
    /// server's own certificate (TLS runs end to end), a wildcard route included; a name with no route is
    /// closed and counted.
    func testCurlReachesNginxTLSServersByServerName() throws {
        let names = ["api.example.com", "www.example.com", "mail.example.com"]
        let certificates = NSTemporaryDirectory() + "ringproxy-nginx-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        var servers = ""
        let addresses = try deadAddresses(names.count)
        for (name, address) in zip(names, addresses) {
            try makeCertificate(for: name, key: "\(certificates)/\(name).key", certificate: "\(certificates)/\(name).pem")
            servers += """
                server {
                    listen 127.0.0.1:\(address.port) ssl;
                    server_name \(name);
                    ssl_certificate \(certificates)/\(name).pem;
                    ssl_certificate_key \(certificates)/\(name).key;
                    location / { return 200 "\(name)\\n"; }
                }

                """
        }
        let nginx = try StreamNginx(servers: servers, module: .http)
        defer { nginx.stop() }
        XCTAssertTrue(eventually(5) { addresses.allSatisfy { (try? TestClient($0)) != nil } }, "nginx did not start")
        let proxy = try RoutedProxy(frontDoor(addresses[0], addresses[1], addresses[2]))
        defer { proxy.stop() }
        for name in names {
            XCTAssertEqual(try curlWho(name, via: proxy.address(), trusting: "\(certificates)/\(name).pem"), name)
        }
        XCTAssertEqual(try curlWho("shop.example.com", via: proxy.address()), "www.example.com", "*.example.com")
        XCTAssertNil(try curlWho("shop.example.com", via: proxy.address(), trusting: "\(certificates)/www.example.com.pem"),
                     "curl checks the name against the backend's certificate: verification is real")
        XCTAssertEqual(proxy.total(.routed), 5)

        XCTAssertNil(try curlWho("www.example.org", via: proxy.address()))
        XCTAssertTrue(eventually(5) { proxy.total(.rejectedNoRoute) == 1 }, "no_route \(proxy.total(.rejectedNoRoute))")
        XCTAssertEqual(proxy.total(.routed), 5, "the unrouted name reached no backend")
    }

    func testOpensslClientWithServerNameGetsTheServersCertificate() throws {
        let openssl = try requireTool(["/usr/bin/openssl"], install: "apt-get install openssl")
        let servers = try ["api.example.com", "www.example.com", "mail.example.com"].map { try TLSServer(name: $0) }
        let proxy = try RoutedProxy(frontDoor(servers[0].address, servers[1].address, servers[2].address))
        defer { proxy.stop() }
        for name in ["api.example.com", "shop.example.com", "imap.mail.example.com"] {
            let expected = name == "api.example.com" ? "api.example.com" : name.hasSuffix("mail.example.com") ? "mail.example.com" : "www.example.com"
            let outcome = try BuiltBinary.Running(executable: "/bin/sh", arguments: [
                "/bin/sh", "-c",
                "echo | \(openssl) s_client -connect 127.0.0.1:\(proxy.address().port) -servername \(name) 2>&1",
            ]).finish()
            XCTAssertTrue(outcome.stdout.contains("CN = \(expected)") || outcome.stdout.contains("CN=\(expected)"),
                          "\(name): \(outcome.stdout.prefix(600))")
        }
    }

    /// The hello goes to the backend as it came, whether it came in one piece, a byte at a time, split over
    /// several TLS records, or at 8 KiB; then the rest of the stream follows.
    func testHeldBytesReachTheBackendByteExact() throws {
        let api = try TestServer(.replyOnEOF), web = try TestServer(.replyOnEOF), mail = try TestServer(.replyOnEOF)
        let proxy = try RoutedProxy(frontDoor(api.address, web.address, mail.address))
        defer { proxy.stop() }
        let cases: [(String, [UInt8], Int)] = [
            ("whole", ClientHelloBytes.make(serverName: "api.example.com"), 0),
            ("8 KiB", ClientHelloBytes.make(serverName: "api.example.com", alpn: ["h2", "http/1.1"], size: 8192), 0),
            ("three records", ClientHelloBytes.make(serverName: "api.example.com", size: 3000, recordSize: 1000), 0),
            ("a byte at a time", ClientHelloBytes.make(serverName: "api.example.com", size: 600), 1),
        ]
        for (index, (label, hello, chunk)) in cases.enumerated() {
            let client = try TestClient(proxy.address())
            let rest = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            if chunk == 0 {
                try client.send(hello)
            } else {
                for byte in hello {
                    try client.send([byte])
                    usleep(200)
                }
            }
            try client.send(rest)
            client.shutdownWrite()
            XCTAssertEqual(try client.receiveLine(), replyLine(for: hello + rest), label)
            XCTAssertEqual(api.acceptedCount, index + 1, "\(label) went to the api pool")
        }
        XCTAssertEqual(web.acceptedCount + mail.acceptedCount, 0)
        XCTAssertEqual(proxy.total(.heldBytes), 0, "held bytes are freed once sent")
    }

    /// Behind a balancer: a PROXY header, then a ClientHello, with the segments cut anywhere (the header's end
    /// and the hello's start in one, the hello's rest later; the header itself in two). The header is stripped,
    /// the hello routed by its name and delivered byte-exact, followed by the stream.
    func testAPROXYHeaderThenAClientHelloInPiecesIsStrippedAndRoutedByteExact() throws {
        let api = try TestServer(.replyOnEOF), web = try TestServer(.replyOnEOF), mail = try TestServer(.replyOnEOF)
        let proxy = try RoutedProxy(frontDoor(api.address, web.address, mail.address, extra: "accept_proxy = [\"127.0.0.0/8\"]"))
        defer { proxy.stop() }
        // Headers as our own send_proxy writes them (nginx reads those: PoolTests.testNginxReadsOurProxyProtocolHeader).
        let (source, destination) = (SocketAddress(numericHost: "192.0.2.1", port: 40000)!, SocketAddress(numericHost: "127.0.0.1", port: 443)!)
        let v1 = ProxyProtocolVersion.v1.header(source: source, destination: destination)
        let v2 = ProxyProtocolVersion.v2.header(source: source, destination: destination)
        let hello = ClientHelloBytes.make(serverName: "api.example.com", size: 3000, recordSize: 1000)
        let rest = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        // Each case: the segments the client sends, in order.
        let cases: [(String, [[UInt8]])] = [
            ("v1 + half the hello, then the rest", [v1 + hello[0..<1500], Array(hello[1500...])]),
            ("v2 + 5 bytes of the hello, then the rest", [v2 + hello[0..<5], Array(hello[5...])]),
            ("v1 in two, the second half with the hello's first record", [Array(v1[0..<10]), Array(v1[10...]) + hello[0..<1005], Array(hello[1005...])]),
            ("v2 alone, then the hello a record at a time", [v2, Array(hello[0..<1005]), Array(hello[1005..<2010]), Array(hello[2010...])]),
        ]
        for (index, (label, segments)) in cases.enumerated() {
            let client = try TestClient(proxy.address())
            for segment in segments {
                try client.send(segment)
                usleep(20_000)  // each its own segment, and the proxy has looked at what came so far
            }
            try client.send(rest)
            client.shutdownWrite()
            XCTAssertEqual(try client.receiveLine(), replyLine(for: hello + rest), label)
            XCTAssertEqual(api.acceptedCount, index + 1, "\(label) went to the api pool")
        }
        XCTAssertEqual(web.acceptedCount + mail.acceptedCount, 0)
        XCTAssertEqual(proxy.total(.rejectedProxyHeader) + proxy.total(.rejectedProxyHeaderTimeout), 0)
        XCTAssertEqual(proxy.total(.heldBytes), 0, "held bytes are freed once sent")
    }

    /// Bytes that are not TLS have no server name: the default pool takes them, byte-exact.
    func testNonTLSBytesTakeTheDefaultPool() throws {
        let api = try TestServer(.replyOnEOF), web = try TestServer(.replyOnEOF), mail = try TestServer(.replyOnEOF)
        let proxy = try RoutedProxy(frontDoor(api.address, web.address, mail.address, defaultPool: true))
        defer { proxy.stop() }
        let request = Array("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n".utf8)
        let client = try TestClient(proxy.address())
        try client.send(request)
        client.shutdownWrite()
        XCTAssertEqual(try client.receiveLine(), replyLine(for: request))
        XCTAssertEqual(web.acceptedCount, 1)
        XCTAssertEqual(api.acceptedCount, 0)
    }

    /// A hello longer than `preread_max` is not waited for: the client takes the default pool, and every byte
    /// still reaches it.
    func testAHelloLongerThanPrereadMaxTakesTheDefaultPoolByteExact() throws {
        let api = try TestServer(.replyOnEOF), web = try TestServer(.replyOnEOF), mail = try TestServer(.replyOnEOF)
        let proxy = try RoutedProxy(frontDoor(api.address, web.address, mail.address, defaultPool: true, extra: "preread_max = \"1KiB\""))
        defer { proxy.stop() }
        let hello = ClientHelloBytes.make(serverName: "api.example.com", size: 4000)
        let client = try TestClient(proxy.address())
        try client.send(hello)
        client.shutdownWrite()
        XCTAssertEqual(try client.receiveLine(), replyLine(for: hello))
        XCTAssertEqual(web.acceptedCount, 1)
        XCTAssertEqual(api.acceptedCount, 0)
    }

    /// Many clients that send half a hello and stop cannot pin the pool's buffers: a bystander is served at
    /// once, and `preread_timeout` closes the stragglers, counted.
    func testSlowClientHellosAreClosedByTheDeadlineAndPinNothing() throws {
        let api = try TestServer(.echo), web = try TestServer(.echo), mail = try TestServer(.echo)
        let proxy = try RoutedProxy(frontDoor(api.address, web.address, mail.address, extra: "preread_timeout = \"1s\""))
        defer { proxy.stop() }
        let hello = ClientHelloBytes.make(serverName: "api.example.com", size: 4000)
        let stragglers = try (0..<200).map { _ in
            let client = try TestClient(proxy.address())
            try client.send(Array(hello[0..<2000]))
            return client
        }
        XCTAssertTrue(eventually(5) { proxy.total(.heldBytes) >= 200 * 2000 }, "held \(proxy.total(.heldBytes))")
        let started = monotonicMilliseconds()
        let bystander = try TestClient(proxy.address())
        try bystander.send(hello + Array("ping\n".utf8))
        XCTAssertEqual(try bystander.receive(exactly: hello.count + 5), hello + Array("ping\n".utf8))
        XCTAssertLessThan(monotonicMilliseconds() - started, 500, "the bystander waited behind the stragglers")
        XCTAssertTrue(eventually(5) { proxy.total(.rejectedPrereadTimeout) == 200 }, "timed out \(proxy.total(.rejectedPrereadTimeout))")
        for client in stragglers { XCTAssertEqual(client.awaitEnd(within: 2).end, .endOfStream) }
        XCTAssertTrue(eventually(2) { proxy.total(.heldBytes) == 0 }, "held \(proxy.total(.heldBytes))")
        XCTAssertEqual(api.acceptedCount, 1, "no straggler reached a backend")
    }

    /// A reload changes where new clients of a server name go; a connection on the old route keeps flowing.
    func testReloadChangesARouteWhileAnOldConnectionKeepsFlowing() throws {
        let api = try TestServer(.echo), web = try TestServer(.echo), mail = try TestServer(.echo)
        let proxy = try RoutedProxy(frontDoor(api.address, web.address, mail.address))
        defer { proxy.stop() }
        let hello = ClientHelloBytes.make(serverName: "api.example.com")
        let old = try TestClient(proxy.address())
        try old.send(hello)
        XCTAssertEqual(try old.receive(exactly: hello.count), hello)
        XCTAssertEqual(api.acceptedCount, 1)

        try proxy.reload("""
            [pools.api]
            backends = \(backendList([api.address]))
            [pools.mail]
            backends = \(backendList([mail.address]))
            [[listeners]]
            name = "front"
            bind = "127.0.0.1:0"
            routes = [{ sni = ["api.example.com"], pool = "mail" }]
            """)
        let moved = try TestClient(proxy.address())
        try moved.send(hello)
        XCTAssertEqual(try moved.receive(exactly: hello.count), hello)
        XCTAssertEqual(mail.acceptedCount, 1, "the new route took the new client")
        for round in 0..<20 {
            let line = Array("still flowing \(round)\n".utf8)
            try old.send(line)
            XCTAssertEqual(try old.receive(exactly: line.count), line)
        }
        XCTAssertEqual(api.acceptedCount, 1)
    }
}
