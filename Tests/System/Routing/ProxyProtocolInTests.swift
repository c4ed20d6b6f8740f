import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// PROXY protocol in: real balancers in front (HAProxy `send-proxy-v2`, nginx `proxy_protocol on`), their
/// header stripped and its source taken as the client everywhere (here: in our own PROXY header towards the
/// backend); from any other source the bytes are payload.
final class ProxyProtocolInTests: XCTestCase {
    /// A listener trusting `trusted`, sending PROXY v1 to a backend that prints the header it got.
    private func listener(trusting trusted: [String], backend: SocketAddress, bind: String = "127.0.0.1:0", extra: String = "") -> String {
        """
        [[listeners]]
        name = "behind-balancer"
        bind = "\(bind)"
        send_proxy = "v1"
        accept_proxy = [\(trusted.map { "\"\($0)\"" }.joined(separator: ", "))]
        \(extra)
        [[listeners.backends]]
        host = "\(backend.host)"
        port = \(backend.port)
        """
    }

    private func runHAProxy(listen: String, to upstream: SocketAddress, sendProxy: String) throws -> (BuiltBinary.Running, String) {
        let haproxy = try requireTool(["/usr/sbin/haproxy"], install: "apt-get install haproxy")
        let folder = NSTemporaryDirectory() + "ringproxy-haproxy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let server = upstream.family == AF_INET6 ? "[\(upstream.host)]:\(upstream.port)" : "\(upstream.host):\(upstream.port)"
        try """
            global
                maxconn 256
            defaults
                mode tcp
                timeout connect 5s
                timeout client 30s
                timeout server 30s
            frontend balancer
                bind \(listen)
                default_backend ringproxy
            backend ringproxy
                server rp \(server) \(sendProxy)

            """.write(toFile: "\(folder)/haproxy.cfg", atomically: true, encoding: .utf8)
        return (try BuiltBinary.Running(executable: haproxy, arguments: [haproxy, "-db", "-f", "\(folder)/haproxy.cfg"]), folder)
    }

    /// haproxy in front of `upstream`, listening on a free port of `family`'s loopback address: waited for by
    /// its LISTEN row, not a probe connection (haproxy would pass it on, and the proxy count it as a header never
    /// sent). A port taken between choosing it and haproxy's bind (the suite opens thousands of connections)
    /// gets another try with a new port, up to three.
    private func startListeningHAProxy(family: String, to upstream: SocketAddress, sendProxy: String) throws
        -> (BuiltBinary.Running, String, SocketAddress) {
        var failures: [String] = []
        for _ in 0..<3 {
            let port = try deadAddress().port
            let front = family == "IPv4" ? SocketAddress(numericHost: "127.0.0.1", port: port)! : SocketAddress(numericHost: "::1", port: port)!
            let (haproxy, folder) = try runHAProxy(listen: family == "IPv4" ? "127.0.0.1:\(port)" : "[::1]:\(port)",
                                                   to: upstream, sendProxy: sendProxy)
            if eventually(5, { isListening(front) }) { return (haproxy, folder, front) }
            failures.append("port \(port): running \(haproxy.isRunning), stderr \(haproxy.stderrSoFar)")
            stopHAProxy(haproxy, folder)
        }
        throw TestFailure("haproxy did not start: \(failures)")
    }

    private func stopHAProxy(_ haproxy: BuiltBinary.Running, _ folder: String) {
        haproxy.signal(SIGTERM)
        _ = haproxy.finish()
        try? FileManager.default.removeItem(atPath: folder)
    }

