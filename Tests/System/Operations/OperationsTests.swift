import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// Running it in production: reloads under load, drains, restarts beside a second instance, metrics,
/// health endpoint and logs.
final class OperationsTests: XCTestCase {
    private let source = SettingSource(key: "test")

    private func backend(_ server: TestServer, weight: Int = 1) -> BackendSpec {
        BackendSpec(host: Setting(server.address.host, source), port: Setting(Int(server.port), source),
                    weight: Setting(weight, source), source: source)
    }

    // MARK: - Reload

    func testReloadUnderLoadChangesWeightsAddsAndRemovesBackendsWithoutAFailure() throws {
        let removed = try TestServer(.banner("removed")), kept = try TestServer(.banner("kept"))
        let added = try TestServer(.banner("added"))
        let proxy = try ProxyHarness(removed, kept)
        defer { proxy.stop() }
        // A connection open across the reload keeps its backend.
        var longLived: TestClient?
        for _ in 0..<64 where longLived == nil {
            let client = try TestClient(proxy.address)
            if try client.receiveLine() == "removed" { longLived = client }
        }
        let load = ConnectionLoop(proxy.address)
        XCTAssertTrue(eventually(10) { load.attempts >= 200 })
        let outcome = try proxy.reload { settings in
            settings.backends = [self.backend(kept, weight: 2), self.backend(added, weight: 1)]
            settings.balance = Setting("round-robin", self.source)
        }
        XCTAssertEqual(outcome.generation, 2)
        XCTAssertTrue(outcome.restartOnly.isEmpty)
        // Every worker has switched when reload returns; the loop's attempt in flight then (it may have picked
        // the removed backend just before) is over once two more have started.
        let attemptsAtReload = load.attempts
        XCTAssertTrue(eventually(5) { load.attempts >= attemptsAtReload + 2 })
        let removedAfterReload = removed.acceptedCount
        XCTAssertTrue(eventually(10) { (load.answers["added"] ?? 0) >= 100 })
        let result = load.stop()
        XCTAssertEqual(result.failures, [], "\(result.attempts) connections attempted")
        XCTAssertEqual(removed.acceptedCount, removedAfterReload, "no new connection reached the removed backend")
        XCTAssertEqual(proxy.proxy.plan.pools[0].algorithm, .roundRobin)
        XCTAssertEqual(proxy.proxy.processStats.reloads, 1)
        let client = try XCTUnwrap(longLived)
        try client.send("still here\n")
        XCTAssertEqual(try client.receiveLine(), "still here")
        print("reload under load: \(result.attempts) connections attempted, \(result.failures.count) failed, answers \(result.answers)")
    }

