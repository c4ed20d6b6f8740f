import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// The global connection limit over several workers, the connect timeout against a backend that never
/// answers, and `--retries` counted attempt by attempt.
final class LimitsAndRetriesTests: XCTestCase {
    private let source = SettingSource(key: "test")

    /// `--max-connections` is shared out over the workers (rounded up per worker): with two workers and a limit
    /// of 4, four clients are served and the rest wait in the backlog until slots free up.
    /// `--max-connections` is shared out exactly, never rounded up per worker: 3 over 2 workers admits 3.
    func testMaxConnectionsIsSharedOutExactly() {
        XCTAssertEqual((0..<2).map { Proxy.share(of: 3, worker: $0, of: 2) }, [2, 1])
        XCTAssertEqual((0..<4).map { Proxy.share(of: 10, worker: $0, of: 4) }, [3, 3, 2, 2])
        XCTAssertEqual((0..<4).map { Proxy.share(of: 2, worker: $0, of: 4) }, [1, 1, 1, 1], "every worker serves")
    }

    func testMaxConnectionsHoldsOverAllWorkers() throws {
        let backend = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(backend) { settings in
            settings.threads = Setting(2, self.source)
            settings.maxConnections = Setting(4, self.source)
        }
        defer { proxy.stop() }
        XCTAssertEqual((0..<2).map { Proxy.share(of: 4, worker: $0, of: 2) }, [2, 2])
        // Sixteen clients: the kernel spreads them over the two workers' listeners, at least two each (the
        // odds of fewer are 17 in 65 536).
        var clients = try (0..<16).map { _ in try TestClient(proxy.address) }
        XCTAssertTrue(eventually { proxy.total(.active) == 4 }, "four admitted")
        let served = { clients.indices.filter { clients[$0].pollState(milliseconds: 0) > 0 } }
        XCTAssertTrue(eventually(2) { served().count == 4 }, "four banners")
        // The others stay in the backlog: nothing more is admitted while the four stay open.
        let waiting = try XCTUnwrap(clients.indices.first { !served().contains($0) })
        XCTAssertEqual(clients[waiting].pollState(milliseconds: 300), Int.min, "a waiting client gets nothing yet")
        XCTAssertEqual(proxy.total(.active), 4, "never more than the limit")
        XCTAssertEqual(backend.acceptedCount, 4)
        XCTAssertEqual(proxy.total(.acceptOverflows), 0, "nothing accepted and dropped")
        // Two leave: two of the waiting clients are served in their place.
        let leaving = Array(served().prefix(2))
        for index in leaving.sorted(by: >) { clients.remove(at: index) }
        // Usually within milliseconds; 3 s was once too short with six builds running beside the test.
        XCTAssertTrue(eventually(10) { backend.acceptedCount == 6 }, "the waiting clients take the freed slots")
        XCTAssertTrue(eventually { proxy.total(.active) == 4 })
        XCTAssertEqual(proxy.counters.map { $0[.active] }.max(), 2, "each worker within its share")
    }

    /// A listener whose accept queue is full drops SYNs (`net.ipv4.tcp_abort_on_overflow=0`, the default): a
    /// black hole on 127.0.0.1. The proxy gives up on it after `--connect-timeout`, retries the next backend,
    /// and closes the client when every attempt has timed out.
    func testConnectTimeoutAgainstABlackHoledBackendThenRetriesTheNext() throws {
        let holes = try (0..<2).map { _ in try BlackHole() }
        let live = try TestServer(.banner("live"))
        let timeout = 300
        let proxy = try ProxyHarness(backends: holes.map { ($0.address, weight: 1) } + [(live.address, weight: 1)]) { settings in
            settings.connectTimeout = Setting(.milliseconds(timeout), self.source)
            settings.retries = Setting(2, self.source)
            settings.balance = Setting("round-robin", self.source)
            settings.threads = Setting(1, self.source)
            settings.health.failThreshold = Setting(0, self.source)
        }
        defer { proxy.stop() }
        // Round robin starts at the first hole: two timeouts, then the live backend answers.
        let started = monotonicMilliseconds()
        let client = try TestClient(proxy.address)
        XCTAssertEqual(try client.receiveLine(), "live")
        let elapsed = monotonicMilliseconds() - started
        print("two black-holed backends at a \(timeout) ms connect timeout, then the live one: answered after \(elapsed) ms")
        XCTAssertGreaterThanOrEqual(elapsed, Int64(2 * timeout - 20), "each black hole was waited on for the timeout")
        XCTAssertLessThan(elapsed, Int64(2 * timeout + 400), "and no longer")
        XCTAssertEqual(proxy.backendCount(.connectFailures, 0), 1)
        XCTAssertEqual(proxy.backendCount(.connectFailures, 1), 1)
        XCTAssertEqual(proxy.backendCount(.connectFailures, 2), 0)
        XCTAssertEqual(proxy.backendCount(.total, 2), 1)
    }

