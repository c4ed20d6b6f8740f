import CURing
import Glibc

/// Thin, throwing wrappers over the socket calls made outside the rings (set-up and per-connection options).
public enum Socket {
    /// A listening TCP socket on `address` with `SO_REUSEPORT`, so each worker can own one and the kernel
    /// spreads connections across them (and a second process can take over the address during a restart).
    /// Non-blocking: accepts go through a ring, and a plain `accept4` (a drain taking the backlog) must
    /// return `EAGAIN` rather than block when another accept took the connection first.
    public static func listen(on address: SocketAddress, backlog: Int32, incomingCPU: Int32? = nil) throws(SocketError) -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketError(.listen, address: address, errno: errno) }
        do throws(SocketError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, address: address)
            try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, address: address)
            // Inherited by accepted sockets: a proxy must not add Nagle delay to what it forwards.
            try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, address: address)
            if address.family == AF_INET6 { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1, address: address) }
            if let cpu = incomingCPU {
                // Best effort: steers accepts to the worker on the CPU where the packets arrive.
                var value = cpu
                _ = setsockopt(fd, SOL_SOCKET, curing_so_incoming_cpu, &value, socklen_t(MemoryLayout<Int32>.size))
            }
            let bound = address.withSockaddr { bind(fd, $0, $1) }
            guard bound == 0 else { throw SocketError(.bind, address: address, errno: errno) }
            guard Glibc.listen(fd, backlog) == 0 else { throw SocketError(.listen, address: address, errno: errno) }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// The address a socket is bound to (resolves port 0 to the port the kernel chose).
    public static func localAddress(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? SocketAddress(storage: storage, length: length) : nil
    }

    /// The address of the peer of a connected socket.
    public static func peerAddress(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        return result == 0 ? SocketAddress(storage: storage, length: length) : nil
    }

    /// A new TCP socket for a backend connection, with Nagle off. Returns a negated errno on failure.
    @inline(__always)
    public static func openStream(family: Int32) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -errno }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// The bytes sent on `fd` that its peer has yet to acknowledge and still can: 0 once the connection is
    /// closed (reset, or timed out), whose stale send queue (SIOCOUTQ) would otherwise never drain; -1 on error.
    public static func undeliveredBytes(_ fd: Int32) -> Int32 {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        if getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 && Int32(info.tcpi_state) == Int32(TCP_CLOSE) {
            return 0
        }
        return curing_unacknowledged_bytes(fd)
    }

    /// Makes the next close send RST instead of FIN, to pass an abort on to the other peer.
    @inline(__always)
    public static func setAbortiveClose(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    private static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, address: SocketAddress) throws(SocketError) {
        var value = value
        guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SocketError(.option, address: address, errno: errno)
        }
    }
}

/// A socket set-up failure, worded for the operator: what failed, on which address, and what to do.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    public enum Step: Sendable { case listen, bind, option }
    public let step: Step
    public let address: SocketAddress
    public let errno: Int32

    package init(_ step: Step, address: SocketAddress, errno: Int32) {
        self.step = step
        self.address = address
        self.errno = errno
    }

    public var description: String {
        switch errno {
        case EADDRINUSE:
            return "cannot listen on \(address): address already in use (another process holds it without SO_REUSEPORT); stop it or choose another address"
        case EACCES:
            return "cannot listen on \(address): permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        case EADDRNOTAVAIL:
            return "cannot listen on \(address): no local interface has this address"
        case EMFILE, ENFILE:
            return "cannot open a socket for \(address): too many open files; raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit)"
        default:
            return "cannot listen on \(address): \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }
}
