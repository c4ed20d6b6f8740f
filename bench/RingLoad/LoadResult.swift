import Glibc
import Histogram

/// Why a connection (or an attempt to open one) failed; reported as "kind: count".
enum Failure: Hashable, Sendable, CustomStringConvertible {
    case socket(errno: Int32)
    case connect(errno: Int32)
    case send(errno: Int32)
    case recv(errno: Int32)
    case closedByPeer
    case timedOut
    case setup(String)

    var description: String {
        switch self {
        case .socket(let errno): "socket: \(Self.describe(errno))"
        case .connect(ECANCELED): "connect: timed out"
        case .connect(let errno): "connect: \(Self.describe(errno))"
        case .send(let errno): "send: \(Self.describe(errno))"
        case .recv(let errno): "recv: \(Self.describe(errno))"
        case .closedByPeer: "closed by peer"
        case .timedOut: "timed out"
        case .setup(let reason): "setup: \(reason)"
        }
    }

    private static func describe(_ errno: Int32) -> String { String(cString: strerror(errno)) }
}

/// What one client thread measured; threads' results are merged into one at the end of a run.
struct LoadResult: Sendable {
    /// Responses received in full (rr), exchanges completed (connect) or connections opened (idle).
    var requests = 0
    var bytesSent = 0
    var bytesReceived = 0
    var failures: [Failure: Int] = [:]
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    var errorCount: Int { failures.values.reduce(0, +) }

    /// "kind: count, ..." sorted by kind.
    var failureSummary: String {
        failures.map { ("\($0.key)", $0.value) }.sorted { $0.0 < $1.0 }.map { "\($0.0): \($0.1)" }.joined(separator: ", ")
    }

    var counters: LoadCounters {
        LoadCounters(requests: requests, bytes: bytesSent + bytesReceived, errors: errorCount)
    }

    mutating func count(_ failure: Failure, times: Int = 1) {
        if times > 0 { failures[failure, default: 0] += times }
    }

    mutating func merge(_ other: LoadResult) {
        requests += other.requests
        bytesSent += other.bytesSent
        bytesReceived += other.bytesReceived
        failures.merge(other.failures, uniquingKeysWith: +)
        latency.add(other.latency)
    }
}

/// The running totals a client thread publishes for the progress line.
struct LoadCounters: Sendable {
    var requests = 0
    var bytes = 0
    var errors = 0

    static func + (lhs: LoadCounters, rhs: LoadCounters) -> LoadCounters {
        LoadCounters(requests: lhs.requests + rhs.requests, bytes: lhs.bytes + rhs.bytes, errors: lhs.errors + rhs.errors)
    }
}