    func testHAProxySendProxyV1AndV2OverIPv4AndIPv6NamesTheRealClient() throws {
        let backend = try TestServer(.proxyProtocol)
        let proxy4 = try RoutedProxy(listener(trusting: ["127.0.0.1/32"], backend: backend.address))
        defer { proxy4.stop() }
        let proxy6 = try RoutedProxy(listener(trusting: ["::1/128"], backend: backend.address, bind: "[::1]:0"))
        defer { proxy6.stop() }
        for sendProxy in ["send-proxy-v2", "send-proxy"] {
        for (proxy, family) in [(proxy4, "IPv4"), (proxy6, "IPv6")] {
            let (haproxy, folder, front) = try startListeningHAProxy(family: family, to: proxy.address(), sendProxy: sendProxy)
            let port = front.port
            defer { stopHAProxy(haproxy, folder) }
            let from = family == "IPv4" ? SocketAddress(numericHost: "127.0.0.42", port: 0)! : SocketAddress(numericHost: "::1", port: 0)!
            let client = try TestClient(front, from: from)
            let clientPort = Socket.localAddress(of: client.fd)!.port
            let expected = family == "IPv4" ? "v1 127.0.0.42:\(clientPort) -> 127.0.0.1:\(port)" : "v1 ::1:\(clientPort) -> ::1:\(port)"
            XCTAssertEqual(try client.receiveLine(), expected, "\(sendProxy) \(family)")
            try client.send("echo through both\n")
            XCTAssertEqual(try client.receiveLine(), "echo through both", "\(sendProxy) \(family)")
        }
        }
        XCTAssertEqual(proxy4.total(.rejectedProxyHeader) + proxy6.total(.rejectedProxyHeader), 0)
    }

    func testNginxProxyProtocolOnOverIPv4AndIPv6SendsV1ThatWeStrip() throws {
        let backend = try TestServer(.proxyProtocol)
        let proxy = try RoutedProxy(listener(trusting: ["127.0.0.1/32"], backend: backend.address))
        defer { proxy.stop() }
        let proxy6 = try RoutedProxy(listener(trusting: ["::1/128"], backend: backend.address, bind: "[::1]:0"))
        defer { proxy6.stop() }
        let ports = try deadAddresses(2).map(\.port)
        let (port, port6) = (ports[0], ports[1])
        let nginx = try StreamNginx(servers: """
            server {
                listen 127.0.0.1:\(port);
                proxy_pass 127.0.0.1:\(proxy.address().port);
                proxy_protocol on;
            }
            server {
                listen [::1]:\(port6);
                proxy_pass [::1]:\(proxy6.address().port);
                proxy_protocol on;
            }
            """)
        defer { nginx.stop() }
        let front = SocketAddress(numericHost: "127.0.0.1", port: port)!
        XCTAssertTrue(eventually(5) { (try? TestClient(front)) != nil }, "nginx did not start")
        let client = try TestClient(front, from: SocketAddress(numericHost: "127.0.0.43", port: 0)!)
        let clientPort = Socket.localAddress(of: client.fd)!.port
        XCTAssertEqual(try client.receiveLine(), "v1 127.0.0.43:\(clientPort) -> 127.0.0.1:\(port)")
        let front6 = SocketAddress(numericHost: "::1", port: port6)!
        let client6 = try TestClient(front6)
        let clientPort6 = Socket.localAddress(of: client6.fd)!.port
        XCTAssertEqual(try client6.receiveLine(), "v1 ::1:\(clientPort6) -> ::1:\(port6)")
    }

    /// A client that is not a trusted balancer may send anything, a PROXY header included: it is its payload,
    /// passed on byte for byte after our own header, never taken for its address.
    func testAnUntrustedSourcesHeaderIsPayload() throws {
        let backend = try TestServer(.proxyProtocol)
        let proxy = try RoutedProxy(listener(trusting: ["127.0.0.2/32"], backend: backend.address))
        defer { proxy.stop() }
        let client = try TestClient(proxy.address(), from: SocketAddress(numericHost: "127.0.0.1", port: 0)!)
        let clientPort = Socket.localAddress(of: client.fd)!.port
        XCTAssertEqual(try client.receiveLine(), "v1 127.0.0.1:\(clientPort) -> 127.0.0.1:\(proxy.address().port)")
        let forged = "PROXY TCP4 6.6.6.6 127.0.0.1 6666 80\r\n"
        try client.send(forged)
        XCTAssertEqual(try client.receiveLine(), "PROXY TCP4 6.6.6.6 127.0.0.1 6666 80\r", "echoed as payload, byte for byte")
        XCTAssertEqual(proxy.total(.rejectedProxyHeader), 0)
    }

