import Foundation
import Glibc
import RingProxy
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
    }

    func testOpenLoopSendsTheOfferedRate() throws {
        let target = try startServer("echo")
        let (outcome, json) = try runWithJSON(["rr", "--target", target, "--connections", "10", "--rate", "500", "--duration", "2"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let requests = try XCTUnwrap(json["requests"] as? Int)
        XCTAssertEqual(Double(requests), 1000, accuracy: 200, "500 requests/s for 2 s")
    }

    func testStreamUpMovesBytesIntoASink() throws {
        let target = try startServer("sink")
        let (outcome, json) = try runWithJSON(["stream", "--target", target, "--connections", "2", "--duration", "1", "--direction", "up"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(json["mode"] as? String, "stream")
        XCTAssertGreaterThan(json["bytes_sent"] as? Int ?? 0, 0)
        XCTAssertEqual(json["bytes_received"] as? Int, 0)
        XCTAssertGreaterThan(json["mb_per_s"] as? Double ?? 0, 0)
    }

    func testStreamBothReadsTheEchoBack() throws {
        let target = try startServer("echo")
        let (outcome, json) = try runWithJSON(["stream", "--target", target, "--connections", "2", "--duration", "1", "--direction", "both"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertGreaterThan(json["bytes_received"] as? Int ?? 0, 0)
        XCTAssertEqual(json["errors_total"] as? Int, 0)
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
