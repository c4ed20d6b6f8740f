import Glibc

// Blocking calls for a small client outside the rings (`ringproxy ctl` talking to the admin endpoint): each
// returns a plain result and leaves errno for the caller to name.
extension Socket {
    /// Makes every send and receive on `fd` give up after `seconds` (SO_SNDTIMEO, SO_RCVTIMEO).
    public static func setTimeouts(_ fd: Int32, seconds: Int) {
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Connects `fd` to `address`, waiting; true when connected.
    public static func connect(_ fd: Int32, to address: SocketAddress) -> Bool {
        address.withSockaddr { Glibc.connect(fd, $0, $1) } == 0
    }

    /// Sends all of `bytes`, waiting; false when the peer or a timeout stopped it first.
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Receives what has arrived (at most `limit` bytes), waiting for some: empty at the peer's close, nil on
    /// an error or a timeout.
    public static func receive(_ fd: Int32, limit: Int = 65536) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: limit)
        let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { return nil }
        return Array(chunk[0..<count])
    }
}
