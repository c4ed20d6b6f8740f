import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// The bundled load generator, run the way the benchmark harness runs it: the built `ringload` binary
/// against its own echo and sink servers on loopback.
final class RingLoadTests: XCTestCase {
    private var servers: [BuiltBinary.Running] = []

    override func tearDown() {
        for server in servers {
            server.signal(SIGTERM)
            _ = server.finish()
        }
        servers = []
    }

    func testRequestCountIsExactAndJSONHasEveryKey() throws {
        let target = try startServer("echo")
        let (outcome, json) = try runWithJSON(["rr", "--target", target, "--connections", "4", "--threads", "2", "--pipeline", "3", "--requests", "1000"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("  requests   1000 in "), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("  latency ms p50 "), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("  errors     0"), outcome.stdout)
        XCTAssertEqual(Set(json.keys), [
            "mode", "target", "connections", "threads", "elapsed_s", "requests", "requests_per_s", "bytes_sent",
            "bytes_received", "mb_per_s", "latency_ms", "errors", "errors_total",
        ])
        XCTAssertEqual(json["mode"] as? String, "rr")
        XCTAssertEqual(json["target"] as? String, target)
        XCTAssertEqual(json["requests"] as? Int, 1000)
        XCTAssertEqual(json["bytes_sent"] as? Int, 64_000)
        XCTAssertEqual(json["bytes_received"] as? Int, 64_000)
        XCTAssertEqual(json["errors_total"] as? Int, 0)
        let latency = try XCTUnwrap(json["latency_ms"] as? [String: Double])
        XCTAssertEqual(Set(latency.keys), ["p50", "p90", "p99", "p99_9", "max"])
        XCTAssertGreaterThan(latency["p50"] ?? 0, 0)
        XCTAssertTrue(latency["p50"]! <= latency["p90"]! && latency["p90"]! <= latency["p99"]! && latency["p99"]! <= latency["p99_9"]!
                      && latency["p99_9"]! <= latency["max"]!, "percentiles in order: \(latency)")
        try assertRatesAgreeWithTheCounts(json)
    }

    /// `requests_per_s` and `mb_per_s` are the counts over `elapsed_s` (MB: 10^6 bytes, both directions).
    private func assertRatesAgreeWithTheCounts(_ json: [String: Any], file: StaticString = #filePath, line: UInt = #line) throws {
        let elapsed = try XCTUnwrap(json["elapsed_s"] as? Double, file: file, line: line)
        XCTAssertGreaterThan(elapsed, 0, file: file, line: line)
        let requests = Double(json["requests"] as? Int ?? -1)
        let bytes = Double((json["bytes_sent"] as? Int ?? -1) + (json["bytes_received"] as? Int ?? -1))
        let requestRate = try XCTUnwrap(json["requests_per_s"] as? Double, file: file, line: line)
        let megabytes = try XCTUnwrap(json["mb_per_s"] as? Double, file: file, line: line)
        XCTAssertEqual(requestRate, requests / elapsed, accuracy: max(0.001 * requestRate, 1e-9), "requests_per_s", file: file, line: line)
        XCTAssertEqual(megabytes, bytes / elapsed / 1e6, accuracy: 0.001 * megabytes, "mb_per_s", file: file, line: line)
    }

    func testOpenLoopSendsTheOfferedRate() throws {
        let target = try startServer("echo")
        let (outcome, json) = try runWithJSON(["rr", "--target", target, "--connections", "10", "--rate", "500", "--duration", "2"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let requests = try XCTUnwrap(json["requests"] as? Int)
        // Seen: 999 requests in 2.0007 s (499.3/s).
        XCTAssertEqual(Double(requests), 1000, accuracy: 30, "500 requests/s for 2 s")
        XCTAssertEqual(json["elapsed_s"] as? Double ?? 0, 2, accuracy: 0.1)
        XCTAssertEqual(json["requests_per_s"] as? Double ?? 0, 500, accuracy: 15)
        try assertRatesAgreeWithTheCounts(json)
    }

    /// Open loop paces its requests through the run: counted at a proxy in front of the echo server, the
    /// requests of the middle seconds arrive at the offered rate, not in a burst at the start or the end.
    func testOpenLoopPacingHoldsTheOfferedRateThroughTheRun() throws {
        let target = try startServer("echo")
        let parts = target.split(separator: ":")
        let proxy = try ProxyHarness(backends: [(SocketAddress(numericHost: String(parts[0]), port: UInt16(parts[1])!)!, weight: 1)])
        defer { proxy.stop() }
        let path = NSTemporaryDirectory() + "ringload-\(UUID().uuidString).json"
        defer { unlink(path) }
        let running = try BuiltBinary("ringload").start(["rr", "--target", "\(proxy.address)", "--connections", "10", "--rate", "500",
                                                         "--duration", "4", "--quiet", "--json", path])
        XCTAssertTrue(eventually(5) { proxy.total(.bytesUpstream) > 0 }, "the load started")
        // Per-second request counts at the proxy (64 B each), over the three seconds after the first request.
        var perSecond: [Int] = []
        var last = proxy.total(.bytesUpstream)
        var tick = monotonicMilliseconds()
        for _ in 0..<3 {
            tick += 1000
            while monotonicMilliseconds() < tick { usleep(1_000) }
            let now = proxy.total(.bytesUpstream)
            perSecond.append((now - last) / 64)
            last = now
        }
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        print("open loop at 500 req/s, requests per second at the proxy: \(perSecond)")
        for count in perSecond { XCTAssertEqual(Double(count), 500, accuracy: 50, "each second carries the offered rate: \(perSecond)") }
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        XCTAssertEqual(Double(json["requests"] as? Int ?? 0), 2000, accuracy: 60)
    }

    func testStreamUpMovesBytesIntoASink() throws {
        let target = try startServer("sink")
        let (outcome, json) = try runWithJSON(["stream", "--target", target, "--connections", "2", "--duration", "1", "--direction", "up"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(json["mode"] as? String, "stream")
        XCTAssertGreaterThan(json["bytes_sent"] as? Int ?? 0, 0)
        XCTAssertEqual(json["bytes_received"] as? Int, 0)
        XCTAssertGreaterThan(json["mb_per_s"] as? Double ?? 0, 0)
        XCTAssertEqual(json["elapsed_s"] as? Double ?? 0, 1, accuracy: 0.2, "--duration 1")
        try assertRatesAgreeWithTheCounts(json)
    }

    func testStreamBothReadsTheEchoBack() throws {
        let target = try startServer("echo")
        let (outcome, json) = try runWithJSON(["stream", "--target", target, "--connections", "2", "--duration", "1", "--direction", "both"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertGreaterThan(json["bytes_received"] as? Int ?? 0, 0)
        XCTAssertEqual(json["errors_total"] as? Int, 0)
        // At the deadline each connection stops sending and drains, so every byte sent has come back.
        XCTAssertEqual(json["bytes_received"] as? Int, json["bytes_sent"] as? Int)
        // Sending stops at --duration 1 (seen at the next 100 ms heartbeat); the drain then takes what the
        // bytes in flight need, at most the socket buffers' autotuning maxima at the echo's pace.
        let elapsed = json["elapsed_s"] as? Double ?? 0
        XCTAssertGreaterThanOrEqual(elapsed, 0.95, "--duration 1")
        XCTAssertLessThan(elapsed, 2, "--duration 1, then the drain")
        try assertRatesAgreeWithTheCounts(json)
    }

    func testConnectCompletesEveryConnection() throws {
        let target = try startServer("echo")
        let (outcome, json) = try runWithJSON(["connect", "--target", target, "--concurrency", "4", "--requests", "300"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(json["mode"] as? String, "connect")
        XCTAssertEqual(json["requests"] as? Int, 300)
        XCTAssertEqual(json["errors_total"] as? Int, 0, "\(json["errors"] ?? "")")
        XCTAssertEqual(json["bytes_received"] as? Int, 300 * 64)
    }

    func testIdleHoldsConnectionsUntilSIGTERM() throws {
        let target = try startServer("echo")
        let output = NSTemporaryDirectory() + "ringload-idle-\(UUID().uuidString).out"
        defer { unlink(output) }
        let idle = try BuiltBinary.shell("exec '\(try BuiltBinary("ringload").url.path)' idle --target \(target) --connections 50 --threads 2 --quiet > \(output)")
        let line = "idle: 50 connections open"
        XCTAssertTrue(eventually(10) { ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains(line) })
        XCTAssertTrue(idle.isRunning, "holds the connections")
        idle.signal(SIGTERM)
        XCTAssertEqual(idle.finish().status, 0)
        let printed = try String(contentsOfFile: output, encoding: .utf8)
        XCTAssertEqual(printed.split(separator: "\n").filter { $0.hasPrefix("idle:") }, [Substring(line)])
        XCTAssertTrue(printed.contains("  errors     0"), printed)
    }

    func testDeadTargetEndsAtOnceWithStatus1() throws {
        let target = "\(try deadAddress())"
        let (outcome, json) = try runWithJSON(["rr", "--target", target, "--connections", "3", "--duration", "30"], timeout: 10)
        XCTAssertEqual(outcome.status, 1)
        XCTAssertEqual(json["errors"] as? [String: Int], ["connect: Connection refused": 3])
        XCTAssertTrue(outcome.stdout.contains("  errors     3 (connect: Connection refused: 3)"), outcome.stdout)
    }

    /// Starts `ringload <kind>-server` on a free port and waits until it accepts connections.
    private func startServer(_ kind: String) throws -> String {
        let address = try deadAddress()
        servers.append(try BuiltBinary("ringload").start(["\(kind)-server", "--listen", "\(address)"]))
        XCTAssertTrue(eventually(5) { (try? TestClient(address)) != nil }, "\(kind)-server accepts")
        return "\(address)"
    }

    /// Runs ringload with `arguments` plus `--quiet --json FILE`; returns its outcome and the JSON object.
    private func runWithJSON(_ arguments: [String], timeout: TimeInterval = 30) throws -> (BuiltBinary.Outcome, [String: Any]) {
        let path = NSTemporaryDirectory() + "ringload-\(UUID().uuidString).json"
        defer { unlink(path) }
        let outcome = try BuiltBinary("ringload").run(arguments + ["--quiet", "--json", path], timeout: timeout)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], outcome.stderr)
        return (outcome, json)
    }
}
