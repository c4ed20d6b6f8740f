import CURing
import Glibc
@testable import RingProxy
import Synchronization
import XCTest

/// A drain takes what waits in the listen backlog, then stops: it must end under a flood of new clients,
/// and under `--sqpoll`, where the still-armed multishot accept may take a connection first.
final class DrainTests: XCTestCase {
    private let source = SettingSource(key: "test")

    /// Threads that connect and close as fast as they can until stopped (at most `seconds`).
    private final class Flood: @unchecked Sendable {
        let stopping = Atomic<Bool>(false)
        let connected = Atomic<Int>(0)
        private let finished: Latch

        init(_ address: SocketAddress, threads: Int, seconds: Int64) {
            finished = Latch(count: threads)
            let deadline = monotonicMilliseconds() + seconds * 1000
            for _ in 0..<threads {
                _ = WorkerThread.start(name: "flood", cpu: nil) { [self] in
                    while !stopping.load(ordering: .relaxed) && monotonicMilliseconds() < deadline {
                        if (try? TestClient(address, timeout: 2)) != nil { connected.add(1, ordering: .relaxed) }
                    }
                    finished.arrive()
                }
            }
        }

        func stop() {
            stopping.store(true, ordering: .relaxed)
            finished.wait()
        }
    }

    private func assertDrainEndsUnderFlood(sqpoll: Bool) throws {
        let backend = try TestServer(.echo)
        let proxy = try ProxyHarness(backend) { settings in
            settings.threads = Setting(1, self.source)
            settings.sqpoll = Setting(sqpoll, self.source)
        }
        let flood = Flood(proxy.address, threads: 3, seconds: 8)
        XCTAssertTrue(eventually(5) { flood.connected.load(ordering: .relaxed) > 2000 }, "the flood did not get going")
        let started = monotonicMilliseconds()
        proxy.proxy.drain()
        let acceptedAtDrain = proxy.total(.accepted)
        // The defect is a drain that never ends; 10 s leaves room for a busy machine.
        let drained = proxy.proxy.waitForWorkers(timeout: .seconds(10))
        let elapsed = monotonicMilliseconds() - started
        let state = "accepted \(acceptedAtDrain) before the drain, \(proxy.total(.accepted)) after; \(proxy.total(.active)) open"
        flood.stop()
        if !drained {
            // Before the fix a worker could sit in a blocking accept4: one more client wakes it so the test ends.
            _ = try? TestClient(proxy.address, timeout: 1)
        }
        proxy.stop()
        XCTAssertTrue(drained, "the drain did not end within 10 s under a flood of connects (sqpoll: \(sqpoll)): \(state)")
        XCTAssertLessThan(elapsed, 10_000)
    }

    /// The drain's `accept4` runs after the ring's accept was cancelled, but under `--sqpoll` that cancel may
    /// not have reached the kernel yet and the ring can take the connection first: the call must then return
    /// EAGAIN, not block the worker forever.
    func testListeningSocketsNeverBlockAnAccept() throws {
        let fd = try Socket.listen(on: SocketAddress(numericHost: "127.0.0.1", port: 0)!, backlog: 16)
        defer { Glibc.close(fd) }
        XCTAssertNotEqual(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "a blocking listener would hang the drain")
        guard fcntl(fd, F_GETFL) & O_NONBLOCK != 0 else { return }
        XCTAssertEqual(curing_accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue)), -1)
        XCTAssertEqual(errno, EAGAIN)
    }

    func testDrainEndsUnderAFloodOfConnects() throws {
        try assertDrainEndsUnderFlood(sqpoll: false)
    }

    func testDrainEndsUnderAFloodOfConnectsWithSubmissionPolling() throws {
        try assertDrainEndsUnderFlood(sqpoll: true)
    }
}
