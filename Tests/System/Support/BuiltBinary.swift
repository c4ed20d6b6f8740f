// Re-exported for every test file: liburing's headers pull some socket constants (SOCK_STREAM, MSG_NOSIGNAL) into
// CURing's module, and a file that imports Glibc alone then cannot see them when compiled in one batch
// with a file that imports CURing.
@_exported import CURing
import Foundation
import Glibc
import XCTest

/// One of the package's executables, run as a child process the way an operator runs it.
///
/// Children are started with posix_spawn and write to temporary files, not pipes: Foundation's Process
/// closes descriptors behind the backs of other threads, which broke tests that spawn while a load thread
/// opens and closes sockets (its connect failed with EBADF).
struct BuiltBinary {
    struct Outcome {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    let url: URL

    /// `name` from the build folder the test bundle itself was built into.
    init(_ name: String) throws {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [bundle.deletingLastPathComponent(), URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()]
        guard let folder = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent(name).path) }) else {
            throw TestFailure("\(name) is not built next to the tests (\(candidates.map(\.path))); run 'swift build' first")
        }
        url = folder.appendingPathComponent(name)
    }

    /// Runs to completion (at most `timeout` seconds) and returns the exit status and output.
    func run(_ arguments: [String], timeout: TimeInterval = 30) throws -> Outcome {
        let running = try start(arguments)
        let deadline = Date().addingTimeInterval(timeout)
        while running.isRunning && Date() < deadline { usleep(20_000) }
        if running.isRunning {
            running.signal(SIGKILL)
            _ = running.finish()
            throw TestFailure("\(url.lastPathComponent) \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
        }
        return running.finish()
    }

    func start(_ arguments: [String]) throws -> Running {
        try Running(executable: url.path, arguments: [url.path] + arguments)
    }

    /// Runs `command` with /bin/sh (to set limits with `ulimit` before an `exec`).
    static func shell(_ command: String) throws -> Running {
        try Running(executable: "/bin/sh", arguments: ["/bin/sh", "-c", command])
    }

    /// A child process; its output is read when it ends.
    final class Running: @unchecked Sendable {
        let pid: pid_t
        private let outputs: (stdout: String, stderr: String)
        private var status: Int32?

        init(executable: String, arguments: [String]) throws {
            let base = NSTemporaryDirectory() + "ringproxy-child-\(UUID().uuidString)"
            outputs = (base + ".out", base + ".err")
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outputs.stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, outputs.stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            // Nothing else of the test process: a socket a child held on to would keep its connection open.
            curing_spawn_file_actions_addclosefrom(&actions, 3)
            // The child starts with the default signal mask and dispositions, not the test runner's.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var empty = sigset_t(), all = sigset_t()
            sigemptyset(&empty)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attributes, &empty)
            posix_spawnattr_setsigdefault(&attributes, &all)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            defer { for argument in argv { free(argument) } }
            var child = pid_t()
            let result = posix_spawn(&child, executable, &actions, &attributes, &argv, environ)
            guard result == 0 else { throw TestFailure("cannot start \(executable): \(String(cString: strerror(result)))") }
            pid = child
        }

        deinit {
            if status == nil {
                kill(pid, SIGKILL)
                _ = finish()
            }
            unlink(outputs.stdout)
            unlink(outputs.stderr)
        }

        var isRunning: Bool {
            guard status == nil else { return false }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return true }
            status = Self.exitStatus(raw)
            return false
        }

        func signal(_ number: Int32) { kill(pid, number) }

        /// What the process has written to stderr so far (it runs on): for waiting on a log line.
        var stderrSoFar: String { (try? String(contentsOfFile: outputs.stderr, encoding: .utf8)) ?? "" }

        /// Waits for the process to exit and collects its output.
        func finish() -> Outcome {
            if status == nil {
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
                status = Self.exitStatus(raw)
            }
            let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
            return Outcome(status: status ?? -1, stdout: read(outputs.stdout), stderr: read(outputs.stderr))
        }

        /// The exit code, or 128 + the signal that ended the process (as a shell reports it).
        private static func exitStatus(_ raw: Int32) -> Int32 {
            let signal = raw & 0x7F
            return signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
        }
    }
}

/// Writes `text` to a new temporary file and returns its path.
func temporaryFile(_ text: String, suffix: String = ".toml") throws -> String {
    let path = NSTemporaryDirectory() + "ringproxy-test-\(UUID().uuidString)\(suffix)"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
