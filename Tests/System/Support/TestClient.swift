import Glibc
import RingProxy
import XCTest

/// A blocking TCP client for tests. Every call is bounded by the socket timeouts, so a broken proxy fails
/// the test instead of hanging it.
final class TestClient {
    /// -1 once closed. An initializer that throws after setting it still runs `deinit` (Swift does so for a
    /// fully initialised class), so a failed connect must not close it a second time: that would close
    /// whatever socket another thread was given the same number in between.
    private(set) var fd: Int32

    /// Connects to `address`, from `source` when given (any 127.x.y.z is a local address on loopback).
    init(_ address: SocketAddress, from source: SocketAddress? = nil, timeout: Int = 10) throws {
        fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if let source {
            guard source.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
                let error = errno
                Glibc.close(fd)
                fd = -1
                throw TestFailure("bind to \(source): \(String(cString: strerror(error)))")
            }
        }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var result = address.withSockaddr { connect(fd, $0, $1) }
        if result != 0 && errno == EINTR {
            // A signal interrupted the connect, which goes on in the kernel: wait for its outcome.
            var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if poll(&ready, 1, Int32(timeout * 1000)) == 1, getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 {
                result = error == 0 ? 0 : -1
                errno = error
            }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            fd = -1
            throw TestFailure("connect to \(address): \(String(cString: strerror(error)))")
        }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
            offset += count
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Receives exactly `count` bytes, or throws on EOF, error or timeout.
    func receive(exactly count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + offset, count - offset, 0) }
            if received == 0 { throw TestFailure("EOF after \(offset) of \(count) bytes") }
            if received < 0 && errno == EINTR { continue }
            guard received > 0 else { throw TestFailure("recv after \(offset) of \(count) bytes: \(String(cString: strerror(errno)))") }
            offset += received
        }
        return bytes
    }

    /// Receives until the peer closes (or `limit` bytes); throws on error or timeout.
    func receiveUntilClose(limit: Int = 1 << 20) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received == 0 { return bytes }
            if received < 0 && errno == EINTR { continue }
            guard received > 0 else { throw TestFailure("recv: \(String(cString: strerror(errno)))") }
            bytes += chunk[0..<received]
        }
        return bytes
    }

    /// Receives until the peer closes, hashing every byte; throws on error or timeout.
    func hashUntilClose() throws -> StreamHash {
        var hash = StreamHash()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received == 0 { return hash }
            if received < 0 && errno == EINTR { continue }
            guard received > 0 else { throw TestFailure("recv after \(hash.count) bytes: \(String(cString: strerror(errno)))") }
            chunk.withUnsafeBytes { hash.add(UnsafeRawBufferPointer(rebasing: $0[0..<received])) }
        }
    }

    /// Sends `count` bytes of `stream` in chunks of up to `chunk` bytes, and returns their hash.
    func send(_ stream: inout PatternStream, count: Int, chunk: Int = 65536) throws -> StreamHash {
        var hash = StreamHash()
        var buffer = [UInt8](repeating: 0, count: chunk)
        var left = count
        while left > 0 {
            let size = min(left, chunk)
            buffer.withUnsafeMutableBytes { stream.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])) }
            buffer.withUnsafeBytes { hash.add(UnsafeRawBufferPointer(rebasing: $0[0..<size])) }
            try send(Array(buffer[0..<size]))
            left -= size
        }
        return hash
    }

    func receiveLine() throws -> String {
        var line: [UInt8] = []
        while true {
            let byte = try receive(exactly: 1)[0]
            if byte == 10 { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
    }

    /// What the next receive reports: data, EOF (0) or an error (-errno), waiting at most `milliseconds`.
    func pollState(milliseconds: Int32) -> Int {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, milliseconds) == 1 else { return Int.min }
        var byte: UInt8 = 0
        let result = recv(fd, &byte, 1, Int32(MSG_PEEK))
        return result >= 0 ? result : -Int(errno)
    }

    /// How a stream ended, as `awaitEnd` saw it.
    enum StreamEnd: Equatable, CustomStringConvertible {
        /// The peer's FIN.
        case endOfStream
        /// A reset or another socket error (its errno).
        case error(Int32)
        /// Still open when the time was up.
        case stillOpen

        var description: String {
            switch self {
            case .endOfStream: "end of stream"
            case .error(let code): "error \(String(cString: strerror(code)))"
            case .stillOpen: "still open"
            }
        }

        /// An end the peer caused: FIN or reset, not a timeout.
        var isClosed: Bool { self != .stillOpen }
    }

    /// Reads and discards whatever arrives until the peer ends the stream (FIN or reset), for at most
    /// `seconds`; returns how it ended and after how many milliseconds. Unlike a blocking receive, a stream
    /// still open at the deadline is reported as such, not as an error.
    func awaitEnd(within seconds: Double) -> (end: StreamEnd, milliseconds: Int64, discarded: Int) {
        let started = monotonicMilliseconds()
        let deadline = started + Int64(seconds * 1000)
        var chunk = [UInt8](repeating: 0, count: 65536)
        var discarded = 0
        while true {
            let left = deadline - monotonicMilliseconds()
            guard left > 0 else { return (.stillOpen, monotonicMilliseconds() - started, discarded) }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, Int32(left)) == 1 else { continue }
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if received > 0 {
                discarded += received
            } else if received == 0 {
                return (.endOfStream, monotonicMilliseconds() - started, discarded)
            } else if errno != EAGAIN && errno != EINTR {
                return (.error(errno), monotonicMilliseconds() - started, discarded)
            }
        }
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with RST instead of FIN: linger 0, then close. (A shutdown first would send a FIN, and the
    /// peer would see an orderly end of stream before the reset, if the reset came at all.)
    func reset() {
        guard fd >= 0 else { return }
        Socket.setAbortiveClose(fd)
        Glibc.close(fd)
        fd = -1
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Raises the open-files soft limit to the hard limit (tests open thousands of sockets; CI defaults to 1024).
func raiseOpenFileLimit() {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue)), &limit)
    limit.rlim_cur = min(limit.rlim_max, 1 << 16)
    setrlimit(__rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue)), &limit)
}

/// Polls `condition` every 10 ms for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Double(time(nil)) + seconds + 1
    while Double(time(nil)) < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}
