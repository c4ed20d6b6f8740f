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

/// `count` distinct such addresses, below the ephemeral range where the host has room for them, so that no
/// outgoing connection (the suite makes thousands) takes a port between the test choosing it and a peer
/// binding it. Every port is held until all are chosen. Bound without SO_REUSEADDR or SO_REUSEPORT, a port
/// that any socket still uses (a listener, or a connection in TIME_WAIT) is passed over.
func deadAddresses(_ count: Int) throws -> [SocketAddress] {
    let ceiling = try KernelSettings.ephemeralPortLow()
    var held: [(fd: Int32, address: SocketAddress)] = []
    defer { for port in held { Glibc.close(port.fd) } }
    for _ in 0..<(ceiling > 12000 ? 2000 : 0) where held.count < count {
        let address = SocketAddress(numericHost: "127.0.0.1", port: UInt16.random(in: 10000..<UInt16(min(ceiling, 65535))))!
        if !held.contains(where: { $0.address == address }), let fd = bound(address) { held.append((fd, address)) }
    }
    // A host whose ephemeral range starts low: let the kernel choose (it never hands out a port in use).
    while held.count < count, let fd = bound(SocketAddress(numericHost: "127.0.0.1", port: 0)!) {
        held.append((fd, Socket.localAddress(of: fd)!))
    }
    guard held.count == count else { throw TestFailure("found only \(held.count) of \(count) free ports") }
    return held.map(\.address)
}

private func bound(_ address: SocketAddress) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    guard address.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
        Glibc.close(fd)
        return nil
    }
    return fd
}
