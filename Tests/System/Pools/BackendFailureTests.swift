import Glibc
@testable import RingProxy
import XCTest

/// What clients see when a backend is down or dies.
final class BackendFailureTests: XCTestCase {
    func testConnectionsGoToTheLiveBackendWhenTheFirstIsDown() throws {
        let live = try TestServer(.banner("live"))
        let proxy = try ProxyHarness(backends: [(deadAddress(), weight: 1), (live.address, weight: 1)])
        defer { proxy.stop() }
        for _ in 0..<50 {
            let client = try TestClient(proxy.address)
            XCTAssertEqual(try client.receiveLine(), "live")
        }
        XCTAssertEqual(live.acceptedCount, 50)
        // With equal weights, 50 first picks all missing the dead backend has odds of 2^-50.
        XCTAssertGreaterThan(proxy.total(.connectFailures), 0)
        XCTAssertGreaterThan(proxy.backendCount(.connectFailures, 0), 0)
        XCTAssertEqual(proxy.backendCount(.connectFailures, 1), 0)
    }

    func testClientIsClosedWhenNoBackendCanBeReached() throws {
        let proxy = try ProxyHarness(backends: [(deadAddress(), weight: 1)])
        defer { proxy.stop() }
        let client = try TestClient(proxy.address)
        XCTAssertEqual(try client.receiveUntilClose(), [])
        XCTAssertTrue(eventually { proxy.total(.closed) == 1 })
        XCTAssertEqual(proxy.total(.connectFailures), 1, "one backend, tried once")
    }

    func testBackendResettingMidStreamClosesOnlyItsClient() throws {
        let flaky = try TestServer(.resetAfter(1 << 20))
        let proxy = try ProxyHarness(flaky)
        defer { proxy.stop() }
        let bystanders = try (0..<10).map { _ in try TestClient(proxy.address) }
        for client in bystanders {
            try client.send("hello\n")
            XCTAssertEqual(try client.receiveLine(), "hello")
        }
        let victim = try TestClient(proxy.address)
        var stream = PatternStream(seed: 1)
        // May fail with EPIPE/ECONNRESET once the reset arrives.
        var sendError = "none"
        do { _ = try victim.send(&stream, count: 2 << 20) } catch { sendError = "\(error)" }
        // Some of the echo may arrive first; then the end, passed on at once: the proxy's reset, not the 10 s
        // receive timeout (which a blocking receive would report as an error too). Seen here: the send above
        // failed with ECONNRESET, which takes the socket's error, so the receive then reads an end of stream
        // (after 112 KiB of echo, at once).
        let victimEnd = victim.awaitEnd(within: 5)
        print("backend reset mid-stream: the victim's send failed with \(sendError); it then saw \(victimEnd.end) after \(victimEnd.discarded) bytes, \(victimEnd.milliseconds) ms")
        XCTAssertTrue(victimEnd.end.isClosed, "the victim's connection must end, not time out: \(victimEnd.end)")
        XCTAssertLessThan(victimEnd.milliseconds, 2000, "at once")
        XCTAssertTrue(sendError.contains("Connection reset") || victimEnd.end == .error(ECONNRESET),
                      "the backend's reset is passed on as a reset, to the send or the receive: \(sendError), \(victimEnd.end)")
        for client in bystanders {
            try client.send("still here\n")
            XCTAssertEqual(try client.receiveLine(), "still here")
        }
        XCTAssertTrue(eventually { proxy.total(.active) == 10 })
    }

    func testKilledBackendClosesItsClientsAndTheProxyServesTheNextOnes() throws {
        let doomed = try TestServer(.echo)
        let survivor = try TestServer(.banner("survivor"))
        let proxy = try ProxyHarness(doomed, survivor)
        defer { proxy.stop() }
        // Weighted random spreads clients: keep connecting until one lands on the doomed echo backend.
        var onDoomed: TestClient?
        for _ in 0..<64 where onDoomed == nil {
            let client = try TestClient(proxy.address)
            try client.send("who\n")
            if try client.receiveLine() == "who" { onDoomed = client }
        }
        let client = try XCTUnwrap(onDoomed)
        doomed.stop()
        let end = client.awaitEnd(within: 5)
        print("killed backend: its client saw \(end.end) after \(end.milliseconds) ms")
        XCTAssertTrue(end.end.isClosed, "a killed backend ends its clients' connections, not a timeout: \(end.end)")
        XCTAssertLessThan(end.milliseconds, 2000, "at once, not after a timeout")
        for _ in 0..<10 {
            XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "survivor", "a refused connect is retried on the other backend")
        }
    }
}

/// An address on 127.0.0.1 where nothing listens: bound once to learn a free port, then closed.
func deadAddress() throws -> SocketAddress {
    try deadAddresses(1)[0]
}

/// `count` distinct such addresses: every port is held until all are chosen (one at a time, the kernel may
/// hand the port just closed out again).
func deadAddresses(_ count: Int) throws -> [SocketAddress] {
    let fds = try (0..<count).map { _ in try Socket.listen(on: SocketAddress(numericHost: "127.0.0.1", port: 0)!, backlog: 1) }
    defer { for fd in fds { Glibc.close(fd) } }
    return fds.map { Socket.localAddress(of: $0)! }
}
