import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// `ringproxy ctl` against a live `ringproxy` binary: its output, overrides across SIGHUP, and the token.
final class CtlTests: XCTestCase {
    private let token = "5b0e9d2c4a7f1e3b8c6d0a2f4e6b8d1c"

    private func config(admin: UInt16, backends: [(TestServer, Int)], extra: String = "") -> String {
        """
        admin = "127.0.0.1:\(admin)"
        threads = 1
        \(extra)
        [[listeners]]
        name = "web"
        bind = "127.0.0.1:0"
        """ + backends.map { server, weight in
            "\n[[listeners.backends]]\nhost = \"127.0.0.1\"\nport = \(server.port)\nweight = \(weight)\n"
        }.joined()
    }

    /// `/backends` as JSON, through the admin endpoint.
    private func backends(_ admin: SocketAddress, token: String? = nil) throws -> [String: Any] {
        let answer = try adminRequest(admin, "GET", "/backends", token: token)
        return try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any] ?? [:]
    }

    private func backend(_ document: [String: Any], _ address: SocketAddress) -> [String: Any]? {
        let listeners = document["listeners"] as? [[String: Any]] ?? []
        return listeners.flatMap { $0["backends"] as? [[String: Any]] ?? [] }.first { $0["address"] as? String == "\(address)" }
    }

    func testCtlDrainsAndWeighsAndListsAndOverridesSurviveSIGHUPUntilTheBackendLeaves() throws {
        let a = try TestServer(.banner("a")), b = try TestServer(.banner("b"))
        let adminPort = try deadAddress().port
        let file = try temporaryFile(config(admin: adminPort, backends: [(a, 1), (b, 2)]))
        let running = try BuiltBinary("ringproxy").start(["--config", file, "--no-pin"])
        defer { running.signal(SIGTERM); _ = running.finish() }
        let admin = SocketAddress(numericHost: "127.0.0.1", port: adminPort)!
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 200 })
        let ctl = try BuiltBinary("ringproxy")
        let flags = ["--admin", "127.0.0.1:\(adminPort)"]

        let drain = try ctl.run(["ctl", "drain", "web", "\(a.address)"] + flags)
        XCTAssertEqual(drain.status, 0, drain.stderr)
        XCTAssertEqual(drain.stdout, "\(a.address): drain, weight 1 (file 1), 0 active\n")
        let weight = try ctl.run(["ctl", "weight", "web", "\(b.address)", "5"] + flags)
        XCTAssertEqual(weight.stdout, "\(b.address): up, weight 5 (file 2), 0 active\n")
        let listing = try ctl.run(["ctl", "backends"] + flags)
        XCTAssertEqual(listing.status, 0, listing.stderr)
        let rows = listing.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        XCTAssertEqual(rows, [
            "POOL ADDRESS STATE WEIGHT FILE EFFECTIVE OVERRIDE ACTIVE TOTAL ORIGIN",
            "web \(a.address) drain 1 1 1.00 state=drain 0 0 file",
            "web \(b.address) up 5 2 5.00 weight=5 0 0 file",
        ])
        print("ringproxy ctl backends:\n" + listing.stdout)

        running.signal(SIGHUP)  // the same file again
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_reloads_total") == 1 })
        let reloaded = try backends(admin)
        XCTAssertEqual(backend(reloaded, a.address)?["state"] as? String, "drain", "the drain survives a SIGHUP")
        XCTAssertEqual(backend(reloaded, b.address)?["weight"] as? Int, 5, "and so does the weight")
        XCTAssertEqual(backend(reloaded, b.address)?["file_weight"] as? Int, 2)

        try config(admin: adminPort, backends: [(b, 2)]).write(toFile: file, atomically: true, encoding: .utf8)
        running.signal(SIGHUP)
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_reloads_total") == 2 })
        try config(admin: adminPort, backends: [(a, 1), (b, 2)]).write(toFile: file, atomically: true, encoding: .utf8)
        running.signal(SIGHUP)
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/metrics"))?.metric("ringproxy_reloads_total") == 3 })
        let back = try backends(admin)
        XCTAssertEqual(backend(back, a.address)?["state"] as? String, "up", "the backend left: its drain was dropped")
        XCTAssertNil(backend(back, a.address)?["override"] as? [String: Any])
        XCTAssertEqual(backend(back, b.address)?["weight"] as? Int, 5, "b never left: its weight stays")

        let unknown = try ctl.run(["ctl", "maint", "web", "127.0.0.1:1"] + flags)
        XCTAssertEqual(unknown.status, 1)
        XCTAssertEqual(unknown.stderr, "ringproxy ctl: the admin endpoint answered 404: pool 'web' has no backend 127.0.0.1:1\n")
        let metrics = try HTTPGet(admin, "/metrics")
        XCTAssertEqual(metrics.metric(#"ringproxy_backend_state{listener="web",backend="\#(a.address)",state="up"}"#), 1)
        XCTAssertEqual(metrics.metric(#"ringproxy_backend_effective_weight{listener="web",backend="\#(b.address)"}"#), 5)
    }

    func testWritesNeedTheBearerTokenWhenOneIsConfigured() throws {
        let a = try TestServer(.banner("a"))
        let adminPort = try deadAddress().port
        let tokenFile = try temporaryFile(token + "\n", suffix: ".token")
        let file = try temporaryFile(config(admin: adminPort, backends: [(a, 1)], extra: "admin_token_file = \"\(tokenFile)\""))
        let running = try BuiltBinary("ringproxy").start(["--config", file, "--no-pin"])
        defer { running.signal(SIGTERM); _ = running.finish() }
        let admin = SocketAddress(numericHost: "127.0.0.1", port: adminPort)!
        XCTAssertTrue(eventually(5) { (try? HTTPGet(admin, "/healthz"))?.status == 200 })

        XCTAssertEqual(try adminRequest(admin, "PUT", "/backends/web/\(a.address)", body: "state=drain").status, 401)
        XCTAssertEqual(try adminRequest(admin, "PUT", "/backends/web/\(a.address)", body: "state=drain", token: "wrong-token-0123456789").status, 401)
        XCTAssertEqual(backend(try backends(admin, token: token), a.address)?["state"] as? String, "up", "nothing changed")
        let ctl = try BuiltBinary("ringproxy")
        let refused = try ctl.run(["ctl", "drain", "web", "\(a.address)", "--admin", "\(adminPort)"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.hasPrefix("ringproxy ctl: the admin endpoint answered 401"), refused.stderr)
        let allowed = try ctl.run(["ctl", "drain", "web", "\(a.address)", "--admin", "\(adminPort)", "--token-file", tokenFile])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertEqual(backend(try backends(admin, token: token), a.address)?["state"] as? String, "drain")
    }
}
