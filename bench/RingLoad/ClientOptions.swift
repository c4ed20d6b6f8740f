import ArgumentParser
import RingIO
import RingSystem

/// The flags every load subcommand shares.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Address to connect to.", valueName: "host:port"))
    var target: String

    @Option(help: "Client threads, each with its own ring; connections are shared out.")
    var threads = 1

    @Option(help: "Seconds a connect, or a connection waiting for the server, may take before it is given up.")
    var timeout = 5.0

    @Option(help: ArgumentHelp("Also write the results to this file as a JSON object.", valueName: "file"))
    var json: String?

    @Flag(help: "No progress line on stderr every second.")
    var quiet = false

    var address: SocketAddress { SocketAddress(numeric: target)! }

    func validate() throws {
        guard SocketAddress(numeric: target) != nil else { throw ValidationError("--target must be a numeric host:port, got '\(target)'") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be from 0 to 3600 seconds") }
    }

    /// Checks that each thread gets at least one of `connections` (named by `flag`).
    func validate(connections: Int, flag: String) throws {
        guard connections >= 1 else { throw ValidationError("--\(flag) must be at least 1") }
        guard threads <= connections else { throw ValidationError("--threads (\(threads)) must not exceed --\(flag) (\(connections))") }
    }
}

/// How long a request-counting run lasts: a duration, a number of requests, or whichever ends first.
struct RunLength: ParsableArguments {
    @Option(help: "Seconds to run.")
    var duration: Double?

    @Option(help: "Requests (for connect: connections) to make in all; with --duration too, the run ends at whichever comes first.")
    var requests: Int?

    func validate() throws {
        guard duration != nil || requests != nil else { throw ValidationError("give --duration or --requests") }
        try validateDuration(duration)
        if let requests, requests < 1 { throw ValidationError("--requests must be at least 1") }
    }

    /// The monotonic time at which no new request starts (`.max` without --duration).
    func deadline(from start: UInt64) -> UInt64 {
        duration.map { start + UInt64($0 * 1e9) } ?? .max
    }
}

func validateDuration(_ duration: Double?, flag: String = "duration") throws {
    if let duration, !(duration > 0 && duration <= 86400) {
        throw ValidationError("--\(flag) must be from 0 to 86400 seconds")
    }
}
