/// How failures take a backend out of rotation and how it comes back.
public struct HealthPolicy: Sendable, Equatable {
    /// Consecutive connect failures that mark a backend down (passive health); 0 turns it off.
    public var failThreshold: Int
    /// How long a backend marked down by connect failures waits before one trial connection decides.
    public var failTimeout: Duration
    /// Active checks, when configured, alone bring a down backend back up (after `rise` passes).
    public var checks: HealthChecks?

    public init(failThreshold: Int, failTimeout: Duration, checks: HealthChecks? = nil) {
        self.failThreshold = failThreshold
        self.failTimeout = failTimeout
        self.checks = checks
    }

    public static let defaultFailThreshold = 3
    public static let defaultFailTimeout = Duration.seconds(10)
}

/// Active health checks: a TCP connect to each backend every `interval`.
public struct HealthChecks: Sendable, Equatable {
    public var interval: Duration
    public var timeout: Duration
    /// Consecutive passes that bring a down backend up.
    public var rise: Int
    /// Consecutive failures that take an up backend down.
    public var fall: Int

    public init(interval: Duration, timeout: Duration, rise: Int, fall: Int) {
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
    }
}
