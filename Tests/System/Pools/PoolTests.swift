import CURing
import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// Backend pools end to end: listeners with their own pools, health taking dead backends out and bringing
/// them back, limits, drains, address families and the PROXY protocol.
final class PoolTests: XCTestCase {
    private let source = SettingSource(key: "test")

    private func backend(_ address: SocketAddress, weight: Int = 1, maxConnections: Int? = nil) -> BackendSpec {
        BackendSpec(host: Setting(address.host, source), port: Setting(Int(address.port), source), weight: Setting(weight, source),
                    maxConnections: maxConnections.map { Setting($0, source) }, source: source)
    }

    func testPassiveHealthTakesADeadBackendOutAndATrialBringsItBack() throws {
        let dead = try deadAddress()
        let live = try TestServer(.banner("live"))
        let proxy = try ProxyHarness(backends: [(dead, weight: 1), (live.address, weight: 1)]) { settings in
            settings.health.failThreshold = Setting(2, self.source)
            settings.health.failTimeout = Setting(.milliseconds(600), self.source)
            settings.balance = Setting("round-robin", self.source)
        }
        defer { proxy.stop() }
        for _ in 0..<10 { XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "live") }
        let health = proxy.table.health(of: proxy.pool.members[0].id)
        XCTAssertEqual(health.state, .down, "two consecutive failures mark it down")
        let failures = proxy.total(.connectFailures)
        XCTAssertEqual(failures, 2, "round robin met the dead backend twice, then stopped trying it")
        for _ in 0..<10 { XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "live") }
        XCTAssertEqual(proxy.total(.connectFailures), failures, "a down backend gets no connects")

        let revived = try TestServer(.banner("revived"), port: dead.port)
        // Once the 600 ms fail timeout is over, a client's connection is the trial: keep connecting until one is.
        var answers = Set<String>()
        XCTAssertTrue(eventually(3) {
            if let answer = try? TestClient(proxy.address).receiveLine() { answers.insert(answer) }
            return answers.contains("revived")
        }, "a trial connection reached the revived backend")
        for _ in 0..<10 { answers.insert(try TestClient(proxy.address).receiveLine()) }
        XCTAssertEqual(health.state, .up, "the trial connection succeeded")
        XCTAssertEqual(answers, ["live", "revived"])
        XCTAssertGreaterThan(revived.acceptedCount, 0)
    }

    func testActiveChecksTakeAStoppedBackendDownAndBringItBack() throws {
        let steady = try TestServer(.banner("steady"))
        let flaky = try TestServer(.banner("flaky"))
        let port = flaky.port
        let proxy = try ProxyHarness(steady, flaky) { settings in
            settings.health.interval = Setting(.milliseconds(100), self.source)
            settings.health.timeout = Setting(.milliseconds(100), self.source)
            settings.health.rise = Setting(2, self.source)
            settings.health.fall = Setting(2, self.source)
        }
        defer { proxy.stop() }
        let health = proxy.table.health(of: proxy.pool.members[1].id)
        XCTAssertTrue(eventually(3) { flaky.acceptedCount >= 2 }, "checks connect to the backend")
        flaky.stop()
        XCTAssertTrue(eventually(3) { health.state == .down }, "two failed checks mark it down")
        for _ in 0..<10 { XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "steady") }
        XCTAssertEqual(proxy.total(.connectFailures), 0, "clients never met the stopped backend")
        let back = try TestServer(.banner("flaky"), port: port)
        XCTAssertTrue(eventually(3) { health.state == .up }, "two passed checks bring it up")
        // The checks' handshakes complete in the kernel before the server's thread accepts them.
        XCTAssertTrue(eventually(3) { back.acceptedCount >= 2 }, "the checks that passed reached the revived backend")
    }

    func testAllBackendsDownClosesClientsAtOnceAndTheProxyRecovers() throws {
        let only = try TestServer(.banner("only"))
        let port = only.port
        let proxy = try ProxyHarness(only) { settings in
            settings.health.interval = Setting(.milliseconds(100), self.source)
            settings.health.fall = Setting(1, self.source)
            settings.health.rise = Setting(1, self.source)
            settings.connectTimeout = Setting(.seconds(5), self.source)
        }
        defer { proxy.stop() }
        only.stop()
        XCTAssertTrue(eventually(3) { proxy.table.health(of: proxy.pool.members[0].id).state == .down })
        let started = monotonicMilliseconds()
        XCTAssertEqual(try TestClient(proxy.address).receiveUntilClose(), [])
        XCTAssertLessThan(monotonicMilliseconds() - started, 1000, "closed at once, not after the 5 s connect timeout")
        XCTAssertGreaterThan(proxy.total(.noBackend), 0)
        let back = try TestServer(.banner("back"), port: port)
        XCTAssertTrue(eventually(3) { proxy.table.health(of: proxy.pool.members[0].id).state == .up })
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "back")
        _ = back
    }

    func testWeightZeroBackendTakesNoNewClients() throws {
        let drained = try TestServer(.banner("drained"))
        let active = try TestServer(.banner("active"))
        let proxy = try ProxyHarness(backends: [(drained.address, weight: 0), (active.address, weight: 1)])
        defer { proxy.stop() }
        for _ in 0..<20 { XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "active") }
        XCTAssertEqual(drained.acceptedCount, 0)
    }

    /// A reload that sets a backend's weight to 0 drains it: its open clients keep working to the end, and
    /// every new client goes to the others.
    func testReloadToWeightZeroDrainsABackendsOpenClients() throws {
        let drained = try TestServer(.banner("drained"))
        let active = try TestServer(.banner("active"))
        let proxy = try ProxyHarness(backends: [(drained.address, weight: 1), (active.address, weight: 1)]) { settings in
            settings.balance = Setting("round-robin", self.source)
            settings.threads = Setting(1, self.source)
        }
        defer { proxy.stop() }
        var onDrained: [TestClient] = []
        for _ in 0..<10 {
            let client = try TestClient(proxy.address)
            if try client.receiveLine() == "drained" { onDrained.append(client) }
        }
        XCTAssertEqual(onDrained.count, 5, "round robin on one worker: every other client")
        XCTAssertEqual(drained.openCount, 5)
        try proxy.reload { settings in
            settings.backends = [self.backend(drained.address, weight: 0), self.backend(active.address, weight: 1)]
        }
        XCTAssertEqual(proxy.pool.members.map(\.weight), [0, 1], "the reload took effect")
        for _ in 0..<20 { XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "active", "new clients go elsewhere") }
        XCTAssertEqual(drained.acceptedCount, 5, "the drained backend took no new client")
        for (index, client) in onDrained.enumerated() {
            try client.send("still open \(index)\n")
            XCTAssertEqual(try client.receiveLine(), "still open \(index)", "an open client keeps its drained backend")
        }
        XCTAssertEqual(proxy.backendCount(.active, 0), 5)
        onDrained.removeAll()
        XCTAssertTrue(eventually { proxy.backendCount(.active, 0) == 0 && drained.openCount == 0 }, "drained once its clients leave")
    }

    func testMaxConnectionsSkipsAFullBackendAndClosesClientsWhenAllAreFull() throws {
        let small = try TestServer(.banner("small"))
        let proxy = try ProxyHarness(backends: [(small.address, weight: 1)]) { settings in
            settings.backends = [self.backend(small.address, maxConnections: 2)]
        }
        defer { proxy.stop() }
        let held = try (0..<2).map { _ in try TestClient(proxy.address) }
        for client in held { XCTAssertEqual(try client.receiveLine(), "small") }
        XCTAssertEqual(try TestClient(proxy.address).receiveUntilClose(), [], "the only backend is full")
        XCTAssertEqual(small.acceptedCount, 2)
        XCTAssertEqual(proxy.total(.noBackend), 1)
        _ = held
    }

    func testFullBackendSendsClientsToTheNextOne() throws {
        let small = try TestServer(.banner("small"))
        let big = try TestServer(.banner("big"))
        let proxy = try ProxyHarness(backends: [(small.address, weight: 1)]) { settings in
            settings.backends = [self.backend(small.address, weight: 100, maxConnections: 1), self.backend(big.address, weight: 1)]
        }
        defer { proxy.stop() }
        var clients: [TestClient] = []
        var answers: [String] = []
        for _ in 0..<6 {
            let client = try TestClient(proxy.address)
            answers.append(try client.receiveLine())
            clients.append(client)
        }
        XCTAssertEqual(answers.filter { $0 == "small" }.count, 1, "\(answers)")
        XCTAssertEqual(answers.filter { $0 == "big" }.count, 5, "\(answers)")
    }

    func testEachListenerHasItsOwnPool() throws {
        let web = try TestServer(.banner("web"))
        let db = try TestServer(.banner("db"))
        let proxy = try ProxyHarness(backends: [(web.address, weight: 1)]) { settings in
            settings.listen = nil
            settings.backends = nil
            var first = ListenerSpec(source: self.source)
            first.name = Setting("web", self.source)
            first.bind = Setting("127.0.0.1:0", self.source)
            first.backends = [self.backend(web.address)]
            var second = ListenerSpec(source: self.source)
            second.name = Setting("db", self.source)
            second.bind = Setting("127.0.0.1:0", self.source)
            second.balance = Setting("least-conn", self.source)
            second.backends = [self.backend(db.address)]
            settings.listeners = [first, second]
        }
        defer { proxy.stop() }
        let addresses = proxy.proxy.listenAddresses
        XCTAssertEqual(addresses.count, 2)
        XCTAssertEqual(try TestClient(addresses[0]).receiveLine(), "web")
        XCTAssertEqual(try TestClient(addresses[1]).receiveLine(), "db")
        XCTAssertEqual(proxy.proxy.plan.pools.map(\.algorithm), [.powerOfTwoChoices, .leastConnections])
    }

    func testIPv6ListenerAndBackend() throws {
        let backend = try TestServer(.banner("six"), host: "::1")
        let proxy = try ProxyHarness(backends: [(backend.address, weight: 1)]) { settings in
            settings.listen = [Setting("[::1]:0", self.source)]
        }
        defer { proxy.stop() }
        XCTAssertEqual(proxy.address.family, AF_INET6)
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "six")
    }

    func testHostNameBackendIsResolved() throws {
        let backend = try TestServer(.banner("named"))
        let proxy = try ProxyHarness(backends: [(backend.address, weight: 1)]) { settings in
            settings.backends = [BackendSpec(host: Setting("localhost", self.source), port: Setting(Int(backend.port), self.source),
                                             source: self.source)]
        }
        defer { proxy.stop() }
        // Every address of the name is a backend of its own, named after it (this machine's hosts file gives
        // localhost 127.0.0.1 and maybe ::1).
        let member = try XCTUnwrap(proxy.pool.members.first { $0.address == backend.address })
        XCTAssertEqual(member.name, "localhost:\(backend.port) (\(backend.address))")
        XCTAssertEqual(member.origin, "localhost")
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "named")
    }

    func testProxyProtocolHeadersCarryTheClientAddress() throws {
        for version in ["v1", "v2"] {
            let backend = try TestServer(.proxyProtocol)
            let proxy = try ProxyHarness(backend) { settings in settings.sendProxy = Setting(version, self.source) }
            defer { proxy.stop() }
            let client = try TestClient(proxy.address, from: SocketAddress(numericHost: "127.0.0.9", port: 0)!)
            let clientPort = Socket.localAddress(of: client.fd)!.port
            // The header goes first even when the client speaks first.
            try client.send("after the header\n")
            XCTAssertEqual(try client.receiveLine(), "\(version) 127.0.0.9:\(clientPort) -> 127.0.0.1:\(proxy.address.port)")
            XCTAssertEqual(try client.receiveLine(), "after the header")
        }
    }

    func testProxyProtocolOverIPv6() throws {
        let backend = try TestServer(.proxyProtocol)
        let proxy = try ProxyHarness(backend) { settings in
            settings.listen = [Setting("[::1]:0", self.source)]
            settings.sendProxy = Setting("v2", self.source)
        }
        defer { proxy.stop() }
        let client = try TestClient(proxy.address)
        let clientPort = Socket.localAddress(of: client.fd)!.port
        XCTAssertEqual(try client.receiveLine(), "v2 0:0:0:0:0:0:0:1:\(clientPort) -> 0:0:0:0:0:0:0:1:\(proxy.address.port)")
    }

    /// PROXY v1 from an IPv6 client: the text header's TCP6 form, byte for byte as the backend reads it.
    func testProxyProtocolV1OverIPv6() throws {
        let listener = try Socket.listen(on: SocketAddress(numericHost: "127.0.0.1", port: 0)!, backlog: 8)
        defer { Glibc.close(listener) }
        let proxy = try ProxyHarness(backends: [(Socket.localAddress(of: listener)!, weight: 1)]) { settings in
            settings.listen = [Setting("[::1]:0", self.source)]
            settings.sendProxy = Setting("v1", self.source)
        }
        defer { proxy.stop() }
        let client = try TestClient(proxy.address)
        let clientPort = Socket.localAddress(of: client.fd)!.port
        try client.send("payload")
        var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&ready, 1, 5000), 1, "the proxy connects to the backend")
        let backendSide = curing_accept4(listener, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        XCTAssertGreaterThanOrEqual(backendSide, 0)
        defer { Glibc.close(backendSide) }
        var limit = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(backendSide, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let expected = Array("PROXY TCP6 ::1 ::1 \(clientPort) \(proxy.address.port)\r\npayload".utf8)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while received.count < expected.count {
            let count = chunk.withUnsafeMutableBytes { recv(backendSide, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received += chunk[0..<count]
        }
        XCTAssertEqual(String(decoding: received, as: UTF8.self), String(decoding: expected, as: UTF8.self))
    }

    func testNginxReadsOurProxyProtocolHeader() throws {
        let port = try deadAddress().port
        let nginx = try StreamNginx(servers: """
            server {
                listen 127.0.0.1:\(port) proxy_protocol;
                return "nginx saw $proxy_protocol_addr:$proxy_protocol_port\\n";
            }
            """)
        defer { nginx.stop() }
        let backend = SocketAddress(numericHost: "127.0.0.1", port: port)!
        XCTAssertTrue(eventually(5) { (try? TestClient(backend)) != nil }, "nginx did not start")
        for version in ["v1", "v2"] {
            let proxy = try ProxyHarness(backends: [(backend, weight: 1)]) { settings in settings.sendProxy = Setting(version, self.source) }
            defer { proxy.stop() }
            let client = try TestClient(proxy.address, from: SocketAddress(numericHost: "127.0.0.42", port: 0)!)
            let clientPort = Socket.localAddress(of: client.fd)!.port
            XCTAssertEqual(try client.receiveLine(), "nginx saw 127.0.0.42:\(clientPort)", version)
        }
    }

    /// The figures for the closing note as much as a check: 10 000 connections over three backends weighted
    /// 1:2:3 under each algorithm, clients from 10 000 different addresses (so source-hash spreads).
    func testTenThousandConnectionsFollowTheWeightsUnderEveryAlgorithm() throws {
        var report: [String] = []
        for algorithm in BalanceAlgorithm.allCases {
            let servers = try (1...3).map { try TestServer(.banner("b\($0)")) }
            let proxy = try ProxyHarness(backends: zip(servers, [1, 2, 3]).map { ($0.address, weight: $1) }) { settings in
                settings.balance = Setting(algorithm.rawValue, self.source)
            }
            defer { proxy.stop() }
            for index in 0..<10_000 {
                let from = SocketAddress(numericHost: "127.1.\(index / 250).\(index % 250 + 1)", port: 0)!
                _ = try TestClient(proxy.address, from: from).receiveLine()
            }
            let counts = (0..<3).map { proxy.backendCount(.total, $0) }
            report.append("\(algorithm.rawValue): \(counts.map(String.init).joined(separator: " / "))")
            XCTAssertEqual(counts.reduce(0, +), 10_000)
            switch algorithm {
            case .leastConnections, .powerOfTwoChoices:
                // These follow live load, and a closed client's connection lingers for a moment while the
                // next one is placed: how long depends on the machine's load (measured on the 2-CPU VM, quiet:
                // least-conn 2283 / 3583 / 4134, p2c 2074 / 3491 / 4435; with six builds beside it: least-conn
                // 2757 / 2991 / 4252, p2c 1488 / 3946 / 4566, and once 2023 / 4101 / 3876). Only the lightest
                // backend's place holds here; the weights are checked exactly with held connections
                // (testLiveLoadAlgorithmsSpreadHeldConnectionsByWeight).
                XCTAssertTrue(counts[0] < counts[1] && counts[0] < counts[2], "\(algorithm): \(counts)")
            default:
                // Round robin is exact per worker; weighted random draws; source-hash's arcs vary with the ports.
                let tolerance = [.roundRobin: 0.005, .sourceHash: 0.06][algorithm] ?? 0.02
                for (index, weight) in [1, 2, 3].enumerated() {
                    XCTAssertEqual(Double(counts[index]) / 10_000, Double(weight) / 6, accuracy: tolerance, "\(algorithm): \(counts)")
                }
            }
        }
        print("10 000 connections over backends weighted 1:2:3 —\n  " + report.joined(separator: "\n  "))
    }

    /// Least-conn and p2c place by live load: with every connection held open, least-conn fills the backends
    /// exactly by weight, and p2c (two random picks, the less loaded per weight wins) close to it. Held
    /// connections make this independent of how fast the machine closes them.
    func testLiveLoadAlgorithmsSpreadHeldConnectionsByWeight() throws {
        for algorithm in [BalanceAlgorithm.leastConnections, .powerOfTwoChoices] {
            let servers = try (1...3).map { try TestServer(.banner("b\($0)")) }
            let proxy = try ProxyHarness(backends: zip(servers, [1, 2, 3]).map { ($0.address, weight: $1) }) { settings in
                settings.balance = Setting(algorithm.rawValue, self.source)
            }
            defer { proxy.stop() }
            var held: [TestClient] = []
            for _ in 0..<600 {
                let client = try TestClient(proxy.address)
                _ = try client.receiveLine()
                held.append(client)
            }
            let active = (0..<3).map { proxy.backendCount(.active, $0) }
            XCTAssertEqual(active.reduce(0, +), 600)
            // Each pick sees every earlier connection (each is answered before the next starts), so the split is
            // exact but for ties: measured 100 / 200 / 300 under both in three runs. p2c may meet two backends
            // that are both ahead of their share, so it gets a little more room.
            let tolerance = algorithm == .leastConnections ? 1 : 3
            for (index, weight) in [1, 2, 3].enumerated() {
                XCTAssertEqual(active[index], 100 * weight, accuracy: tolerance, "\(algorithm): \(active)")
            }
            print("600 held connections, weights 1:2:3, \(algorithm.rawValue): \(active)")
        }
    }
}
