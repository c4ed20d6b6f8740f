import Foundation
import Glibc
@testable import RingProxy
import Synchronization
import XCTest

/// Health checks that speak, against real peers: an HTTP check endpoint that flips (a Patroni pair), a real
/// Redis, a PostgreSQL wire answer; and slow start.
final class HealthCheckTests: XCTestCase {
    private let source = SettingSource(key: "test")

    /// Two database backends whose HTTP check endpoint (on the check port of each address, as Patroni's 8008)
    /// answers 200 on the primary and 503 on the replica. The primary flips under load: after fall x interval
    /// (the first failing check comes within one interval of the flip, the fall-th one fall - 1 intervals
    /// later) and a 250 ms margin, no new client reaches the old primary (measured: 360 to 380 ms on a quiet
    /// machine, 508 ms once with six builds sharing two CPUs; the bound is 650), and
    /// no client fails (the new primary passes its first check a round before the old one fails its second).
    func testPatroniLikePairFollowsThePrimaryFlipUnderLoad() throws {
        let primaryIsFirst = Atomic<Bool>(true)
        func endpoint(_ host: String, port: UInt16, first: Bool) throws -> AnswerServer {
            try AnswerServer(host: host, port: port) { request in
                guard request.count >= 4, request.suffix(4) == Array("\r\n\r\n".utf8) else { return nil }
                let primary = primaryIsFirst.load(ordering: .relaxed) == first
                return Array("HTTP/1.1 \(primary ? "200 OK" : "503 Service Unavailable")\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
            }
        }
        let check1 = try endpoint("127.0.0.2", port: 0, first: true)
        let check2 = try endpoint("127.0.0.3", port: check1.address.port, first: false)
        defer { withExtendedLifetime(check2) {} }  // answers db2's checks until the test ends
        let db1 = try TestServer(.banner("db1"), host: "127.0.0.2"), db2 = try TestServer(.banner("db2"), host: "127.0.0.3")
        let interval = 200, fall = 2
        let proxy = try ProxyHarness(backends: [(db1.address, weight: 1), (db2.address, weight: 1)]) { settings in
            settings.health.interval = Setting(.milliseconds(interval), self.source)
            settings.health.fall = Setting(fall, self.source)
            settings.health.rise = Setting(1, self.source)
            settings.health.type = Setting("http", self.source)
            settings.health.path = Setting("/primary", self.source)
            settings.health.status = Setting([200], self.source)
            settings.health.checkPort = Setting(Int(check1.address.port), self.source)
        }
        defer { proxy.stop() }
        let db1Health = proxy.table.health(of: proxy.pool.members[0].id), db2Health = proxy.table.health(of: proxy.pool.members[1].id)
        XCTAssertTrue(eventually(3) { db2Health.state == .down && db1Health.state == .up }, "the replica is out")
        let clients = TimedClients(proxy.address, count: 4, deadline: 20)
        XCTAssertTrue(eventually(3) { clients.visits.count >= 50 })

        let flipped = monotonicMilliseconds()
        primaryIsFirst.store(false, ordering: .relaxed)
        // Both transitions, each timed when first seen (polled every millisecond, 3 s at most).
        var db1Down: Int64?, db2Up: Int64?
        while db1Down == nil || db2Up == nil, monotonicMilliseconds() < flipped + 3000 {
            if db1Down == nil, db1Health.state == .down { db1Down = monotonicMilliseconds() - flipped }
            if db2Up == nil, db2Health.state == .up { db2Up = monotonicMilliseconds() - flipped }
            usleep(1000)
        }
        XCTAssertNotNil(db1Down, "the old primary goes down")
        XCTAssertNotNil(db2Up, "the new primary comes up")
        // The first check after the flip comes within an interval, then fall - 1 more: down by fall x interval,
        // plus the checks' own time (seen: 364-380 ms, 508 ms once on a loaded machine).
        let bound = Int64(fall * interval + 250)
        XCTAssertTrue(eventually(5) { clients.backends(since: flipped + bound).values.reduce(0, +) >= 100 }, "clients go on")
        let outcome = clients.stop()

        XCTAssertEqual(outcome.failures, [], "no client fails across the flip")
        let lastOnOld = outcome.visits.filter { $0.backend == "db1" }.map(\.started).max() ?? flipped
        let firstOnNew = outcome.visits.filter { $0.backend == "db2" }.map(\.started).min() ?? .max
        // Every pick reads the health word, so a client that began after the old primary was seen down cannot be
        // on it (1 ms for the polling above).
        XCTAssertLessThanOrEqual(lastOnOld - flipped, (db1Down ?? bound) + 1, "no new client reaches the old primary once it is down")
        XCTAssertLessThanOrEqual(db1Down ?? .max, bound, "the old primary goes down within fall x interval + 250 ms")
        XCTAssertEqual(outcome.visits.filter { $0.started > flipped + bound && $0.backend == "db1" }.count, 0)
        XCTAssertGreaterThanOrEqual(outcome.visits.filter { $0.started > flipped + bound }.count, 100)
        XCTAssertGreaterThan(check1.answered, 0)
        print("primary flip (interval \(interval) ms, fall \(fall), rise 1): flip at 0; db2 up at \(db2Up ?? -1) ms; db1 down at \(db1Down ?? -1) ms; "
              + "first client on db2 at \(firstOnNew - flipped) ms; last client on db1 began at \(lastOnOld - flipped) ms; "
              + "\(outcome.visits.count) clients, 0 failed")
    }

    /// send-expect against a real Redis: PING answered +PONG keeps it up, while an echo server beside it
    /// (which accepts, so a connect check would pass, but answers PING with PING) is taken down.
    func testSendExpectKeepsARealRedisUpAndTakesAnImpostorDown() throws {
        let redisServer = try requireTool(["/usr/bin/redis-server"], install: "apt-get install redis-server")
        let port = try deadAddress().port
        let redis = try BuiltBinary.Running(executable: redisServer, arguments: [
            redisServer, "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
        ])
        defer { redis.signal(SIGTERM); _ = redis.finish() }
        let redisAddress = SocketAddress(numericHost: "127.0.0.1", port: port)!
        XCTAssertTrue(eventually(5) { (try? TestClient(redisAddress, timeout: 1)) != nil }, "redis is listening")
        let impostor = try TestServer(.echo)
        let proxy = try ProxyHarness(backends: [(redisAddress, weight: 1), (impostor.address, weight: 1)]) { settings in
            settings.health.interval = Setting(.milliseconds(100), self.source)
            settings.health.fall = Setting(1, self.source)
            settings.health.type = Setting("send-expect", self.source)
            settings.health.send = Setting("PING\r\n", self.source)
            settings.health.expect = Setting("+PONG", self.source)
        }
        defer { proxy.stop() }
        let redisHealth = proxy.table.health(of: proxy.pool.members[0].id)
        let impostorHealth = proxy.table.health(of: proxy.pool.members[1].id)
        XCTAssertTrue(eventually(3) { impostorHealth.state == .down }, "PING echoed is not +PONG")
        let checksSoFar = impostor.acceptedCount
        XCTAssertTrue(eventually(3) { impostor.acceptedCount >= checksSoFar + 5 }, "checks go on (five more rounds)")
        XCTAssertEqual(redisHealth.state, .up)
        XCTAssertEqual(redisHealth.stateChanges, 0, "redis passed every check")
        for _ in 0..<10 {
            let client = try TestClient(proxy.address)
            try client.send("PING\r\n")
            XCTAssertEqual(try client.receive(exactly: 7), Array("+PONG\r\n".utf8), "every client reaches redis")
        }
    }

    /// send-expect on PostgreSQL's wire: the SSLRequest a client opens with, answered 'N' by a server
    /// without TLS. The peer is a test server that speaks that first exchange (no PostgreSQL is started:
    /// initdb and a server take seconds and a non-root user); an echo server beside it is taken down.
    func testSendExpectOnThePostgresSSLRequestAnswer() throws {
        let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]
        let postgres = try AnswerServer { request in
            guard request.count >= 8 else { return nil }
            return Array(request.prefix(8)) == sslRequest ? Array("N".utf8) : Array("E".utf8)
        }
        let impostor = try TestServer(.echo)
        let proxy = try ProxyHarness(backends: [(postgres.address, weight: 1), (impostor.address, weight: 1)]) { settings in
            settings.health.interval = Setting(.milliseconds(100), self.source)
            settings.health.fall = Setting(1, self.source)
            settings.health.type = Setting("send-expect", self.source)
            settings.health.sendHex = Setting("00000008 04d2162f", self.source)
            settings.health.expect = Setting("N", self.source)
            settings.health.expectWithin = Setting(1, self.source)
        }
        defer { proxy.stop() }
        let postgresHealth = proxy.table.health(of: proxy.pool.members[0].id)
        let impostorHealth = proxy.table.health(of: proxy.pool.members[1].id)
        XCTAssertTrue(eventually(3) { impostorHealth.state == .down })
        let answered = postgres.answered
        XCTAssertTrue(eventually(3) { postgres.answered >= answered + 5 }, "five more checks answered")
        XCTAssertEqual(postgresHealth.state, .up)
        XCTAssertEqual(postgresHealth.stateChanges, 0)
    }

