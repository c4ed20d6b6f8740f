import RingSystem

/// What one lookup found, in the three cases discovery treats differently.
public enum DNSAnswer<Record: Sendable & Equatable>: Sendable, Equatable {
    /// Records, and the time they may be kept (the smallest TTL of the answer, in seconds).
    case found([Record], ttl: Int)
    /// The name does not exist (NXDOMAIN) or has no record of the type asked: a real, if empty, answer.
    case none(String)
    /// No answer: a timeout, SERVFAIL, a refused or unreachable server. Says nothing about the name.
    case failed(String)
}

/// One SRV record (RFC 2782): where the service runs and how much of its load a target takes.
public struct SRVRecord: Sendable, Equatable {
    public var target: String
    public var port: UInt16
    public var weight: UInt16
    public var priority: UInt16

    public init(target: String, port: UInt16, weight: UInt16, priority: UInt16) {
        self.target = target
        self.port = port
        self.weight = weight
        self.priority = priority
    }
}
