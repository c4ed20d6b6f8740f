/// What a probe sends and how it judges the answer: pure functions over bytes, so that the checker's ring
/// code only moves bytes and the decisions are unit-tested (`HealthProbeTests`).
extension HealthProbe {
    /// The outcome of the bytes received so far.
    enum Verdict: Equatable {
        case pass
        case fail(String)
        /// Not decided yet: read more (up to `within` bytes, until the deadline or the peer's close).
        case needMore
    }

    /// The bytes a check sends once connected (empty for `connect`, and for a `send-expect` that only reads).
    func request(host: String) -> [UInt8] {
        switch self {
        case .connect: []
        case .sendExpect(let send, _, _): send
        case .http(let http):
            Array("\(http.method) \(http.path) HTTP/1.1\r\nHost: \(http.host ?? host)\r\nUser-Agent: ringproxy-health\r\nConnection: close\r\n\r\n".utf8)
        }
    }

    /// Bytes of the answer read at most (0 for `connect`, which reads nothing).
    var within: Int {
        switch self {
        case .connect: 0
        case .sendExpect(_, _, let within): within
        case .http(let http): http.within
        }
    }

    /// The verdict on `received` (the answer's first bytes); `closed` when the peer closed after them, or
    /// `within` bytes were read, so that no more will come.
    func verdict(on received: [UInt8], closed: Bool) -> Verdict {
        let decided: Verdict
        switch self {
        case .connect:
            return .pass
        case .sendExpect(_, let expect, _):
            decided = received.containsSubsequence(expect) ? .pass : .needMore
        case .http(let http):
            decided = Self.httpVerdict(received, http)
        }
        guard decided == .needMore, closed else { return decided }
        if received.count >= within { return .fail("no match in the first \(within) bytes") }
        return .fail(received.isEmpty ? "closed without an answer" : "closed after \(received.count) bytes without a match")
    }

    /// The status line `HTTP/1.x NNN ...`: pass when NNN is expected.
    private static func httpVerdict(_ received: [UInt8], _ http: HTTPProbe) -> Verdict {
        guard let end = received.firstIndex(of: UInt8(ascii: "\n")) else { return .needMore }
        let line = String(decoding: received[..<end], as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let status = Int(parts[1]) else {
            return .fail("not an HTTP response")
        }
        return http.statuses.contains(status) ? .pass : .fail("status \(status)")
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in `self` (an empty needle always does).
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard needle.count <= count else { return false }
        for start in 0...(count - needle.count) where self[start] == needle[0] {
            if self[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
