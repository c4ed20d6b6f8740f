/// How failures take a backend out of rotation and how it comes back.
public struct HealthPolicy: Sendable, Equatable {
    /// Consecutive connect failures that mark a backend down (passive health); 0 turns it off.
    public var failThreshold: Int
    /// How long a backend marked down by connect failures waits before one trial connection decides.
    public var failTimeout: Duration
    /// Active checks, when configured, alone bring a down backend back up (after `rise` passes).
    public var checks: HealthChecks?
    /// A backend that comes back up or joins ramps its effective weight linearly from ~0 to its weight over
    /// this time (zero: it takes its full share at once).
    public var slowStart: Duration

    public init(failThreshold: Int, failTimeout: Duration, checks: HealthChecks? = nil, slowStart: Duration = .zero) {
        self.failThreshold = failThreshold
        self.failTimeout = failTimeout
        self.checks = checks
        self.slowStart = slowStart
    }

    public static let defaultFailThreshold = 3
    public static let defaultFailTimeout = Duration.seconds(10)
}

/// Active health checks: every `interval`, a probe of each backend that must pass within `timeout`.
public struct HealthChecks: Sendable, Equatable {
    public var interval: Duration
    public var timeout: Duration
    /// Consecutive passes that bring a down backend up.
    public var rise: Int
    /// Consecutive failures that take an up backend down.
    public var fall: Int
    /// What a check does once connected.
    public var probe: HealthProbe
    /// The port checks connect to instead of the backend's own (`check_port`).
    public var port: UInt16?

    public init(interval: Duration, timeout: Duration, rise: Int, fall: Int, probe: HealthProbe = .connect, port: UInt16? = nil) {
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
        self.probe = probe
        self.port = port
    }
}

/// `health.type`: what one check does.
public enum HealthProbe: Sendable, Equatable {
    /// A TCP connect that succeeds.
    case connect
    /// Connect, send `send` (may be empty), and read until `expect` appears within the first `within` bytes.
    case sendExpect(send: [UInt8], expect: [UInt8], within: Int)
    /// Connect, send one HTTP/1.1 request, and pass when the status is one of `statuses`.
    case http(HTTPProbe)

    public static let defaultExpectWithin = 4096

    /// As `--check` and the reload log show it: `connect`, `send-expect "+PONG"`, `http GET /primary [200]`.
    public var summary: String {
        switch self {
        case .connect: "connect"
        case .sendExpect(_, let expect, let within): "send-expect \"\(String(decoding: expect, as: UTF8.self))\" within \(within) B"
        case .http(let http): "http \(http.method) \(http.path) \(http.statuses)"
        }
    }
}

/// The request and the answers that pass of an HTTP check.
public struct HTTPProbe: Sendable, Equatable {
    public var method: String
    public var path: String
    /// The Host header; nil sends the backend's address.
    public var host: String?
    public var statuses: [Int]
    /// Bytes of the answer read at most to find its status line.
    public var within: Int

    public init(method: String = "GET", path: String = "/", host: String? = nil, statuses: [Int] = [200],
                within: Int = HealthProbe.defaultExpectWithin) {
        self.method = method
        self.path = path
        self.host = host
        self.statuses = statuses
        self.within = within
    }
}