    func testReloadKeepsRestartOnlySettingsAndAppliesTheRest() throws {
        let backend = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let outcome = try proxy.reload { settings in
            settings.threads = Setting(3, self.source)
            settings.zerocopy = Setting("on", self.source)
            settings.retries = Setting(5, self.source)
        }
        let kept = outcome.restartOnly.map(\.name)
        XCTAssertTrue(kept.contains("threads") && kept.contains("zerocopy") && !kept.contains("retries"), "\(kept)")
        XCTAssertEqual(outcome.applied, [SettingChange(name: "retries", running: "2", requested: "5")])
        XCTAssertEqual(proxy.proxy.config.threads, 2)
        XCTAssertEqual(proxy.proxy.config.zerocopy, .off, "the workers still send without zero-copy")
        XCTAssertEqual(proxy.proxy.config.retries, 5)
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "b")
    }

    func testReloadAddsAListenerAndRemovesAnother() throws {
        let first = try TestServer(.banner("first")), second = try TestServer(.banner("second"))
        let proxy = try ProxyHarness(first)
        defer { proxy.stop() }
        let oldAddress = proxy.address
        try proxy.reload { settings in
            settings.listen = nil
            settings.backends = nil
            var listener = ListenerSpec(source: self.source)
            listener.name = Setting("second", self.source)
            listener.bind = Setting("127.0.0.1:0", self.source)
            listener.backends = [self.backend(second)]
            settings.listeners = [listener]
        }
        let newAddress = proxy.proxy.listenAddresses[0]
        XCTAssertNotEqual(newAddress, oldAddress)
        XCTAssertEqual(try TestClient(newAddress).receiveLine(), "second")
        XCTAssertTrue(eventually { (try? TestClient(oldAddress)) == nil }, "the removed listener stops accepting")
    }

    func testReloadThatCannotBindChangesNothing() throws {
        let backend = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(holder) }
        XCTAssertEqual(SocketAddress(numericHost: "127.0.0.1", port: 0)!.withSockaddr { bind(holder, $0, $1) }, 0)
        XCTAssertEqual(Glibc.listen(holder, 1), 0)
        let taken = Socket.localAddress(of: holder)!
        XCTAssertThrowsError(try proxy.reload { settings in settings.listen = [Setting("\(taken)", self.source)] }) { error in
            XCTAssertTrue("\(error)".contains("address already in use"), "\(error)")
        }
        XCTAssertEqual(proxy.proxy.plan.generation, 1)
        XCTAssertEqual(proxy.proxy.processStats.reloadFailures, 1)
        XCTAssertEqual(try TestClient(proxy.address).receiveLine(), "b")
    }

    func testBadConfigurationFileOnSIGHUPKeepsTheRunningOne() throws {
        let first = try TestServer(.banner("first")), second = try TestServer(.banner("second"))
        let ports = try deadAddresses(2).map(\.port)
        let (port, adminPort) = (ports[0], ports[1])
        let file = try temporaryFile(flatConfig(port: port, admin: adminPort, backend: first))
        let running = try BuiltBinary("ringproxy").start(["--config", file, "--threads", "2", "--no-pin"])
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        let admin = SocketAddress(numericHost: "127.0.0.1", port: adminPort)!
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 200 })
        XCTAssertEqual(try TestClient(address).receiveLine(), "first")

        try "port = \"eighty\"\n[[backends]]\nhost = \"127.0.0.1\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        running.signal(SIGHUP)
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_reload_failures_total") == 1 })
        XCTAssertEqual(try TestClient(address).receiveLine(), "first", "the running configuration stays")

        try ("retries = 4\nring_size = 2048\n" + flatConfig(port: port, admin: adminPort, backend: second))
            .write(toFile: file, atomically: true, encoding: .utf8)
        running.signal(SIGHUP)
        XCTAssertTrue(eventually(5) { (try? TestClient(address).receiveLine()) == "second" })
        // Counted once the workers have switched, so a client may see the new backend a moment before.
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_reloads_total") == 1 })

        running.signal(SIGTERM)
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("reload failed: the configuration has errors; the running one stays"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("config error: \(file):1: port: expected an integer, got a string (\"eighty\")"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("config error: \(file):2: backends[0]: missing port"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("configuration reloaded"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("retries 2 -> 4"), "the reload line names what it changed: \(outcome.stderr)")
        XCTAssertTrue(outcome.stderr.contains("ring_size changed: only a restart applies it"), outcome.stderr)
    }

    /// SIGHUP applies send_proxy, idle_timeout and active health checks to new connections; a changed
    /// restart-only setting (threads) is logged as such and keeps its running value.
    func testSIGHUPReloadsSendProxyIdleTimeoutAndHealthAndWarnsAboutRestartOnlySettings() throws {
        let backend = try TestServer(.proxyProtocol)
        let ports = try deadAddresses(2).map(\.port)
        let (port, adminPort) = (ports[0], ports[1])
        let config = { (extra: String) in
            """
            host = "127.0.0.1"
            port = \(port)
            admin = \(adminPort)
            drain_timeout = "200ms"
            \(extra)
            [[backends]]
            host = "127.0.0.1"
            port = \(backend.port)
            """
        }
        let file = try temporaryFile(config("threads = 1"))
        defer { unlink(file) }
        let running = try BuiltBinary("ringproxy").start(["--config", file, "--no-pin"])
        defer {
            running.signal(SIGKILL)
            _ = running.finish()
        }
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        let admin = SocketAddress(numericHost: "127.0.0.1", port: adminPort)!
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 200 })
        // Before: no PROXY header, no idle timeout to speak of, no active checks.
        let before = try TestClient(address)
        try before.send("hello\n")
        XCTAssertTrue(try before.receiveLine().hasPrefix("invalid:"), "no header is sent yet")
        let acceptedBefore = backend.acceptedCount
        XCTAssertEqual(before.pollState(milliseconds: 700), Int.min, "not closed for idling")
        XCTAssertEqual(backend.acceptedCount, acceptedBefore, "no health checks yet")

        try config("""
            threads = 2
            send_proxy = "v1"
            idle_timeout = "300ms"
            [health]
            interval = "100ms"
            timeout = "100ms"
            """).write(toFile: file, atomically: true, encoding: .utf8)
        running.signal(SIGHUP)
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_reloads_total") == 1 })
        let after = try TestClient(address)
        let clientPort = Socket.localAddress(of: after.fd)!.port
        XCTAssertEqual(try after.receiveLine(), "v1 127.0.0.1:\(clientPort) -> 127.0.0.1:\(port)", "send_proxy applies")
        let idle = after.awaitEnd(within: 3)
        print("after the reload: an idle client closed after \(idle.milliseconds) ms (idle_timeout 300 ms)")
        XCTAssertTrue(idle.end.isClosed, "idle_timeout applies")
        XCTAssertLessThan(idle.milliseconds, 1000)
        let acceptedAfter = backend.acceptedCount
        XCTAssertTrue(eventually(3) { backend.acceptedCount >= acceptedAfter + 3 }, "health checks every 100 ms reach the backend")
        let metrics = try HTTPGet(admin, "/metrics")
        XCTAssertNotNil(metrics.metric("ringproxy_worker_accepted_total{worker=\"0\"}"))
        XCTAssertNil(metrics.metric("ringproxy_worker_accepted_total{worker=\"1\"}"), "threads stays 1 until a restart")
        running.signal(SIGTERM)
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("threads changed: only a restart applies it"), outcome.stderr)
        XCTAssertFalse(outcome.stderr.contains("send_proxy changed: only a restart"), outcome.stderr)
    }

    /// A reload's connect timeout applies to the next connect: against a black-holed backend, a client waits
    /// the new 200 ms, not the 3 s it started with.
    func testReloadedConnectTimeoutAppliesToNewConnects() throws {
        let hole = try BlackHole()
        let proxy = try ProxyHarness(backends: [(hole.address, weight: 1)]) { settings in
            settings.connectTimeout = Setting(.seconds(3), self.source)
            settings.retries = Setting(0, self.source)
        }
        defer { proxy.stop() }
        try proxy.reload { settings in settings.connectTimeout = Setting(.milliseconds(200), self.source) }
        let client = try TestClient(proxy.address)
        let end = client.awaitEnd(within: 5)
        print("reloaded connect timeout 200 ms: the client saw \(end.end) after \(end.milliseconds) ms")
        XCTAssertTrue(end.end.isClosed)
        XCTAssertGreaterThanOrEqual(end.milliseconds, 180)
        XCTAssertLessThan(end.milliseconds, 700, "the new 200 ms, not the old 3 s")
    }

    private func flatConfig(port: UInt16, admin: UInt16, backend: TestServer) -> String {
        """
        host = "127.0.0.1"
        port = \(port)
        admin = \(admin)
        [[backends]]
        host = "127.0.0.1"
        port = \(backend.port)
        """
    }

    // MARK: - Drain and restart

    func testDrainLetsAnInFlightTransferFinishAndHealthzTurnsUnavailable() throws {
        let size = 10 << 20
        let backend = try TestServer(.source(bytes: size, seed: 99))
        let ports = try deadAddresses(2).map(\.port)
        let (port, adminPort) = (ports[0], ports[1])
        let running = try BuiltBinary("ringproxy").start([
            "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend.port)", "--threads", "2", "--no-pin",
            "--admin", "\(adminPort)", "--drain-timeout", "20s",
        ])
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        let admin = SocketAddress(numericHost: "127.0.0.1", port: adminPort)!
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 200 })
        var client: TestClient? = try TestClient(address, timeout: 30)
        var hash = StreamHash()
        hash.add(try client!.receive(exactly: 65536))
        running.signal(SIGTERM)
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 503 })
        XCTAssertEqual(try HTTPGet(admin, "/healthz").body, "draining\n")
        XCTAssertTrue(eventually(5) { (try? TestClient(address)) == nil }, "a draining proxy accepts no new connections")
        // The drain waits for the transfer: the proxy runs on while the client has read only part of it (the
        // rest sits in socket buffers and the backend, which the client's pace holds back).
        XCTAssertTrue(running.isRunning, "the drain waits while the transfer is unfinished")
        while hash.count < size / 2 { hash.add(try client!.receive(exactly: min(1 << 20, size / 2 - hash.count))) }
        XCTAssertTrue(running.isRunning, "still draining half way")
        XCTAssertEqual(try HTTPGet(admin, "/healthz").status, 503)
        while hash.count < size { hash.add(try client!.receive(exactly: min(1 << 20, size - hash.count))) }
        XCTAssertEqual(try client!.receiveUntilClose(), [])
        // The backend finished; the client closes its side, and the connection is done.
        client = nil
        var expected = StreamHash()
        var stream = PatternStream(seed: 99)
        expected.add(stream.next(size))
        XCTAssertEqual(hash.digest, expected.digest)
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("stopped: every connection finished"), outcome.stderr)
    }

    /// Clients that wait in the listen backlog when the drain begins (the proxy is at --max-connections) are
    /// accepted and served by the drain, not reset when the listener closes (README: "clients already in their
    /// backlogs are accepted").
    ///
    /// Before the drain kept a full table's listener open for its backlog this failed every run: the backlog was
    /// accepted with the connection table full, so each client was closed at once.
    func testDrainServesTheClientsWaitingInTheBacklog() throws {
        let backend = try TestServer(.echo)
        let port = try deadAddress().port
        let running = try BuiltBinary("ringproxy").start([
            "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend.port)", "--threads", "1", "--no-pin",
            "--max-connections", "2", "--drain-timeout", "20s",
        ])
        defer {
            running.signal(SIGKILL)
            _ = running.finish()
        }
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        XCTAssertTrue(eventually(5) { (try? TestClient(address)) != nil })
        XCTAssertTrue(eventually(5) { backend.openCount == 0 })
        var holders = try (0..<2).map { _ in try TestClient(address) }
        for holder in holders {
            try holder.send("held\n")
            XCTAssertEqual(try holder.receiveLine(), "held")
        }
        // The limit is reached: these complete their handshakes in the kernel and wait in the backlog.
        let waiting = try (0..<3).map { _ in try TestClient(address) }
        for (index, client) in waiting.enumerated() { try client.send("waiting \(index)\n") }
        XCTAssertEqual(waiting[0].pollState(milliseconds: 300), Int.min, "not served while the proxy is full")
        XCTAssertEqual(backend.acceptedCount, 3, "the readiness probe and the two holders only")
        running.signal(SIGTERM)
        XCTAssertTrue(eventually(3) { running.stderrSoFar.contains("draining: accepting no new connections") })
        holders.removeAll()
        for (index, client) in waiting.enumerated() {
            XCTAssertEqual(try client.receiveLine(), "waiting \(index)", "a client from the backlog is served by the drain")
            client.shutdownWrite()
            XCTAssertEqual(client.awaitEnd(within: 5).end, .endOfStream)
        }
        XCTAssertTrue(eventually(5) { !running.isRunning }, "the drain ends once they are done")
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("stopped: every connection finished"), outcome.stderr)
        XCTAssertEqual(backend.acceptedCount, 6)
    }

    /// The proxy binary in front of an echo backend, with one client connected through it.
    private func binaryWithAClient(_ flags: [String]) throws -> (BuiltBinary.Running, TestClient, TestServer) {
        let backend = try TestServer(.echo)
        let port = try deadAddress().port
        let running = try BuiltBinary("ringproxy").start([
            "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend.port)", "--threads", "1", "--no-pin",
        ] + flags)
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        var client: TestClient?
        XCTAssertTrue(eventually(5) { client = try? TestClient(address); return client != nil })
        let connected = try XCTUnwrap(client)
        try connected.send("hi\n")
        XCTAssertEqual(try connected.receiveLine(), "hi")
        return (running, connected, backend)
    }

    func testDrainTimeoutClosesWhatIsStillOpen() throws {
        let (running, client, _) = try binaryWithAClient(["--drain-timeout", "300ms"])
        let signalled = monotonicMilliseconds()
        running.signal(SIGTERM)
        XCTAssertTrue(eventually(2) { running.stderrSoFar.contains("draining: accepting no new connections") })
        // Until the timeout, the open connection still works.
        try client.send("while draining\n")
        XCTAssertEqual(try client.receiveLine(), "while draining")
        let end = client.awaitEnd(within: 5)
        let closedAfter = monotonicMilliseconds() - signalled
        let outcome = running.finish()
        let exitedAfter = monotonicMilliseconds() - signalled
        print("drain timeout 300 ms: the open client saw \(end.end) \(closedAfter) ms after SIGTERM; the proxy exited after \(exitedAfter) ms")
        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("drain timeout: closing the connections still open"), outcome.stderr)
        XCTAssertEqual(end.end, .endOfStream, "the proxy closed it")
        // The lifecycle loop wakes every 100 ms: closed from 300 ms after the signal, within 300 + 100 + slack.
        XCTAssertGreaterThanOrEqual(closedAfter, 300, "not before the drain timeout")
        XCTAssertLessThan(closedAfter, 700, "at the drain timeout, not later")
        XCTAssertLessThan(exitedAfter, 1000)
    }

    func testSecondSignalStopsAtOnce() throws {
        let (running, client, _) = try binaryWithAClient([])
        running.signal(SIGTERM)
        XCTAssertTrue(eventually(2) { running.stderrSoFar.contains("draining: accepting no new connections") })
        let signalled = monotonicMilliseconds()
        running.signal(SIGINT)
        let outcome = running.finish()
        let exitedAfter = monotonicMilliseconds() - signalled
        print("second signal: exited \(exitedAfter) ms after it (the drain timeout is 30 s)")
        XCTAssertLessThan(exitedAfter, 1000, "at once, not after the 30 s drain timeout")
        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("SIGINT again: closing every connection now"), outcome.stderr)
        XCTAssertEqual(try client.receiveUntilClose(), [])
    }

    /// The bare-metal restart: a second instance on the same address (SO_REUSEPORT) serves while the first
    /// drains. Zero loss needs `net.ipv4.tcp_migrate_req=1`, the documented procedure: without it, a client
    /// whose handshake is under way on the old listener when it closes is reset (about one in a thousand here).
    func testASecondInstanceServesWhileTheFirstDrains() throws {
        let sysctl = "/proc/sys/net/ipv4/tcp_migrate_req"
        guard let original = try? String(contentsOfFile: sysctl, encoding: .utf8),
              (try? "1".write(toFile: sysctl, atomically: false, encoding: .utf8)) != nil else {
            throw XCTSkip("needs net.ipv4.tcp_migrate_req=1 (root, kernel 5.14+), the zero-loss restart procedure")
        }
        defer { try? original.write(toFile: sysctl, atomically: false, encoding: .utf8) }
        let backend = try TestServer(.banner("backend"))
        let ports = try deadAddresses(2).map(\.port)
        let (port, secondAdmin) = (ports[0], ports[1])
        let arguments = ["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend.port)", "--threads", "2", "--no-pin"]
        let first = try BuiltBinary("ringproxy").start(arguments)
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        XCTAssertTrue(eventually(5) { (try? TestClient(address)) != nil })
        let load = ConnectionLoop(address)
        XCTAssertTrue(eventually(10) { load.attempts >= 100 })
        let second = try BuiltBinary("ringproxy").start(arguments + ["--admin", "\(secondAdmin)"])
        XCTAssertTrue(eventually(5) { (try? HTTPGet(SocketAddress(numericHost: "127.0.0.1", port: secondAdmin)!, "/healthz"))?.status == 200 })
        let beforeStop = load.attempts
        first.signal(SIGTERM)
        XCTAssertEqual(first.finish().status, 0)
        XCTAssertTrue(eventually(10) { load.attempts >= beforeStop + 200 })
        let result = load.stop()
        second.signal(SIGTERM)
        XCTAssertEqual(second.finish().status, 0)
        XCTAssertEqual(result.failures, [], "\(result.attempts) connections attempted")
        print("restart beside a second instance: \(result.attempts) connections attempted, \(result.failures.count) failed")
    }

    // MARK: - Metrics, health and logs

    func testMetricsAgreeWithTheTrafficSent() throws {
        let backend = try TestServer(.echo)
        let proxy = try ProxyHarness(backend)
        defer { proxy.stop() }
        let admin = AdminServer(proxy: proxy.proxy, address: SocketAddress(numericHost: "127.0.0.1", port: 0)!)
        let adminAddress = try admin.start()
        defer { admin.stop() }
        for index in 0..<3 {
            let client = try TestClient(proxy.address)
            let payload = [UInt8](repeating: UInt8(index), count: 1000)
            try client.send(payload)
            XCTAssertEqual(try client.receive(exactly: 1000), payload)
        }
        XCTAssertTrue(eventually { proxy.total(.active) == 0 })
        let metrics = try HTTPGet(adminAddress, "/metrics")
        XCTAssertEqual(metrics.status, 200)
        let labels = "{listener=\"default\",backend=\"127.0.0.1:\(backend.port)\"}"
        XCTAssertEqual(metrics.metric("ringproxy_backend_connections_total\(labels)"), 3, metrics.body)
        XCTAssertEqual(metrics.metric("ringproxy_backend_bytes_to_backend_total\(labels)"), 3000)
        XCTAssertEqual(metrics.metric("ringproxy_backend_bytes_to_client_total\(labels)"), 3000)
        XCTAssertEqual(metrics.metric("ringproxy_backend_active_connections\(labels)"), 0)
        XCTAssertEqual(metrics.metric("ringproxy_backend_up\(labels)"), 1)
        XCTAssertEqual(metrics.metric("ringproxy_backend_connect_failures_total\(labels)"), 0)
        let accepted = (0..<2).compactMap { metrics.metric("ringproxy_worker_accepted_total{worker=\"\($0)\"}") }
        XCTAssertEqual(accepted.reduce(0, +), 3)
        XCTAssertNotNil(metrics.metric("ringproxy_worker_sqes_submitted_total{worker=\"0\"}"))
        XCTAssertNotNil(metrics.metric("ringproxy_worker_buffer_ring_empty_total{worker=\"0\"}"))
        XCTAssertEqual(metrics.metric("ringproxy_reloads_total"), 0)

        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let backends = try decoder.decode(BackendsDocument.self, from: Data(try HTTPGet(adminAddress, "/backends").body.utf8))
        XCTAssertEqual(backends.listeners[0].backends[0].total, 3)
        XCTAssertEqual(backends.listeners[0].backends[0].state, "up")

        XCTAssertEqual(try HTTPGet(adminAddress, "/healthz").status, 200)
        admin.setDraining()
        XCTAssertEqual(try HTTPGet(adminAddress, "/healthz").status, 503)
        XCTAssertEqual(try HTTPGet(adminAddress, "/metrics").metric("ringproxy_draining"), 1)
    }

    func testAccessLogReportEveryClosedConnectionAndJSONLines() throws {
        let backend = try TestServer(.echo)
        let port = try deadAddress().port
        let running = try BuiltBinary("ringproxy").start([
            "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend.port)", "--threads", "1", "--no-pin",
            "--access-log", "--report-interval", "100ms", "--log-format", "json",
        ])
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        var client: TestClient?
        XCTAssertTrue(eventually(5) { client = try? TestClient(address); return client != nil })
        try client?.send("twelve bytes")
        XCTAssertEqual(try client?.receive(exactly: 12), Array("twelve bytes".utf8))
        client = nil
        let logged = { (text: String) -> [[String: String]] in
            text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        }
        XCTAssertTrue(eventually(3) {
            let objects = logged(running.stderrSoFar)
            return objects.contains { $0["message"] == "connection closed" && $0["bytes_up"] == "12" }
                && objects.contains { $0["message"] == "report" && $0["active"] != nil }
        }, "the access-log line and a periodic report")
        running.signal(SIGTERM)
        let outcome = running.finish()
        let lines = outcome.stderr.split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        XCTAssertEqual(objects.count, lines.count, "every log line is a JSON object:\n\(outcome.stderr)")
        let closed = objects.filter { $0["message"] == "connection closed" }
        // The first connection is the readiness probe of `eventually`, closed without a byte.
        let access = try XCTUnwrap(closed.first { $0["bytes_up"] == "12" }, outcome.stderr)
        XCTAssertEqual(access["bytes_down"], "12")
        XCTAssertEqual(access["backend"], "default/127.0.0.1:\(backend.port)")
        XCTAssertEqual(access["reason"], "completed")
        XCTAssertTrue(access["client"]?.hasPrefix("127.0.0.1:") ?? false)
        XCTAssertTrue(objects.contains { $0["message"] == "report" && $0["active"] != nil }, "the periodic report")
    }
}
