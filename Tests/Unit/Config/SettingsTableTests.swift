@testable import RingProxy
import XCTest

/// `ProxyConfig.settings`, the one table behind the reload's restart-only warnings, its log line and
/// `--check`'s summary: its names are the file's keys, and a reload keeps the running value of every
/// restart-only setting while it applies the others.
final class SettingsTableTests: XCTestCase {
    private func config(_ text: String) throws -> ProxyConfig {
        try ProxyConfig.validate(ConfigFile.parse(text, file: "test.toml"), file: "test.toml", allowedCPUs: [0, 1, 2, 3])
    }

    /// A file that sets every setting of the table, each to a different value than `second`.
    private func first(token: String) -> String {
        """
        host = "127.0.0.1"
        port = 8080
        threads = 2
        pin = true
        cpus = "0-1"
        ring_size = 1024
        buffer_size = "16KiB"
        buffers = 512
        sqpoll = false
        zerocopy = "off"
        connect_timeout = "3s"
        retries = 1
        idle_timeout = "1h"
        max_connections = 1000
        admin = "127.0.0.1:9901"
        admin_token_file = "\(token)"
        drain_timeout = "30s"
        report_interval = "10s"
        log_level = "info"
        log_format = "text"
        access_log = false
        resolvers = ["127.0.0.1:53"]
        dns_min_ttl = "1s"
        dns_max_ttl = "300s"
        dns_hold = "30s"
        dns_start = "fail"
        [[backends]]
        host = "127.0.0.1"
        port = 9000
        """
    }

    private func second(token: String) -> String {
        """
        host = "127.0.0.1"
        port = 8080
        threads = 3
        pin = false
        cpus = "2-3"
        ring_size = 2048
        buffer_size = "32KiB"
        buffers = 1024
        sqpoll = true
        zerocopy = "on"
        connect_timeout = "500ms"
        retries = 3
        idle_timeout = 0
        max_connections = 2000
        admin = "127.0.0.1:9902"
        admin_token_file = "\(token)"
        drain_timeout = "5s"
        report_interval = 0
        log_level = "debug"
        log_format = "json"
        access_log = true
        resolvers = ["127.0.0.1:5353", "[::1]:53"]
        dns_min_ttl = "2s"
        dns_max_ttl = "60s"
        dns_hold = "10s"
        dns_start = "wait"
        [[backends]]
        host = "127.0.0.1"
        port = 9001
        """
    }

    func testEveryEntryIsATopLevelKeyOfTheFileOnce() {
        let names = ProxyConfig.settings.map(\.name)
        for name in names {
            XCTAssertTrue(ConfigFile.topLevelKeys.contains(name), "\(name) is not a key of the configuration file")
        }
        XCTAssertEqual(Set(names).count, names.count, "a setting is listed twice: \(names)")
    }

    func testReloadKeepsTheRunningValueOfEveryRestartOnlySettingAndAppliesTheRest() throws {
        let running = try config(first(token: tokenFile("0123456789abcdef0123")))
        let requested = try config(second(token: tokenFile("fedcba9876543210fedc")))
        for setting in ProxyConfig.settings {
            XCTAssertNotEqual(setting.value(in: running), setting.value(in: requested), "the test files must differ in \(setting.name)")
        }
        let reload = SettingsReload(running: running, requested: requested)
        for setting in ProxyConfig.settings {
            let expected = setting.reloadable ? requested : running
            XCTAssertEqual(setting.value(in: reload.effective), setting.value(in: expected), setting.name)
        }
        XCTAssertEqual(reload.applied.map(\.name), ProxyConfig.settings.filter(\.reloadable).map(\.name))
        XCTAssertEqual(reload.restartOnly.map(\.name), ProxyConfig.settings.filter { !$0.reloadable }.map(\.name))
        XCTAssertEqual(reload.restartOnly.first, SettingChange(name: "threads", running: "2", requested: "3"))
        XCTAssertTrue(reload.applied.contains(SettingChange(name: "connect_timeout", running: "3s", requested: "500ms")), "\(reload.applied)")

        // The values themselves, not only their text.
        let effective = reload.effective
        XCTAssertEqual(effective.threads, 2)
        XCTAssertEqual(effective.workerCPUs, [0, 1])
        XCTAssertEqual(effective.bufferSize, 16 * 1024)
        XCTAssertEqual(effective.zerocopy, .off)
        XCTAssertEqual(effective.adminToken, running.adminToken)
        XCTAssertEqual(effective.logFormat, .text)
        XCTAssertEqual(effective.retries, 3)
        XCTAssertNil(effective.idleTimeout)
        XCTAssertNil(effective.reportInterval)
        XCTAssertTrue(effective.accessLog)
        XCTAssertEqual(effective.listeners, requested.listeners, "listeners and backends are not in the table and always switch")
    }

    func testReloadToTheSameConfigurationChangesNothing() throws {
        let running = try config(first(token: tokenFile("0123456789abcdef0123")))
        let reload = SettingsReload(running: running, requested: running)
        XCTAssertEqual(reload.applied, [])
        XCTAssertEqual(reload.restartOnly, [])
        XCTAssertEqual(reload.effective, running)
    }

    func testDurationsReadAsAFileWritesThem() {
        let cases: [(Duration, String)] = [
            (.zero, "0s"), (.seconds(3), "3s"), (.milliseconds(500), "500ms"), (.seconds(3600), "1h"),
            (.seconds(120), "2m"), (.seconds(90), "90s"), (.microseconds(1500), "1500us"), (.nanoseconds(1), "1e-09s"),
        ]
        for (duration, text) in cases {
            XCTAssertEqual(Units.text(duration), text)
            if duration >= .microseconds(1) || duration == .zero { XCTAssertEqual(Units.duration(text), duration, text) }
        }
    }

    /// The admin token is read from a file: each test config names its own.
    private func tokenFile(_ token: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ringproxy-unit-\(UUID().uuidString).token").path
        try token.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
