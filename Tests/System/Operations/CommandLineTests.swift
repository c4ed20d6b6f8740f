import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// The `ringproxy` binary as an operator meets it: flags, config files, `--check`, start-up errors.
final class CommandLineTests: XCTestCase {
    private var ringproxy: BuiltBinary!

    override func setUpWithError() throws {
        ringproxy = try BuiltBinary("ringproxy")
    }

    func testFlatConfigFileIsAcceptedByCheck() throws {
        let file = try temporaryFile("""
            host = "127.0.0.1"
            port = 8080

            [[backends]]
            host = "127.0.0.1"
            port = 9000
            weight = 1

            [[backends]]
            host = "127.0.0.1"
            port = 9001
            weight = 3
            """)
        let outcome = try ringproxy.run(["--config", file, "--check"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("configuration OK"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("127.0.0.1:9001 (127.0.0.1:9001, weight 3)"), outcome.stdout)
    }

    func testFlagsOverrideTheFile() throws {
        let file = try temporaryFile("port = 8080\nring_size = 1024\n[[backends]]\nhost = \"127.0.0.1\"\nport = 9000\n")
        let outcome = try ringproxy.run(["--config", file, "--check", "--ring-size", "2048", "--threads", "3"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("3 workers, ring 2048"), outcome.stdout)
        let rows = outcome.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertTrue(rows.contains(["ring_size", "2048", "restart"]), outcome.stdout)
        XCTAssertTrue(rows.contains(["retries", "2"]), "a setting a reload applies is not marked: \(outcome.stdout)")
    }

    func testEveryConfigErrorIsListedWithItsKeyAndLine() throws {
        let file = try temporaryFile("""
            port = "8080"
            ring_size = 1000
            thraeds = 2

            [[backends]]
            host = "127.0.0.1"
            port = 9000
            weight = 999
            """)
        let outcome = try ringproxy.run(["--config", file, "--check"])
        XCTAssertEqual(outcome.status, 2)
        for expected in [
            "\(file):1: port: expected an integer, got a string (\"8080\")",
            "\(file):2: ring_size: expected a power of two from 2 to 32768, got 1000",
            "\(file):3: thraeds: unknown key (did you mean 'threads'?)",
            "\(file):8: backends[0].weight: expected a weight from 0 to 256, got 999",
        ] {
            XCTAssertTrue(outcome.stderr.contains(expected), "missing '\(expected)' in:\n\(outcome.stderr)")
        }
    }

    func testInvalidTOMLNamesItsLine() throws {
        let file = try temporaryFile("port = 8080\n[[backends]\nhost = \"x\"\n")
        let outcome = try ringproxy.run(["--config", file, "--check"])
        XCTAssertEqual(outcome.status, 2)
        XCTAssertTrue(outcome.stderr.contains("\(file):2: syntax: invalid TOML"), outcome.stderr)
    }

    func testMissingConfigFileIsAClearError() throws {
        let outcome = try ringproxy.run(["--config", "/nonexistent/ringproxy.toml", "--check"])
        XCTAssertEqual(outcome.status, 2)
        XCTAssertTrue(outcome.stderr.contains("cannot read '/nonexistent/ringproxy.toml': No such file or directory"), outcome.stderr)
    }

    func testBadFlagValuesExitTwoNamingTheFlag() throws {
        let cases: [([String], String)] = [
            (["--ring-size", "1000"], "--ring-size: expected a power of two from 2 to 32768, got 1000"),
            (["--ring-size", "65536"], "--ring-size: expected a power of two from 2 to 32768, got 65536"),
            (["--buffer-size", "lots"], "--buffer-size: expected a size like 16384 or 16KiB, got 'lots'"),
            (["--connect-timeout", "soon"], "--connect-timeout: expected a duration like 3s, 500ms or 1h, got 'soon'"),
            (["--backend", "127.0.0.1"], "--backend: expected host:port or host:port@weight"),
            (["--threads", "0"], "--threads: expected a thread count from 1 to 1024, got 0"),
            (["--cpus", "0-"], "--cpus: expected a CPU list like \"0,2-3\", got '0-'"),
        ]
        for (flags, expected) in cases {
            let arguments = ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9000", "--check"] + flags
            let outcome = try ringproxy.run(arguments)
            XCTAssertEqual(outcome.status, 2, "\(flags)")
            XCTAssertTrue(outcome.stderr.contains(expected), "\(flags): missing '\(expected)' in:\n\(outcome.stderr)")
        }
    }

    func testHelpListsTheFlagsAndExitsZero() throws {
        let outcome = try ringproxy.run(["--help"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        for flag in ["--listen", "--backend", "--config", "--threads", "--ring-size", "--buffers", "--max-connections"] {
            XCTAssertTrue(outcome.stdout.contains(flag), "--help does not mention \(flag)")
        }
    }

    func testUnknownFlagExitsTwo() throws {
        let outcome = try ringproxy.run(["--ring-sise", "4096"])
        XCTAssertEqual(outcome.status, 2)
        XCTAssertTrue(outcome.stderr.contains("--ring-sise"), outcome.stderr)
    }

    func testUnresolvableBackendIsNamed() throws {
        let outcome = try ringproxy.run(["--listen", "127.0.0.1:0", "--backend", "no-such-host.invalid:9000", "--check"])
        XCTAssertEqual(outcome.status, 2)
        XCTAssertTrue(outcome.stderr.contains("cannot resolve host 'no-such-host.invalid'"), outcome.stderr)
    }

    func testAddressInUseIsOneClearLine() throws {
        // A listener without SO_REUSEPORT holds the port.
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(holder) }
        let address = SocketAddress(numericHost: "127.0.0.1", port: 0)!
        XCTAssertEqual(address.withSockaddr { bind(holder, $0, $1) }, 0)
        XCTAssertEqual(Glibc.listen(holder, 1), 0)
        let port = Socket.localAddress(of: holder)!.port
        let outcome = try ringproxy.run(["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:9000", "--threads", "1"])
        XCTAssertEqual(outcome.status, 1)
        XCTAssertTrue(outcome.stderr.contains("cannot listen on 127.0.0.1:\(port): address already in use"), outcome.stderr)
    }

    func testBinaryForwardsAndStopsCleanlyOnSIGTERM() throws {
        let backend = try TestServer(.echo)
        let port = try deadAddress().port
        let running = try ringproxy.start(["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend.port)", "--threads", "2", "--no-pin"])
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        var client: TestClient?
        XCTAssertTrue(eventually { client = try? TestClient(address); return client != nil })
        try client?.send("through the binary\n")
        XCTAssertEqual(try client?.receiveLine(), "through the binary")
        client = nil  // otherwise the drain waits for it, up to the drain timeout
        running.signal(SIGTERM)
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("ringproxy started"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("workers=2"), outcome.stderr)
    }
}
