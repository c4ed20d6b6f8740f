import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// The proxy binary with several workers, its /metrics counters against the traffic sent, and the access
/// log's close reason for each way a connection ends.
final class WorkersAndLogsTests: XCTestCase {
    /// Four workers share the load (the kernel spreads connections over their SO_REUSEPORT listeners), and
    /// the main counters of /metrics add up to exactly the traffic sent.
    func testFourWorkersShareTheLoadAndTheMetricsCountEveryConnectionAndByte() throws {
        let backend = try TestServer(.echo)
        let ports = try deadAddresses(2).map(\.port)
        let (port, adminPort) = (ports[0], ports[1])
        let running = try BuiltBinary("ringproxy").start([
            "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend.port)", "--threads", "4", "--no-pin",
            "--admin", "\(adminPort)",
        ])
        defer {
            running.signal(SIGKILL)
            _ = running.finish()
        }
        let admin = SocketAddress(numericHost: "127.0.0.1", port: adminPort)!
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 200 })
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        let connections = 200, bytes = 65536
        let outcome = ConcurrentEcho(address: address, connections: connections, bytes: bytes).run()
        XCTAssertEqual(outcome.failures.prefix(3), [])
        XCTAssertEqual(outcome.verified, connections)
        var metrics = try HTTPGet(admin, "/metrics")
        XCTAssertTrue(eventually {
            metrics = (try? HTTPGet(admin, "/metrics")) ?? metrics
            return metrics.metric("ringproxy_worker_active_connections{worker=\"0\"}") != nil
                && (0..<4).allSatisfy { metrics.metric("ringproxy_worker_active_connections{worker=\"\($0)\"}") == 0 }
        }, "every connection closed")
        func perWorker(_ name: String) -> [Int] {
            (0..<4).map { Int(metrics.metric("ringproxy_worker_\(name){worker=\"\($0)\"}") ?? -1) }
        }
        let accepted = perWorker("accepted_total")
        print("four workers, \(connections) connections: accepted per worker \(accepted)")
        XCTAssertNil(metrics.metric("ringproxy_worker_accepted_total{worker=\"4\"}"), "four workers, no more")
        // About a quarter each (seen 48-52 of 200); 20 is over four standard deviations below 50.
        XCTAssertTrue(accepted.allSatisfy { $0 >= 20 }, "every worker took its share: \(accepted)")
        XCTAssertEqual(accepted.reduce(0, +), connections)
        XCTAssertEqual(perWorker("closed_total").reduce(0, +), connections)
        XCTAssertEqual(perWorker("bytes_upstream_total").reduce(0, +), connections * bytes)
        XCTAssertEqual(perWorker("bytes_downstream_total").reduce(0, +), connections * bytes)
        XCTAssertEqual(perWorker("connect_failures_total"), [0, 0, 0, 0])
        XCTAssertEqual(perWorker("no_backend_total"), [0, 0, 0, 0])
        XCTAssertEqual(perWorker("accept_errors_total"), [0, 0, 0, 0])
        XCTAssertEqual(perWorker("idle_timeouts_total"), [0, 0, 0, 0])
        XCTAssertTrue(perWorker("sqes_submitted_total").allSatisfy { $0 > 0 })
        XCTAssertTrue(perWorker("cqes_reaped_total").allSatisfy { $0 > 0 })
        let labels = "{listener=\"default\",backend=\"127.0.0.1:\(backend.port)\"}"
        XCTAssertEqual(metrics.metric("ringproxy_backend_connections_total\(labels)"), Double(connections))
        XCTAssertEqual(metrics.metric("ringproxy_backend_bytes_to_backend_total\(labels)"), Double(connections * bytes))
        XCTAssertEqual(metrics.metric("ringproxy_backend_bytes_to_client_total\(labels)"), Double(connections * bytes))
        XCTAssertEqual(metrics.metric("ringproxy_backend_active_connections\(labels)"), 0)
        XCTAssertEqual(metrics.metric("ringproxy_config_generation"), 1)
        XCTAssertEqual(backend.acceptedCount, connections)
    }

    /// One access-log line per closed connection, with why it closed: every byte delivered, the client's reset,
    /// the backend's reset, a failed connect, the idle timeout, and the drain timeout on stopping.
    func testAccessLogGivesTheReasonEachConnectionClosed() throws {
        let backend = try TestServer(.resetAfter(8))
        let ports = try deadAddresses(3).map(\.port)
        let (port, deadPort, nobody) = (ports[0], ports[1], ports[2])
        let file = try temporaryFile("""
            [[listeners]]
            name = "main"
            bind = "127.0.0.1:\(port)"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = \(backend.port)
            [[listeners]]
            name = "dead"
            bind = "127.0.0.1:\(deadPort)"
            [[listeners.backends]]
            host = "127.0.0.1"
            port = \(nobody)
            """)
        defer { unlink(file) }
        let running = try BuiltBinary("ringproxy").start([
            "--config", file, "--threads", "1", "--no-pin", "--access-log", "--log-format", "json",
            "--idle-timeout", "500ms", "--drain-timeout", "200ms", "--retries", "0",
        ])
        defer {
            running.signal(SIGKILL)
            _ = running.finish()
        }
        let main = SocketAddress(numericHost: "127.0.0.1", port: port)!
        let dead = SocketAddress(numericHost: "127.0.0.1", port: deadPort)!
        XCTAssertTrue(eventually(5) { running.stderrSoFar.contains("ringproxy started") })
        var expected: [UInt16: String] = [:]
        func open(_ address: SocketAddress, _ reason: String) throws -> TestClient {
            let client = try TestClient(address)
            expected[Socket.localAddress(of: client.fd)!.port] = reason
            return client
        }
        // Every byte both ways, then FIN from each side.
        let completed = try open(main, "completed")
        try completed.send("ab")
        completed.shutdownWrite()
        XCTAssertEqual(try completed.receiveUntilClose(), Array("ab".utf8))
        // The client resets.
        var resetting: TestClient? = try open(main, "client error")
        try resetting?.send("x")
        XCTAssertEqual(try resetting?.receive(exactly: 1), Array("x".utf8))
        Socket.setAbortiveClose(resetting!.fd)
        resetting = nil  // closed with linger 0: RST, no FIN first
        // The backend resets once 8 bytes have arrived.
        let victim = try open(main, "backend error")
        try victim.send("0123456789")
        XCTAssertTrue(victim.awaitEnd(within: 3).end.isClosed)
        // No backend to connect to.
        XCTAssertTrue(try open(dead, "connect failed").awaitEnd(within: 3).end.isClosed)
        // Silent for the idle timeout.
        let idle = try open(main, "idle timeout")
        try idle.send("i")
        XCTAssertEqual(try idle.receive(exactly: 1), Array("i".utf8))
        let idleEnd = idle.awaitEnd(within: 3)
        XCTAssertTrue(idleEnd.end.isClosed)
        XCTAssertGreaterThanOrEqual(idleEnd.milliseconds, 470, "closed by the 500 ms idle timeout, not before (the wheel's ticks only delay it; 30 ms for the echo to reach us)")
        XCTAssertLessThan(idleEnd.milliseconds, 1000, "at most a 250 ms tick after the timeout, with room for a loaded machine")
        // Still open when the drain times out.
        let open = try open(main, "shutdown")
        try open.send("s")
        XCTAssertEqual(try open.receive(exactly: 1), Array("s".utf8))
        running.signal(SIGTERM)
        XCTAssertTrue(open.awaitEnd(within: 3).end.isClosed)
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let closed = outcome.stderr.split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
            .filter { $0["message"] == "connection closed" }
        var reasons: [UInt16: String] = [:]
        for line in closed {
            if let client = line["client"], let port = client.split(separator: ":").last.flatMap({ UInt16($0) }) { reasons[port] = line["reason"] }
        }
        print("access-log reasons: \(expected.keys.sorted().map { "\(expected[$0]!) -> \(reasons[$0] ?? "none")" })")
        for (port, reason) in expected {
            XCTAssertEqual(reasons[port], reason, "the connection from port \(port):\n\(outcome.stderr)")
        }
        // The client that reset is named too (its address is kept from the accept: a reset socket has none left).
        XCTAssertEqual(closed.filter { $0["reason"] == "client error" && $0["bytes_up"] == "1" && $0["error"] == "ECONNRESET" }.count, 1,
                       outcome.stderr)
        XCTAssertEqual(closed.filter { $0["reason"] == "client error" }.count, 1, outcome.stderr)
    }
}