    /// A check that gets no answer fails on its timeout, not later: the checker never waits on a peer.
    func testACheckWhosePeerNeverAnswersFailsOnItsTimeout() throws {
        let silent = try TestServer(.ignore)
        let proxy = try ProxyHarness(silent) { settings in
            settings.health.interval = Setting(.milliseconds(300), self.source)
            settings.health.timeout = Setting(.milliseconds(100), self.source)
            settings.health.fall = Setting(1, self.source)
            settings.health.type = Setting("http", self.source)
        }
        defer { proxy.stop() }
        let started = monotonicMilliseconds()
        XCTAssertTrue(eventually(3) { proxy.table.health(of: proxy.pool.members[0].id).state == .down })
        let down = monotonicMilliseconds() - started
        // The first round starts one interval after the start; its check times out 100 ms later.
        XCTAssertLessThan(down, 300 + 100 + 300)
    }

    /// Slow start: a backend that joins (by a reload) takes a share that ramps up over `slow_start`; its
    /// first second's share is well below its final one.
    func testAJoiningBackendRampsItsShareOverSlowStart() throws {
        let a = try TestServer(.banner("a")), b = try TestServer(.banner("b")), c = try TestServer(.banner("c"))
        let slowStart = 4000
        let proxy = try ProxyHarness(a, b) { settings in
            settings.health.slowStart = Setting(.milliseconds(slowStart), self.source)
            settings.balance = Setting("weighted-random", self.source)
        }
        defer { proxy.stop() }
        let clients = TimedClients(proxy.address, count: 4, deadline: 30)
        XCTAssertTrue(eventually(3) { clients.visits.count >= 50 })
        try proxy.reload { settings in
            settings.backends = [a, b, c].map { server in
                BackendSpec(host: Setting("127.0.0.1", self.source), port: Setting(Int(server.port), self.source),
                            weight: Setting(1, self.source), source: self.source)
            }
        }
        let joined = monotonicMilliseconds()
        XCTAssertTrue(eventually(15) { monotonicMilliseconds() > joined + Int64(slowStart) + 1500 })
        let outcome = clients.stop()
        XCTAssertEqual(outcome.failures, [])
        func share(_ from: Int, _ to: Int) -> (Double, Int) {
            let window = outcome.visits.filter { $0.started >= joined + Int64(from) && $0.started < joined + Int64(to) }
            return (Double(window.filter { $0.backend == "c" }.count) / Double(max(1, window.count)), window.count)
        }
        let (first, firstCount) = share(0, 1000)
        let (last, lastCount) = share(slowStart, slowStart + 1500)
        XCTAssertGreaterThan(firstCount, 100)
        XCTAssertGreaterThan(lastCount, 100)
        // Weighted random: over the first second c weighs 0 to 0.25 (mean 0.125): a share of about 0.06;
        // once ramped, a third.
        XCTAssertLessThan(first, 0.12, "the first second's share")
        XCTAssertEqual(last, 1.0 / 3, accuracy: 0.08, "the share once ramped")
        XCTAssertLessThan(first, last / 2.5)
        print("slow start \(slowStart) ms: joining backend's share \(String(format: "%.3f", first)) in its first second (\(firstCount) connections), "
              + "\(String(format: "%.3f", last)) after the ramp (\(lastCount) connections)")
    }
}
