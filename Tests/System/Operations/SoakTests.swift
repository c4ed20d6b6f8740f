import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// `make soak DURATION=600`: the proxy binary under mixed load for minutes — random integrity streams,
/// request/response load from ringload and connection churn — then its memory and descriptors compared
/// before and after. Skipped unless SOAK_SECONDS is set.
final class SoakTests: XCTestCase {
    func testSoak() throws {
        guard let seconds = ProcessInfo.processInfo.environment["SOAK_SECONDS"].flatMap(Int.init), seconds > 0 else {
            throw XCTSkip("a soak runs only when asked: make soak DURATION=600 (sets SOAK_SECONDS)")
        }
        let backends = try (0..<2).map { _ in try TestServer(.echo) }
        let ports = try deadAddresses(2).map(\.port)
        let (port, adminPort) = (ports[0], ports[1])
        let proxy = try BuiltBinary("ringproxy").start([
            "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backends[0].port)",
            "--backend", "127.0.0.1:\(backends[1].port)", "--admin", "\(adminPort)", "--log-level", "warning",
            // A small pool (2 MiB a worker) runs dry now and then, and keeps the memory comparison sharp: a
            // worker's pool is touched only once traffic lands on it (SO_INCOMING_CPU steers loopback clients).
            "--buffers", "128",
        ])
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        let admin = SocketAddress(numericHost: "127.0.0.1", port: adminPort)!
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 200 })
        let pid = proxy.pid

        // A warm-up, so that the buffer pool and connection tables are touched before the first sample.
        var warmUp = ConcurrentEcho(address: address, connections: 64, bytes: 4 << 20)
        warmUp.chunks = 1...65536
        XCTAssertEqual(warmUp.run().failures, [])
        XCTAssertEqual(try HTTPGet(admin, "/metrics").status, 200)
        let start = (rss: try residentKiB(of: pid), fds: try openDescriptors(of: pid))

        let until = monotonicMilliseconds() + Int64(seconds) * 1000
        // A second sample a tenth of the way in, once every worker's pool and table have been touched: from
        // there on, the memory must stay flat.
        let settled = Background { () -> (rss: Int, fds: Int) in
            sleep(UInt32(max(1, seconds / 10)))
            return ((try? residentKiB(of: pid)) ?? -1, (try? openDescriptors(of: pid)) ?? -1)
        }
        let integrity = Background {
            var check = ConcurrentEcho(address: address, connections: 32)
            check.sizes = 1...(16 << 20)
            check.chunks = 1...65536
            check.halfCloseChance = 0.5
            check.until = until
            check.seed = UInt64(time(nil))
            return check.run()
        }
        let churn = Background { () -> (connections: Int, failures: [String]) in
            var connections = 0, failures: [String] = []
            while monotonicMilliseconds() < until {
                do {
                    let client = try TestClient(address)
                    try client.send("c")
                    _ = try client.receive(exactly: 1)
                    connections += 1
                } catch {
                    failures.append("\(error)")
                }
            }
            return (connections, failures)
        }
        let requests = try BuiltBinary("ringload").run(
            ["rr", "--target", "\(address)", "--connections", "50", "--duration", "\(seconds)"], timeout: TimeInterval(seconds + 60))
        let checked = integrity.wait()
        let middle = settled.wait()
        let churned = churn.wait()
        XCTAssertTrue(eventually(10) { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_worker_active_connections{worker=\"0\"}") == 0 })
        XCTAssertTrue(eventually(5) { (try? openDescriptors(of: pid)) == start.fds }, "no descriptor leaks")
        let end = (rss: try residentKiB(of: pid), fds: try openDescriptors(of: pid))
        proxy.signal(SIGTERM)
        let stopped = proxy.finish()

        let rrErrors = requests.stdout.split(separator: "\n").first { $0.contains("errors") }.map(String.init) ?? "?"
        print("""
            soak, \(seconds) s:
              integrity: \(checked.verified) streams, \(checked.bytesChecked) bytes checked, \(checked.failures.count) failed
              churn: \(churned.connections) connections, \(churned.failures.count) failed
              ringload rr: \(requests.stdout.split(separator: "\n").dropFirst().first ?? "?") \(rrErrors.trimmingCharacters(in: .whitespaces))
              proxy RSS \(start.rss) KiB -> \(middle.rss) KiB after \(seconds / 10) s -> \(end.rss) KiB at the end
              open descriptors \(start.fds) -> \(middle.fds) under load -> \(end.fds) once idle
            """)
        XCTAssertEqual(checked.failures.prefix(5), [])
        XCTAssertEqual(churned.failures.prefix(5), [])
        XCTAssertEqual(requests.status, 0, requests.stderr)
        XCTAssertTrue(rrErrors.hasSuffix(" 0"), rrErrors)
        XCTAssertLessThan(end.rss, start.rss + 4096, "no memory growth beyond the other worker's 2 MiB pool")
        XCTAssertLessThan(end.rss, middle.rss + 1024, "no memory growth once the load has settled")
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
    }
}

/// Descriptors a process has open, from /proc.
func openDescriptors(of pid: Int32) throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
}
