import Glibc
@testable import RingProxy
import XCTest

/// The control plane under reloads: health state that outlives the policy that set it, addresses the kernel
/// reads after a plan is replaced, and listening sockets of plans that come and go.
final class ControlPlaneHardeningTests: XCTestCase {
    private let source = SettingSource(key: "test")

    func testReloadTurningChecksOffLetsABackendDownByCheckServeAgain() throws {
        let only = try TestServer(.banner("only"))
        let port = only.port
        let proxy = try ProxyHarness(only) { settings in
            settings.health.interval = Setting(.milliseconds(100), self.source)
            settings.health.timeout = Setting(.milliseconds(100), self.source)
            settings.health.fall = Setting(1, self.source)
            settings.health.rise = Setting(1, self.source)
            settings.health.failTimeout = Setting(.milliseconds(500), self.source)
        }
        defer { proxy.stop() }
        let health = proxy.table.health(of: proxy.pool.members[0].id)
        only.stop()
        XCTAssertTrue(eventually(3) { health.state == .down }, "a failed check marks it down")
        try proxy.reload { settings in settings.health = HealthSpec() }
        XCTAssertNil(proxy.proxy.config.health.checks, "the reload turned checks off")
        let back = try TestServer(.banner("back"), port: port)
        let restarted = monotonicMilliseconds()
        XCTAssertTrue(eventually(2) { (try? TestClient(proxy.address).receiveLine()) == "back" },
                      "passive health's trial brings the backend back once the check's fail_timeout has passed")
        XCTAssertEqual(health.state, .up)
        print("reload turning checks off: served again \(monotonicMilliseconds() - restarted) ms after the backend restarted")
        _ = back
    }

    // MARK: - Listening sockets of every plan

    private func listener(_ name: String, _ server: TestServer, bind: String = "127.0.0.1:0") -> ListenerSpec {
        var listener = ListenerSpec(source: source)
        listener.name = Setting(name, source)
        listener.bind = Setting(bind, source)
        listener.backends = [BackendSpec(host: Setting(server.address.host, source), port: Setting(Int(server.port), source), source: source)]
        return listener
    }

    private func reload(_ proxy: ProxyHarness, listeners: [ListenerSpec]) throws {
        try proxy.reload { settings in
            settings.listen = nil
            settings.backends = nil
            settings.listeners = listeners
        }
    }

    /// True when a connect to `address` is refused (no socket listens there any more).
    private func refuses(_ address: SocketAddress) -> Bool {
        do {
            _ = try TestClient(address, timeout: 1)
            return false
        } catch {
            return "\(error)".contains("refused")
        }
    }

    func testRapidReloadsLeaveEveryPortOfTheFinalPlanServingAndRemovedPortsRefused() throws {
        let server = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(server) { settings in settings.threads = Setting(2, self.source) }
        defer { proxy.stop() }
        var seen = Set(proxy.proxy.listenAddresses)
        // Each reload keeps "stay", removes the previous round's listener and adds two (one removed at once by
        // the next reload, one kept for a round).
        for round in 0..<30 {
            try reload(proxy, listeners: [
                listener("stay", server), listener("round\(round)", server), listener("flash\(round)", server),
            ])
            seen.formUnion(proxy.proxy.listenAddresses)
            try reload(proxy, listeners: [listener("stay", server), listener("round\(round)", server)])
            seen.formUnion(proxy.proxy.listenAddresses)
        }
        let final = proxy.proxy.listenAddresses
        XCTAssertEqual(proxy.proxy.plan.generation, 61)
        for address in final {
            for index in 0..<200 {
                let client = try TestClient(address, timeout: 2)
                XCTAssertEqual(try client.receiveLine(), "b", "connection \(index) to \(address)")
            }
        }
        let removed = seen.subtracting(final)
        XCTAssertGreaterThan(removed.count, 50, "ports the kernel handed out again are left out")
        let accepting = removed.filter { !refuses($0) }
        XCTAssertEqual(accepting, [], "ports of removed listeners still take connections")
        print("rapid reloads: 60 reloads, \(final.count) final ports x 200 connections served, \(removed.count - accepting.count) of \(removed.count) removed ports refused")
    }

    func testReloadWhileDrainingClosesTheSocketsItBinds() throws {
        let server = try TestServer(.banner("b"))
        let proxy = try ProxyHarness(server) { settings in settings.threads = Setting(2, self.source) }
        defer { proxy.stop() }
        // One worker keeps a connection (and drains); the other has none and exits.
        let held = try TestClient(proxy.address)
        XCTAssertEqual(try held.receiveLine(), "b")
        proxy.proxy.drain()
        XCTAssertTrue(eventually(3) { proxy.proxy.runningWorkers == 1 }, "the worker with no connection exits")
        let started = monotonicMilliseconds()
        try reload(proxy, listeners: [listener("default", server, bind: "\(proxy.address)"), listener("late", server)])
        let elapsed = monotonicMilliseconds() - started
        let late = proxy.proxy.listenAddresses[1]
        XCTAssertTrue(refuses(late), "a listener added while draining is closed by both workers, the exited one too")
        XCTAssertLessThan(elapsed, 1000, "the reload does not wait for the worker that exited")
        try held.send("still\n")
        XCTAssertEqual(try held.receiveLine(), "still")
        print("reload while draining: \(elapsed) ms")
    }

    func testAWorkerThatMissesAPlanStillClosesTheListenerThatPlanAddedAndTheNextRemoved() throws {
        let server = try TestServer(.banner("b"))
        let gate = LogGate(holdingOn: "no backend reachable")
        var settings = ProxySettings()
        settings.listeners = [listener("main", server)]
        var toDead = listener("dead", server)
        let dead = try deadAddress()
        toDead.backends = [BackendSpec(host: Setting(dead.host, source), port: Setting(Int(dead.port), source), source: source)]
        settings.listeners?.append(toDead)
        settings.threads = Setting(2, source)
        settings.pin = Setting(false, source)
        settings.retries = Setting(0, source)
        let proxy = Proxy(config: try ProxyConfig.validate(settings), logger: gate.logger)
        try proxy.start()
        defer { gate.open(); proxy.stop() }
        // The worker that takes this client logs that its backend is unreachable, and is held there.
        let client = try TestClient(proxy.listenAddresses[1])
        XCTAssertTrue(eventually(3) { gate.isHolding })
        var added = settings
        added.listeners?.append(listener("late", server))
        try proxy.reload(to: ProxyConfig.validate(added))  // the held worker does not switch (5 s)
        let late = proxy.listenAddresses[2]
        try proxy.reload(to: ProxyConfig.validate(settings))  // nor here: it lags two plans behind
        gate.open()
        XCTAssertTrue(eventually(3) { self.refuses(late) }, "the lagging worker adopted the plan it missed, then closed its socket")
        XCTAssertEqual(try TestClient(proxy.listenAddresses[0]).receiveLine(), "b")
        _ = client
    }
}
