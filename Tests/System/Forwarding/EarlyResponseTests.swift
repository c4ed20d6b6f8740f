import CURing
import Glibc
@testable import RingProxy
import XCTest

/// A backend that answers and closes while the client is still uploading (an HTTP 413, an auth failure):
/// the next send towards it fails, yet every byte it sent before its reset must reach the client.
final class EarlyResponseTests: XCTestCase {
    private static let responseBytes = 4 << 20

    /// Reads 1 KiB, writes `responseBytes` of `PatternStream(seed: 7)`, waits until its kernel reports every
    /// byte acknowledged, and closes with unread data (so the kernel sends RST). One connection at a time.
    private final class RejectingBackend: @unchecked Sendable {
        let address: SocketAddress
        private let listener: Int32
        private let finished = Latch(count: 1)

        init(connections: Int) throws {
            listener = try Socket.listen(on: SocketAddress(numericHost: "127.0.0.1", port: 0)!, backlog: 64)
            address = Socket.localAddress(of: listener)!
            _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) & ~O_NONBLOCK)
            _ = WorkerThread.start(name: "rejecting-backend", cpu: nil) { [self] in
                for _ in 0..<connections { serveOne() }
                finished.arrive()
            }
        }

        deinit { close(listener) }

        private func serveOne() {
            var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 10_000) == 1 else { return }
            let fd = curing_accept4(listener, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
            guard fd >= 0 else { return }
            defer { close(fd) }
            var request = [UInt8](repeating: 0, count: 1024)
            var got = 0
            while got < request.count {
                let count = request.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, $0.count - got, 0) }
                guard count > 0 else { return }
                got += count
            }
            var pattern = PatternStream(seed: 7)
            var chunk = [UInt8](repeating: 0, count: 65536)
            var sent = 0
            while sent < EarlyResponseTests.responseBytes {
                chunk.withUnsafeMutableBytes { pattern.fill($0) }
                var offset = 0
                while offset < chunk.count {
                    let count = chunk.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                    guard count > 0 else { return }
                    offset += count
                }
                sent += chunk.count
            }
            let deadline = monotonicMilliseconds() + 10_000
            while curing_unacknowledged_bytes(fd) > 0 && monotonicMilliseconds() < deadline { usleep(1000) }
            // The upload still arriving stays unread: this close sends RST.
        }

        func wait() { finished.wait() }
    }

    /// Uploads without pause while it reads the response, until the response ends (EOF or reset).
    /// Returns the bytes read and their hash.
    private func uploadWhileReading(to address: SocketAddress) throws -> (count: Int, hash: StreamHash) {
        let client = try TestClient(address)
        _ = fcntl(client.fd, F_SETFL, O_NONBLOCK)
        let upload = [UInt8](repeating: 0x55, count: 16384)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var hash = StreamHash()
        var count = 0
        var uploading = true
        let deadline = monotonicMilliseconds() + 15_000
        while monotonicMilliseconds() < deadline {
            var ready = pollfd(fd: client.fd, events: Int16(POLLIN) | (uploading ? Int16(POLLOUT) : 0), revents: 0)
            guard poll(&ready, 1, 1000) >= 0 else { continue }
            if ready.revents & Int16(POLLOUT) != 0 {
                if upload.withUnsafeBytes({ send(client.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }) < 0
                    && errno != EAGAIN { uploading = false }
            }
            if ready.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let read = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress!, $0.count, 0) }
                if read > 0 {
                    buffer.withUnsafeBytes { hash.add(UnsafeRawBufferPointer(rebasing: $0[0..<read])) }
                    count += read
                } else if read == 0 || errno != EAGAIN {
                    return (count, hash)
                }
            }
        }
        throw TestFailure("the response did not end in 15 s (\(count) bytes read)")
    }

    func testEveryByteTheBackendSentBeforeItsResetReachesAnUploadingClient() throws {
        let rounds = 10
        var expected = StreamHash()
        var pattern = PatternStream(seed: 7)
        expected.add(pattern.next(Self.responseBytes))
        let backend = try RejectingBackend(connections: rounds)
        let proxy = try ProxyHarness(backends: [(backend.address, weight: 1)])
        defer { proxy.stop() }
        var counts: [Int] = []
        for _ in 0..<rounds {
            let (count, hash) = try uploadWhileReading(to: proxy.address)
            counts.append(count)
            XCTAssertEqual(count, Self.responseBytes)
            XCTAssertTrue(hash == expected, "the response's bytes differ")
        }
        backend.wait()
        XCTAssertEqual(counts, Array(repeating: Self.responseBytes, count: rounds))
    }
}
