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
}
