import Glibc
@testable import RingProxy
import Synchronization

/// Continuous load for operations tests: a thread that connects, reads the backend's banner, exchanges a
/// line and closes, again and again until stopped, counting every attempt, every failure (with why), and
/// which backend answered.
final class ConnectionLoop: @unchecked Sendable {
    private let stopping = Atomic<Bool>(false)
    private let finished = Latch(count: 1)
    private let record = Locked<(attempts: Int, failures: [String], answers: [String: Int])>((0, [], [:]))

    init(_ address: SocketAddress) {
        _ = WorkerThread.start(name: "connection-loop", cpu: nil) { [self] in
            while !stopping.load(ordering: .relaxed) {
                var outcome: String?
                do {
                    let client = try TestClient(address, timeout: 5)
                    let banner = try client.receiveLine()
                    try client.send("ping\n")
                    let echo = try client.receiveLine()
                    if echo != "ping" { throw TestFailure("echo '\(echo)' from \(banner)") }
                    outcome = banner
                } catch {
                    record.withLock { $0.failures.append("\(error)") }
                }
                record.withLock { state in
                    state.attempts += 1
                    if let outcome { state.answers[outcome, default: 0] += 1 }
                }
            }
            finished.arrive()
        }
    }

    /// Which backends answered so far, and how often.
    var answers: [String: Int] { record.withLock { $0.answers } }
    var attempts: Int { record.withLock { $0.attempts } }

    /// Stops the loop and returns what it saw.
    func stop() -> (attempts: Int, failures: [String], answers: [String: Int]) {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
        return record.withLock { $0 }
    }
}
