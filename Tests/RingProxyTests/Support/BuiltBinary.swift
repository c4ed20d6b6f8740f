import Foundation
import XCTest

/// One of the package's executables, run as a child process the way an operator runs it.
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
        let process = try start(arguments)
        let deadline = Date().addingTimeInterval(timeout)
        while process.process.isRunning && Date() < deadline { usleep(20_000) }
        if process.process.isRunning {
            process.process.interrupt()
            throw TestFailure("\(url.lastPathComponent) \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
        }
        return process.finish()
    }

    func start(_ arguments: [String]) throws -> Running {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        return Running(process: process, stdout: stdout, stderr: stderr)
    }

    /// Runs `command` with /bin/sh (to set limits with `ulimit` before an `exec`).
    static func shell(_ command: String) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        return Running(process: process, stdout: stdout, stderr: stderr)
    }

    /// A child process still running; its output is read when it ends.
    struct Running {
        let process: Process
        let stdout: Pipe
        let stderr: Pipe

        func signal(_ number: Int32) { kill(process.processIdentifier, number) }

        /// Waits for the process to exit and collects its output.
        func finish() -> Outcome {
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            let err = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Outcome(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
        }
    }
}

/// Writes `text` to a new temporary file and returns its path.
func temporaryFile(_ text: String, suffix: String = ".toml") throws -> String {
    let path = NSTemporaryDirectory() + "ringproxy-test-\(UUID().uuidString)\(suffix)"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