    /// From a trusted source, a header is required: garbage and a truncated header then EOF close the client
    /// as `proxy_header`; silence, or half a header, past `preread_timeout` as `proxy_header_timeout` (not
    /// `preread_timeout`, which is a ClientHello's); none reaches the backend.
    func testMalformedTruncatedAndLateHeadersAreClosedAndCounted() throws {
        let backend = try TestServer(.proxyProtocol)
        let proxy = try RoutedProxy(listener(trusting: ["127.0.0.0/8"], backend: backend.address, extra: "preread_timeout = \"1s\""))
        defer { proxy.stop() }
        let garbage = try TestClient(proxy.address())
        try garbage.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        XCTAssertNotEqual(garbage.awaitEnd(within: 3).end, .stillOpen)

        let truncated = try TestClient(proxy.address())
        try truncated.send("PROXY TCP4 192.0.2.1 ")
        truncated.shutdownWrite()
        XCTAssertNotEqual(truncated.awaitEnd(within: 3).end, .stillOpen)
        XCTAssertTrue(eventually(3) { proxy.total(.rejectedProxyHeader) == 2 }, "proxy_header \(proxy.total(.rejectedProxyHeader))")

        let silent = try TestClient(proxy.address())
        let late = try TestClient(proxy.address())
        try late.send("PROXY TCP4 192.0.2.1 127.0.0.1 ")
        XCTAssertNotEqual(silent.awaitEnd(within: 4).end, .stillOpen)
        XCTAssertNotEqual(late.awaitEnd(within: 4).end, .stillOpen)
        XCTAssertTrue(eventually(3) { proxy.total(.rejectedProxyHeaderTimeout) == 2 },
                      "proxy_header_timeout \(proxy.total(.rejectedProxyHeaderTimeout))")
        XCTAssertEqual(proxy.total(.rejectedPrereadTimeout), 0)
        XCTAssertEqual(proxy.total(.rejectedProxyHeader), 2)
        XCTAssertEqual(backend.acceptedCount, 0)

        // A good header from the same source is served, its client named.
        let good = try TestClient(proxy.address())
        try good.send("PROXY TCP4 192.0.2.7 127.0.0.1 5555 443\r\n")
        XCTAssertEqual(try good.receiveLine(), "v1 192.0.2.7:5555 -> 127.0.0.1:443")
    }

    /// `source-hash` hashes the client the header names, not the balancer: every connection of one proxied
    /// client lands on one backend, and different clients spread.
    func testSourceHashUsesTheProxiedClient() throws {
        let backends = try (1...3).map { try TestServer(.banner("b\($0)")) }
        let proxy = try RoutedProxy("""
            [[listeners]]
            name = "hashed"
            bind = "127.0.0.1:0"
            balance = "source-hash"
            accept_proxy = ["127.0.0.2/32"]
            backends = \(backendList(backends.map(\.address)))
            """)
        defer { proxy.stop() }
        let balancer = SocketAddress(numericHost: "127.0.0.2", port: 0)!
        func backend(for client: String, port: Int) throws -> String {
            let connection = try TestClient(proxy.address(), from: balancer)
            try connection.send("PROXY TCP4 \(client) 127.0.0.1 \(port) 443\r\n")
            return try connection.receiveLine()
        }
        let same = try Set((0..<20).map { try backend(for: "198.51.100.7", port: 40000 + $0) })
        XCTAssertEqual(same.count, 1, "one proxied client, one backend: \(same)")
        let spread = try Set((1...30).map { try backend(for: "203.0.113.\($0)", port: 40000) })
        XCTAssertGreaterThan(spread.count, 1, "thirty proxied clients all hashed alike: the balancer's address was used")
    }
}
