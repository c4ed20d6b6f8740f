import Glibc
@testable import RingProxy
import XCTest

/// Clients that stop reading must cost only themselves: with twice as many stalled downloaders as the
/// worker's buffer pool can hold at the pause mark, a bystander on another listener still gets its echo at
/// once, and the stalled clients, once they read again, get every byte in order.
final class StalledReaderTests: XCTestCase {
    private let source = SettingSource(key: "test")
    /// Each stalled client's download: enough that, past the proxy's send buffer towards it (at most
    /// `tcp_wmem`'s maximum, 4 MiB here), megabytes are left for the proxy to hold.
    private static let download = max(8 << 20, ((try? KernelSettings.tcpSendBufferMax()) ?? 0) + (4 << 20))
    private static let buffers = 64

    /// A client that connects with a tiny receive buffer and reads nothing until told to.
    private final class StalledClient {
        let fd: Int32

        init(_ address: SocketAddress) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var size: Int32 = 4096
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            var limit = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else { throw TestFailure("connect: \(errno)") }
        }

        deinit { close(fd) }

        /// Reads to the end: the byte count and hash.
        func readAll() -> (count: Int, hash: StreamHash) {
            var hash = StreamHash()
            var count = 0
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let read = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
                guard read > 0 else { return (count, hash) }
                buffer.withUnsafeBytes { hash.add(UnsafeRawBufferPointer(rebasing: $0[0..<read])) }
                count += read
            }
        }
    }

    private func listener(_ name: String, _ backend: SocketAddress) -> ListenerSpec {
        var spec = ListenerSpec(source: source)
        spec.name = Setting(name, source)
        spec.bind = Setting("127.0.0.1:0", source)
        spec.backends = [BackendSpec(host: Setting(backend.host, source), port: Setting(Int(backend.port), source), source: source)]
        return spec
    }

    /// Waits until the proxy has moved all it can and nothing flows any more (no byte for 300 ms).
    private func settled(_ proxy: ProxyHarness) -> Bool {
        var last = -1
        return eventually(20) {
            let now = proxy.total(.bytesDownstream)
            defer { last = now }
            if now == last { usleep(300_000); return proxy.total(.bytesDownstream) == now }
            return false
        }
    }

    private func residentBytes() -> Int {
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    func testStalledDownloadersLeaveABystanderUnharmedAndGetEveryByteLater() throws {
        let sourceServer = try TestServer(.source(bytes: Self.download, seed: 11))
        let echo = try TestServer(.echo)
        let proxy = try ProxyHarness(backends: []) { settings in
            settings.listen = nil
            settings.backends = nil
            settings.listeners = [self.listener("downloads", sourceServer.address), self.listener("echo", echo.address)]
            settings.threads = Setting(1, self.source)
            settings.buffers = Setting(Self.buffers, self.source)
        }
        defer { proxy.stop() }
        let (downloads, bystanders) = (proxy.proxy.listenAddresses[0], proxy.proxy.listenAddresses[1])
        let rssBefore = residentBytes()

        // Twice what the pool holds at the pause mark.
        let stalledCount = 2 * Self.buffers / Int(Tunnel.pauseAt)
        let stalled = try (0..<stalledCount).map { _ in try StalledClient(downloads) }
        XCTAssertTrue(settled(proxy), "the downloads never settled")

        var latencies: [Int64] = []
        for round in 0..<20 {
            let client = try TestClient(bystanders, timeout: 2)
            for _ in 0..<5 {
                let started = monotonicNanoseconds()
                try client.send("ping \(round)\n")
                XCTAssertEqual(try client.receiveLine(), "ping \(round)")
                latencies.append(monotonicNanoseconds() - started)
            }
        }
        latencies.sort()
        let p50 = Double(latencies[latencies.count / 2]) / 1e6, p99 = Double(latencies[latencies.count * 99 / 100]) / 1e6
        let rssGrowth = residentBytes() - rssBefore
        print("stalled \(stalledCount), bystander echo p50 \(p50) ms p99 \(p99) ms max \(Double(latencies.last!) / 1e6) ms, "
              + "RSS +\(rssGrowth >> 10) KiB, spills \(proxy.total(.spills)), spilled \(proxy.total(.spilledBytes) >> 10) KiB, "
              + "buffer ring empty \(proxy.total(.bufferRingEmpty))")
        // One scheduler hiccup on a loaded machine may not fail the test, but a bystander waiting on the stalled
        // clients (until a 250 ms tick re-arms it) must: all but the slowest of 100 echoes under 100 ms.
        let secondSlowest = Double(latencies[latencies.count - 2]) / 1e6
        XCTAssertLessThan(secondSlowest, 100, "a bystander's second slowest echo took \(secondSlowest) ms")
        XCTAssertLessThan(latencies.last!, 250_000_000, "a bystander's echo took \(Double(latencies.last!) / 1e6) ms")
        // What the stalled clients hold beyond the pool: at most what each held at the pause mark (plus what a
        // multishot receive lands before its cancel), copied into memory of their own.
        // Not under AddressSanitizer: its quarantine keeps freed spills resident, so RSS says nothing there
        // (34 MiB seen under `make test-asan`); the plain run checks the bound.
        if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] == nil {
            XCTAssertLessThan(rssGrowth, stalledCount * 8 * 16384 + (16 << 20))
        }
        XCTAssertGreaterThan(proxy.total(.spills), 0, "no stalled direction gave its buffers up")

        var expected = StreamHash()
        var pattern = PatternStream(seed: 11)
        expected.add(pattern.next(Self.download))
        for client in stalled {
            let (count, hash) = client.readAll()
            XCTAssertEqual(count, Self.download)
            XCTAssertTrue(hash == expected, "a resumed download's bytes differ")
        }
        XCTAssertTrue(eventually(5) { proxy.total(.spilledBytes) == 0 }, "spilled memory was not given back")
    }

    /// Past the spill budget (8 times the ring), backed-up connections are shed, not spilled: memory stays
    /// bounded whatever the number of stalled clients, and the bystander is still served.
    func testPastTheSpillBudgetStalledConnectionsAreShed() throws {
        let download = Self.download
        let buffers = 8
        let sourceServer = try TestServer(.source(bytes: download, seed: 11))
        let echo = try TestServer(.echo)
        let bufferSize = 16384
        let proxy = try ProxyHarness(backends: []) { settings in
            settings.listen = nil
            settings.backends = nil
            settings.listeners = [self.listener("downloads", sourceServer.address), self.listener("echo", echo.address)]
            settings.threads = Setting(1, self.source)
            settings.buffers = Setting(buffers, self.source)
            settings.bufferSize = Setting(bufferSize, self.source)
        }
        defer { proxy.stop() }
        let budget = buffers * bufferSize * 8
        let stalled = try (0..<96).map { _ in try StalledClient(proxy.proxy.listenAddresses[0]) }
        XCTAssertTrue(eventually(20) { proxy.total(.shed) > 0 }, "nothing shed; spilled \(proxy.total(.spilledBytes)) of \(budget)")
        // One scan may spill a little past the budget before it sees it spent: at most the ring.
        XCTAssertLessThanOrEqual(proxy.total(.spilledBytes), budget + buffers * bufferSize)
        XCTAssertTrue(settled(proxy), "the downloads never settled")
        let client = try TestClient(proxy.proxy.listenAddresses[1], timeout: 2)
        for round in 0..<20 {
            let started = monotonicNanoseconds()
            try client.send("ping \(round)\n")
            XCTAssertEqual(try client.receiveLine(), "ping \(round)")
            // Within a pressure scan: the ring may be short until the next tick's scan sheds or spills.
            XCTAssertLessThan(monotonicNanoseconds() - started, 1_000_000_000)
        }
        let shed = stalled.filter { $0.readAll().count < download }.count
        print("96 stalled: shed \(proxy.total(.shed)), spilled \(proxy.total(.spilledBytes) >> 10) KiB of a \(budget >> 10) KiB budget; "
              + "\(shed) clients got less than their download")
        XCTAssertEqual(shed, proxy.total(.shed), "every shed client, and only those, lost its download")
    }
}

private func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
