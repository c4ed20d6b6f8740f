import CURing
import Glibc
@testable import RingProxy
import XCTest

/// A connect and its linked timeout must reach the kernel in one submit, even when the submission queue
/// fills between them: a connect without its timeout waits for the kernel's own SYN retries (minutes).
final class LinkedTimeoutTests: XCTestCase {
    private let source = SettingSource(key: "test")

    /// A listener whose accept queue is full, so the kernel drops every further SYN: a black hole on loopback.
    private final class BlackHole {
        let address: SocketAddress
        private let listener: Int32
        private var fillers: [Int32] = []

        init() throws {
            listener = try Socket.listen(on: SocketAddress(numericHost: "127.0.0.1", port: 0)!, backlog: 0)
            address = Socket.localAddress(of: listener)!
            // A backlog of 0 holds one connection; the second SYN is already dropped.
            for _ in 0..<2 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                _ = address.withSockaddr { connect(fd, $0, $1) }
                fillers.append(fd)
            }
        }

        deinit {
            for fd in fillers { close(fd) }
            close(listener)
        }
    }

    /// The ring alone: three entries already queued in a four-entry queue, then a connect to the black hole.
    /// Its timeout must still be linked to it: the connect ends with -ECANCELED after 100 ms.
    func testConnectKeepsItsTimeoutWhenTheQueueFillsBetweenThem() throws {
        let hole = try BlackHole()
        var ring = try IORing(entries: 4)
        let fd = Socket.openStream(family: AF_INET)
        defer { close(fd) }
        // The kernel reads both when the entries are submitted: memory that outlives this scope's calls.
        let timeout = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
        timeout.initialize(to: __kernel_timespec(tv_sec: 0, tv_nsec: 100_000_000))
        let address = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 8)
        defer {
            timeout.deallocate()
            address.deallocate()
        }
        let length = hole.address.withSockaddr { sockaddr, length in
            address.copyMemory(from: sockaddr, byteCount: Int(length))
            return length
        }
        for _ in 0..<3 { ring.nop(userData: UserData(.check, slot: 0)) }
        let started = monotonicMilliseconds()
        ring.connect(fd, to: address.assumingMemoryBound(to: sockaddr.self), length: length, timeout: timeout,
                     userData: UserData(.connect, slot: 1), timeoutUserData: UserData(.connectTimeout, slot: 1))
        let completions = UnsafeMutablePointer<Completion>.allocate(capacity: 8)
        defer { completions.deallocate() }
        var connectResult: Int32?
        while connectResult == nil && monotonicMilliseconds() - started < 2000 {
            ring.nop(userData: UserData(.check, slot: 0))  // so that every wait returns at once
            ring.submitAndWait(1)
            for index in 0..<ring.reapCompletions(into: completions, capacity: 8) where completions[index].userData.kind == .connect {
                connectResult = completions[index].result
            }
            usleep(10_000)
        }
        XCTAssertEqual(connectResult, -ECANCELED, "the connect ran without its linked timeout")
        XCTAssertLessThan(monotonicMilliseconds() - started, 1000)
    }

    func testEveryConnectTimesOutWithATinyRingAndManyClientsAtOnce() throws {
        let hole = try BlackHole()
        let proxy = try ProxyHarness(backends: [(hole.address, weight: 1)]) { settings in
            settings.threads = Setting(1, self.source)
            settings.ringSize = Setting(4, self.source)
            settings.connectTimeout = Setting(.milliseconds(300), self.source)
            settings.retries = Setting(0, self.source)
            // Passive health off: every client's connect goes to the black hole and must time out by itself.
            settings.health.failThreshold = Setting(0, self.source)
        }
        defer { proxy.stop() }
        let count = 300
        // Arrivals spread over the timeout, so that accepts (two entries each) and timed-out connects (an odd
        // number: closes) share loop turns and the four-entry queue fills at every offset.
        var clients: [(client: TestClient, connected: Int64)] = []
        for _ in 0..<count {
            clients.append((try TestClient(proxy.address), monotonicMilliseconds()))
            usleep(2000)
        }
        // Each is closed once its connect timed out (300 ms); none may wait for the kernel's SYN retries.
        var slowest: Int64 = 0
        for (client, connected) in clients {
            let state = client.pollState(milliseconds: 3000)
            XCTAssertTrue(state != Int.min && state <= 0, "a client still open 3 s after its connect timeout")  // EOF or reset
            slowest = max(slowest, monotonicMilliseconds() - connected)
        }
        XCTAssertLessThan(slowest, 3000, "slowest close \(slowest) ms after its connect")
        XCTAssertTrue(eventually(2) { proxy.total(.connectFailures) == count && proxy.total(.active) == 0 },
                      "connect failures \(proxy.total(.connectFailures)), open \(proxy.total(.active))")
    }
}
