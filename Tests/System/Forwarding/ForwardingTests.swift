import Glibc
@testable import RingProxy
import XCTest

/// The data plane end to end: a real proxy on 127.0.0.1 in front of real backends, every byte checked.
final class ForwardingTests: XCTestCase {
    func testPingGetsPongThroughTheProxy() throws {
        let backend = try TestServer(.echo)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let client = try TestClient(proxy.address)
        try client.send("PING\n")
        XCTAssertEqual(try client.receiveLine(), "PING")
        try client.send("PONG\n")
        XCTAssertEqual(try client.receiveLine(), "PONG")
        XCTAssertEqual(backend.acceptedCount, 1)
    }

    func testThousandConcurrentConnectionsEachEchoSixtyFourKiBUnchanged() throws {
        let backend = try TestServer(.echo)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let outcome = ConcurrentEcho(address: proxy.address, connections: 1000, bytes: 64 * 1024).run()
        XCTAssertEqual(outcome.failures.prefix(5), [], "\(outcome.failures.count) connections failed")
        XCTAssertEqual(outcome.verified, 1000)
        XCTAssertEqual(proxy.total(.bytesUpstream), 1000 * 64 * 1024)
        XCTAssertTrue(eventually { proxy.total(.bytesDownstream) == 1000 * 64 * 1024 })
    }

    func testSixtyFourMiBToTheBackendArriveWhole() throws {
        let backend = try TestServer(.replyOnEOF)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let client = try TestClient(proxy.address, timeout: 60)
        var stream = PatternStream(seed: 7)
        let sent = try client.send(&stream, count: 64 << 20)
        client.shutdownWrite()
        XCTAssertEqual(try client.receiveLine(), sent.digest)
    }

    func testSixtyFourMiBFromTheBackendArriveWhole() throws {
        let backend = try TestServer(.source(bytes: 64 << 20, seed: 11))
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let client = try TestClient(proxy.address, timeout: 60)
        var expected = StreamHash()
        var stream = PatternStream(seed: 11)
        for _ in 0..<64 { expected.add(stream.next(1 << 20)) }
        XCTAssertEqual(try client.hashUntilClose().digest, expected.digest)
    }

    func testHalfCloseKeepsTheReplyDirectionOpen() throws {
        let backend = try TestServer(.replyOnEOF)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let client = try TestClient(proxy.address)
        var stream = PatternStream(seed: 3)
        let sent = try client.send(&stream, count: 1 << 20)
        client.shutdownWrite()
        // The backend answers only once it has seen the end of the stream: the FIN went through, and the
        // answer still comes back on the half-open connection.
        XCTAssertEqual(try client.receiveLine(), sent.digest)
        XCTAssertEqual(try client.receiveUntilClose(), [], "then end of stream")
    }

    func testHalfClosedClientStillReceivesEveryEchoedByte() throws {
        let backend = try TestServer(.echo)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let client = try TestClient(proxy.address)
        var stream = PatternStream(seed: 5)
        // Small enough to sit in the socket buffers while nobody reads.
        let sent = try client.send(&stream, count: 256 * 1024)
        client.shutdownWrite()
        XCTAssertEqual(try client.hashUntilClose().digest, sent.digest)
    }

    func testBytesThatLookLikeOtherProtocolsPassUntouched() throws {
        let backend = try TestServer(.echo)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let client = try TestClient(proxy.address)
        let tlsHello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]
        let http = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let noise = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) } + [0, 0, 0xFF, 0x0A]
        for payload in [tlsHello, http, noise] {
            try client.send(payload)
            XCTAssertEqual(try client.receive(exactly: payload.count), payload)
        }
    }

    /// A bulk download backs up in the proxy (the backend sends faster than the client's socket drains): the
    /// queued buffers go out as one `sendmsg` of 2 to `Tunnel.chainSendLimit` of them, every byte in order.
    func testABackedUpDirectionSendsItsQueuedBuffersAsOneMessage() throws {
        let size = 16 << 20
        let backend = try TestServer(.source(bytes: size, seed: 5))
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let client = try TestClient(proxy.address, timeout: 30)
        var hash = StreamHash()
        while hash.count < size { hash.add(try client.receive(exactly: min(64 << 10, size - hash.count))) }
        var expected = StreamHash()
        var pattern = PatternStream(seed: 5)
        expected.add(pattern.next(size))
        XCTAssertEqual(hash.digest, expected.digest, "the download's bytes differ")
        let (sends, buffers) = (proxy.total(.chainSends), proxy.total(.chainedBuffers))
        print("16 MiB download: \(sends) chain sends carrying \(buffers) buffers")
        XCTAssertGreaterThan(sends, 0, "no queued buffers were sent together")
        XCTAssertGreaterThanOrEqual(buffers, 2 * sends)
        XCTAssertLessThanOrEqual(buffers, Int(Tunnel.chainSendLimit) * sends)
    }

    func testZeroCopySendsDeliverEveryByteAndGiveEveryBufferBack() throws {
        for mode in ["on", "auto"] {
            let backend = try TestServer(.echo)
            // A 64-buffer ring: a buffer never given back after its notification would soon stall everything.
            let proxy = try ProxyHarness(backend) { settings in
                settings.zerocopy = Setting(mode, SettingSource(key: "test"))
                settings.buffers = Setting(64, SettingSource(key: "test"))
            }
            defer { proxy.stop() }
            for round in 0..<3 {
                var check = ConcurrentEcho(address: proxy.address, connections: 50, bytes: 2 << 20)
                check.chunks = 1...65536
                check.seed = UInt64(round + 1)
                let outcome = check.run()
                XCTAssertEqual(outcome.failures.prefix(3), [], "zerocopy \(mode), round \(round)")
                XCTAssertEqual(outcome.verified, 50, "zerocopy \(mode), round \(round)")
            }
            XCTAssertGreaterThan(proxy.total(.zeroCopySends), 1000, "zerocopy \(mode)")
        }
    }
}
