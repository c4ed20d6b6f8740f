import Glibc
@testable import RingProxy
import XCTest

/// Runtime control through the admin endpoint of an in-process proxy, under load: drain, maintenance and a
/// weight change, each measured on real connections.
final class RuntimeControlTests: XCTestCase {
    private func startAdmin(_ proxy: ProxyHarness) throws -> (AdminServer, SocketAddress) {
        let admin = AdminServer(proxy: proxy.proxy, address: SocketAddress(numericHost: "127.0.0.1", port: 0)!)
        return (admin, try admin.start())
    }

    /// Clients run the whole time (8 threads, each holding its connection 50 to 400 ms). After the drain
    /// answers, no connection begun reaches the drained backend, its open connections finish (none fails)
    /// and its count falls to zero while the clients go on.
    func testDrainUnderLoadFailsNoClientAndEmptiesTheDrainedBackend() throws {
        let a = try TestServer(.banner("a")), b = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(a, b)
        defer { proxy.stop() }
        let (admin, adminAddress) = try startAdmin(proxy)
        defer { admin.stop() }
        let clients = TimedClients(proxy.address, count: 8, hold: 50...400, deadline: 20)
        XCTAssertTrue(eventually(5) { proxy.backendCount(.active, 0) >= 2 && clients.visits.count >= 20 }, "load on both backends")
        let openAtDrain = proxy.backendCount(.active, 0)

        let answer = try adminRequest(adminAddress, "PUT", "/backends/default/\(a.address)", body: "state=drain")
        let drained = monotonicMilliseconds()
        XCTAssertEqual(answer.status, 200, answer.body)
        XCTAssertTrue(answer.body.contains(#""state" : "drain""#), answer.body)
        XCTAssertTrue(eventually(5) { proxy.backendCount(.active, 0) == 0 }, "the drained backend's connections finish")
        let emptiedAfter = monotonicMilliseconds() - drained
        let visitsAtEmpty = clients.visits.count
        XCTAssertTrue(eventually(5) { clients.visits.count >= visitsAtEmpty + 40 }, "the clients go on")
        let outcome = clients.stop()

        XCTAssertEqual(outcome.failures, [], "no client fails")
        let after = outcome.visits.filter { $0.started >= drained }
        XCTAssertEqual(after.filter { $0.backend == "a" }.count, 0, "no connection begun after the drain reaches it")
        XCTAssertGreaterThanOrEqual(after.count, 40)
        // The longest hold is 400 ms; two exchanges and the close add a few ms.
        XCTAssertLessThan(emptiedAfter, 1500, "open connections finish within the longest hold")
        XCTAssertEqual(proxy.table.health(of: proxy.pool.members[0].id).displayState, "drain")
        print("drain under load: \(openAtDrain) open on the drained backend at the drain, zero after \(emptiedAfter) ms; "
              + "\(outcome.visits.count) connections, \(after.count) begun after the drain, all on b; 0 failed")
    }

    /// Maintenance: no new connections, and no checks: the backend can die without being marked down; back
    /// to ready, the checks resume and find it down.
    func testMaintenanceTakesNoNewConnectionsAndPausesHealthChecks() throws {
        let a = try TestServer(.banner("a")), b = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(a, b) { settings in
            settings.health.interval = Setting(.milliseconds(100), SettingSource(key: "test"))
            settings.health.fall = Setting(2, SettingSource(key: "test"))
        }
        defer { proxy.stop() }
        let (admin, adminAddress) = try startAdmin(proxy)
        defer { admin.stop() }
        let health = proxy.table.health(of: proxy.pool.members[0].id)
        XCTAssertEqual(try adminRequest(adminAddress, "PUT", "/backends/default/\(a.address)", body: #"{"state": "maint"}"#).status, 200)
        var answers: [String: Int] = [:]
        for _ in 0..<60 { answers[try TestClient(proxy.address).receiveLine(), default: 0] += 1 }
        XCTAssertEqual(answers, ["b": 60])

        a.stop()
        // Ten check intervals with the backend dead: paused checks record nothing (an absence takes a wait).
        usleep(1_000_000)
        XCTAssertEqual(health.state, .up, "no check ran")
        XCTAssertEqual(health.stateChanges, 0)
        XCTAssertEqual(health.displayState, "maint")

        let ready = monotonicMilliseconds()
        XCTAssertEqual(try adminRequest(adminAddress, "PUT", "/backends/default/\(a.address)?state=ready").status, 200)
        XCTAssertTrue(eventually(3) { health.state == .down }, "checks resumed and found it dead")
        let downAfter = monotonicMilliseconds() - ready
        XCTAssertLessThan(downAfter, 2 * 100 + 400, "fall (2) x interval (100 ms) and a margin")
        print("maint: checks paused for 1 s with the backend dead (no change); after ready, down in \(downAfter) ms")
    }

    /// A weight change moves the split. Round robin, whose split is the weights exactly per worker (p2c with
    /// sequential connections alternates: the last one's close is still counted as load when the next comes).
    func testAWeightChangeChangesTheSplit() throws {
        let a = try TestServer(.banner("a")), b = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(a, b) { $0.balance = Setting("round-robin", SettingSource(key: "test")) }
        defer { proxy.stop() }
        let (admin, adminAddress) = try startAdmin(proxy)
        defer { admin.stop() }
        func shareOfA(_ count: Int) throws -> Double {
            var onA = 0
            for _ in 0..<count where try TestClient(proxy.address).receiveLine() == "a" { onA += 1 }
            return Double(onA) / Double(count)
        }
        let before = try shareOfA(500)
        let answer = try adminRequest(adminAddress, "PUT", "/backends/default/\(a.address)", body: "weight=4")
        XCTAssertEqual(answer.status, 200, answer.body)
        XCTAssertTrue(answer.body.contains(#""weight" : 4"#) && answer.body.contains(#""file_weight" : 1"#), answer.body)
        XCTAssertEqual(proxy.pool.members[0].weight, 4, "a new plan with the new weight")
        let after = try shareOfA(500)
        // Two workers, each exact over its own cycle of picks: off by a few picks at most.
        XCTAssertEqual(before, 0.5, accuracy: 0.02)
        XCTAssertEqual(after, 0.8, accuracy: 0.02)
        XCTAssertEqual(try adminRequest(adminAddress, "DELETE", "/backends/default/\(a.address)").status, 200)
        XCTAssertEqual(proxy.pool.members[0].weight, 1, "reset: the file's weight again")
        print("weight 1:1 -> 4:1: a's share \(before) -> \(after) (500 connections each)")
    }

    func testBadControlRequestsAreRefusedWithAReason() throws {
        let a = try TestServer(.banner("a"))
        let proxy = try ProxyHarness(a)
        defer { proxy.stop() }
        let (admin, adminAddress) = try startAdmin(proxy)
        defer { admin.stop() }
        let path = "/backends/default/\(a.address)"
        let cases: [(String, String, String, Int, String)] = [
            ("PUT", path, "state=sleep", 400, "state must be ready, drain or maint, not 'sleep'"),
            ("PUT", path, "weight=heavy", 400, "weight must be an integer, not 'heavy'"),
            ("PUT", path, "weight=1000", 400, "weight 1000 is out of range: expected 0 to 256"),
            ("PUT", path, "colour=red", 400, "unknown parameter 'colour'"),
            ("PUT", path, "", 400, "nothing to change"),
            ("PUT", "/backends/nowhere/\(a.address)", "state=drain", 404, "no listener (pool) named 'nowhere'"),
            ("PUT", "/backends/default/127.0.0.1:1", "state=drain", 404, "pool 'default' has no backend 127.0.0.1:1"),
            ("PUT", "/backends/default", "state=drain", 404, "expected /backends/<pool>/<address>"),
            ("POST", path, "state=drain", 405, "use PUT"),
        ]
        for (method, target, body, status, reason) in cases {
            let answer = try adminRequest(adminAddress, method, target, body: body)
            XCTAssertEqual(answer.status, status, "\(method) \(target) \(body): \(answer.body)")
            XCTAssertTrue(answer.body.contains(reason), "\(method) \(target) \(body): \(answer.body)")
        }
        XCTAssertEqual(proxy.table.health(of: proxy.pool.members[0].id).adminState, .ready, "nothing changed")
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "a")
    }
}
