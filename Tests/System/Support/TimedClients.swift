import Glibc
@testable import RingProxy
import Synchronization

/// Clients that run the whole time of a test, bounded: `count` threads, each connecting again and again,
/// reading the backend's banner, holding the connection `hold` milliseconds (a ping before and after), and
/// closing. Every connection is recorded with the time its connect began, so a test can ask which backend
/// the connections begun after some moment reached.
final class TimedClients: @unchecked Sendable {
    struct Visit {
        /// Monotonic milliseconds when the client began to connect.
        let started: Int64
        let backend: String
    }

    private let stopping = Atomic<Bool>(false)
    private let finished: Latch
    private let record = Locked<(visits: [Visit], failures: [String])>(([], []))

    init(_ address: SocketAddress, count: Int, hold: ClosedRange<Int> = 0...0, deadline seconds: Int64 = 30) {
        finished = Latch(count: count)
        let end = monotonicMilliseconds() + seconds * 1000
        for index in 0..<count {
            _ = WorkerThread.start(name: "timed-client-\(index)", cpu: nil) { [self] in
                var random = FastRandom(seed: UInt64(index + 1))
                while !stopping.load(ordering: .relaxed), monotonicMilliseconds() < end {
                    let started = monotonicMilliseconds()
                    do {
                        let client = try TestClient(address, timeout: 5)
                        let banner = try client.receiveLine()
                        try exchange(client, banner)
                        let hold = hold.lowerBound + (hold.count > 1 ? random.below(hold.count) : 0)
                        if hold > 0 {
                            usleep(UInt32(hold * 1000))
                            try exchange(client, banner)
                        }
                        record.withLock { $0.visits.append(Visit(started: started, backend: banner)) }
                    } catch {
                        record.withLock { $0.failures.append("\(error)") }
                    }
                }
                finished.arrive()
            }
        }
    }

    private func exchange(_ client: TestClient, _ banner: String) throws {
        try client.send("ping\n")
        let echo = try client.receiveLine()
        if echo != "ping" { throw TestFailure("echo '\(echo)' from \(banner)") }
    }

    var visits: [Visit] { record.withLock { $0.visits } }

    /// Connections begun at or after `moment` (monotonic ms), by backend.
    func backends(since moment: Int64) -> [String: Int] {
        visits.filter { $0.started >= moment }.reduce(into: [:]) { $0[$1.backend, default: 0] += 1 }
    }

    /// Stops the clients (each finishes its connection) and returns every visit and failure.
    func stop() -> (visits: [Visit], failures: [String]) {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
        return record.withLock { $0 }
    }
}

/// One admin request on a new connection: the status and the body.
func adminRequest(_ address: SocketAddress, _ method: String, _ path: String, body: String = "", token: String? = nil) throws -> (status: Int, body: String) {
    let client = try TestClient(address, timeout: 10)
    var head = "\(method) \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
    if let token { head += "Authorization: Bearer \(token)\r\n" }
    try client.send(head + "\r\n" + body)
    let text = String(decoding: try client.receiveUntilClose(limit: 1 << 22), as: UTF8.self)
    guard let end = text.range(of: "\r\n\r\n"), let status = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
        throw TestFailure("not an HTTP response: \(text.prefix(200))")
    }
    return (status, String(text[end.upperBound...]))
}