    func testConnectTimeoutClosesTheClientWhenTheOnlyBackendIsBlackHoled() throws {
        let hole = try BlackHole()
        let proxy = try ProxyHarness(backends: [(hole.address, weight: 1)]) { settings in
            settings.connectTimeout = Setting(.milliseconds(250), self.source)
            settings.retries = Setting(0, self.source)
        }
        defer { proxy.stop() }
        let started = monotonicMilliseconds()
        let client = try TestClient(proxy.address)
        let end = client.awaitEnd(within: 5)
        let elapsed = monotonicMilliseconds() - started
        print("one black-holed backend, 250 ms connect timeout: the client saw \(end.end) after \(elapsed) ms")
        XCTAssertTrue(end.end.isClosed, "\(end.end)")
        XCTAssertGreaterThanOrEqual(elapsed, 230, "not before the connect timeout")
        XCTAssertLessThan(elapsed, 750, "at the connect timeout (3 s by default would fail this)")
        XCTAssertEqual(proxy.total(.connectFailures), 1)
    }

    /// `--retries N`: a client tries at most N + 1 backends, each at most once, then is closed.
    func testRetriesCountEveryAttempt() throws {
        for (retries, backends, attempts) in [(0, 4, 1), (2, 4, 3), (8, 4, 4)] {
            let dead = try deadAddresses(backends)
            let proxy = try ProxyHarness(backends: dead.map { ($0, weight: 1) }) { settings in
                settings.retries = Setting(retries, self.source)
                settings.health.failThreshold = Setting(0, self.source)
            }
            defer { proxy.stop() }
            for round in 1...3 {
                let client = try TestClient(proxy.address)
                XCTAssertEqual(client.awaitEnd(within: 5).end.isClosed, true)
                XCTAssertTrue(eventually { proxy.total(.closed) == round })
                XCTAssertEqual(proxy.total(.connectFailures), attempts * round, "--retries \(retries) over \(backends) refusing backends")
            }
            let perBackend = (0..<backends).map { proxy.backendCount(.connectFailures, $0) }
            XCTAssertEqual(perBackend.reduce(0, +), attempts * 3)
            if attempts == backends { XCTAssertEqual(perBackend, [3, 3, 3, 3], "each backend once per client") }
        }
    }
}

/// A listener on 127.0.0.1 that never accepts, whose accept queue is full: the kernel drops further SYNs
/// (with `net.ipv4.tcp_abort_on_overflow=0`), so a connect to it neither completes nor is refused.
final class BlackHole {
    let address: SocketAddress
    private let listener: Int32
    private var fillers: [Int32] = []

    init() throws {
        if let setting = try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_abort_on_overflow", encoding: .utf8),
           setting.trimmingCharacters(in: .whitespacesAndNewlines) != "0" {
            throw TestFailure("net.ipv4.tcp_abort_on_overflow is \(setting): a full accept queue resets instead of dropping SYNs")
        }
        listener = try Socket.listen(on: SocketAddress(numericHost: "127.0.0.1", port: 0)!, backlog: 0)
        address = Socket.localAddress(of: listener)!
        // Fill the queue (a backlog of 0 holds one connection) until a connect no longer completes.
        for _ in 0..<4 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            _ = address.withSockaddr { connect(fd, $0, $1) }
            fillers.append(fd)
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if poll(&entry, 1, 200) == 0 { return }  // this one's SYN was dropped: the hole is ready
        }
        throw TestFailure("the accept queue of \(address) never filled")
    }

    deinit {
        for fd in fillers { Glibc.close(fd) }
        Glibc.close(listener)
    }
}
