import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// Every class of bad input, with the exact message and exit status an operator gets.
final class BadInputTests: XCTestCase {
    private var ringproxy: BuiltBinary!

    override func setUpWithError() throws {
        ringproxy = try BuiltBinary("ringproxy")
    }

    /// Runs `--check` on `text` as a config file; returns (status, stderr with the file's path as FILE).
    private func check(_ text: String) throws -> (Int32, String) {
        let file = try temporaryFile(text)
        let outcome = try ringproxy.run(["--config", file, "--check"])
        return (outcome.status, outcome.stderr.replacingOccurrences(of: file, with: "FILE"))
    }

    private let backend = "[[backends]]\nhost = \"127.0.0.1\"\nport = 9000\n"

    func testEveryConfigErrorClassHasItsExactMessage() throws {
        let cases: [(String, String)] = [
            ("port = true\n" + backend, "ringproxy: config error: FILE:1: port: expected an integer, got a boolean (true)\n"),
            ("port = 70000\n" + backend, "ringproxy: config error: FILE:1: port: expected a port from 0 to 65535, got 70000\n"),
            ("port = 8080\n", "ringproxy: config error: FILE: backends: no backends: add [[backends]] entries with host and port, or pass --backend host:port\n"),
            ("port = 8080\n" + backend + backend,
             "ringproxy: config error: FILE:5: backends[1]: duplicate backend 127.0.0.1:9000 (already listed as backends[0])\n"),
            ("port = 8080\n" + backend + "weight = 257\n", "ringproxy: config error: FILE:5: backends[0].weight: expected a weight from 0 to 256, got 257\n"),
            ("port = 8080\nmax_conections = 5\n" + backend,
             "ringproxy: config error: FILE:2: max_conections: unknown key (did you mean 'max_connections'?)\n"),
            ("port = 8080\n[[backends]\n", "ringproxy: config error: FILE:2: syntax: invalid TOML:"),
            ("port = 8080\n[[backends]]\nhost = \"no-such-host.invalid\"\nport = 9000\n",
             "ringproxy: config error: FILE:3: backends[0].host: cannot resolve host 'no-such-host.invalid':"),
            ("port = 8080\nidle_timeout = \"soon\"\n" + backend,
             "ringproxy: config error: FILE:2: idle_timeout: expected a duration like 3, \"250ms\", \"3s\" or \"1h\", got a string (\"soon\")\n"),
        ]
        for (text, expected) in cases {
            let (status, stderr) = try check(text)
            XCTAssertEqual(status, 2, text)
            XCTAssertTrue(stderr.hasPrefix(expected), "for:\n\(text)\nexpected: \(expected)\ngot:      \(stderr)")
        }
    }

    func testMissingAndUnreadableFiles() throws {
        let missing = try ringproxy.run(["--config", "/nonexistent/ringproxy.toml"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(missing.stderr, "ringproxy: config error: /nonexistent/ringproxy.toml: file: cannot read '/nonexistent/ringproxy.toml': No such file or directory\n")
        let folder = NSTemporaryDirectory()
        let unreadable = try ringproxy.run(["--config", folder])
        XCTAssertEqual(unreadable.status, 2)
        XCTAssertEqual(unreadable.stderr, "ringproxy: config error: \(folder): file: cannot read '\(folder)': Is a directory\n")
    }

    func testBadFlagsExitTwo() throws {
        let unknown = try ringproxy.run(["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9000", "--thread", "2"])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.hasPrefix("ringproxy: Error: Unknown option '--thread'"), unknown.stderr)
        let missingValue = try ringproxy.run(["--listen"])
        XCTAssertEqual(missingValue.status, 2)
        XCTAssertTrue(missingValue.stderr.hasPrefix("ringproxy: Error: Missing value for '--listen <host:port>'"), missingValue.stderr)
        let notANumber = try ringproxy.run(["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9000", "--threads", "two"])
        XCTAssertEqual(notANumber.status, 2)
        XCTAssertTrue(notANumber.stderr.hasPrefix("ringproxy: Error: The value 'two' is invalid for '--threads <threads>'"), notANumber.stderr)
    }

    func testDisabledIOUringIsOneClearLine() throws {
        let sysctl = "/proc/sys/kernel/io_uring_disabled"
        guard getuid() == 0, let original = try? String(contentsOfFile: sysctl, encoding: .utf8) else {
            throw XCTSkip("setting kernel.io_uring_disabled needs root and a kernel that has it (5.19+/6.6+)")
        }
        guard (try? "2".write(toFile: sysctl, atomically: false, encoding: .utf8)) != nil else {
            throw XCTSkip("kernel.io_uring_disabled is read-only here (a container without sysctl write access)")
        }
        // Restored at once: only rings created in this moment are refused; running ones are unaffected.
        let outcome = try? ringproxy.run(["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9000", "--threads", "1"])
        try original.write(toFile: sysctl, atomically: false, encoding: .utf8)
        XCTAssertEqual(outcome?.status, 1)
        XCTAssertEqual(outcome?.stderr.split(separator: "\n").last.map(String.init),
                       "ringproxy: io_uring is disabled on this host (sysctl kernel.io_uring_disabled=2); enable it with: sysctl -w kernel.io_uring_disabled=0")
    }

    func testLockedMemoryTooLowIsOneClearLine() throws {
        guard getuid() == 0 else {
            throw XCTSkip("needs root, to run the proxy as an unprivileged user (root is not held to RLIMIT_MEMLOCK)")
        }
        try requireTool(["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"], install: "apt-get install util-linux")
        // A copy the unprivileged user can reach, whatever the permissions of the build folder.
        let copy = NSTemporaryDirectory() + "ringproxy-memlock-\(getpid())"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: ringproxy.url.path, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        chmod(copy, 0o755)
        let running = try BuiltBinary.shell(
            "exec runuser -u nobody -- /bin/sh -c 'ulimit -l 0 && exec \(copy) --listen 127.0.0.1:0 --backend 127.0.0.1:9000 --threads 1'")
        let outcome = running.finish()
        XCTAssertEqual(outcome.status, 1)
        XCTAssertEqual(outcome.stderr.split(separator: "\n").last.map(String.init),
                       "ringproxy: io_uring_setup could not lock memory: the locked-memory limit (RLIMIT_MEMLOCK) is 0 KiB; raise it with 'ulimit -l unlimited' or LimitMEMLOCK=infinity in the systemd unit")
    }
}
