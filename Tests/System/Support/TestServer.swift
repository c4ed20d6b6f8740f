import CURing
import Glibc
import RingProxy
import Synchronization

/// A backend for integration tests, in the spirit of HAProxy's reg-tests: it says who it is and does one
/// scripted thing. It runs a poll(2) loop on its own thread (deliberately not io_uring, so it shares no
/// code with the proxy under test).
final class TestServer: @unchecked Sendable {
    enum Behavior: Sendable {
        /// Echo every byte; at end of stream, send what is left and close.
        case echo
        /// Send "name\n" on accept, then echo.
        case banner(String)
        /// Echo until this many bytes have arrived, then reset the connection.
        case resetAfter(Int)
        /// Read until end of stream, then answer "<bytes> <hash>\n" (a `StreamHash` digest) and close.
        case replyOnEOF
        /// Accept and never read.
        case ignore
        /// Never read the first connection; echo every later one.
        case stallFirst
        /// Send `bytes` bytes of `PatternStream(seed:)`, then close; ignore what arrives.
        case source(bytes: Int, seed: UInt64)
        /// Expect a PROXY protocol header: answer its `summary` line (or "invalid: why"), then echo.
        case proxyProtocol
    }

    let address: SocketAddress
    var port: UInt16 { address.port }
    private let behavior: Behavior
    private let listener: Int32
    private let wake: (read: Int32, write: Int32)
    private var thread = pthread_t()
    private let accepted = Atomic<Int>(0)
    private let open = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let headers = Mutex<[ProxyProtocolHeader.ParseResult]>([])
    private let resets = Atomic<Int>(0)

    var acceptedCount: Int { accepted.load(ordering: .relaxed) }
    /// Connections that ended with a reset from the proxy (a receive failed with ECONNRESET).
    var resetCount: Int { resets.load(ordering: .relaxed) }
    var openCount: Int { open.load(ordering: .relaxed) }
    /// What `.proxyProtocol` made of each connection's first bytes (a header or why not), in arrival order.
    var proxyHeaders: [ProxyProtocolHeader.ParseResult] { headers.withLock { $0 } }

    init(_ behavior: Behavior, host: String = "127.0.0.1", port: UInt16 = 0) throws {
        self.behavior = behavior
        listener = try Socket.listen(on: SocketAddress(numericHost: host, port: port)!, backlog: 4096)
        address = Socket.localAddress(of: listener)!
        var pipeEnds: [Int32] = [0, 0]
        pipe(&pipeEnds)
        for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        wake = (pipeEnds[0], pipeEnds[1])
        let context = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { context in
            let server = Unmanaged<TestServer>.fromOpaque(context!).takeRetainedValue()
            server.loop()
            return nil
        }, context)
    }

    deinit { stop() }

    /// Closes the listener and every connection (with RST: a killed backend), and waits for the thread.
    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        pthread_join(thread, nil)
        Glibc.close(wake.read)
        Glibc.close(wake.write)
    }

    private final class Peer {
        let fd: Int32
        var output: [UInt8] = []
        var written = 0
        var received = 0
        var hash = StreamHash()
        var pattern: PatternStream?
        var patternLeft = 0
        /// Bytes received before the PROXY header was complete.
        var headerBytes: [UInt8]? = []
        /// Never read from.
        var stalled = false
        var closeWhenFlushed = false
        init(fd: Int32) { self.fd = fd }
        var pending: Int { output.count - written }
    }

    private func loop() {
        var peers: [Int32: Peer] = [:]
        var buffer = [UInt8](repeating: 0, count: 65536)
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        running: while true {
            var fds = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0), pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            for peer in peers.values {
                var events: Int16 = 0
                if !peer.stalled && peer.pending < 1 << 20 && !peer.closeWhenFlushed { events |= Int16(POLLIN) }
                if peer.pending > 0 || peer.patternLeft > 0 { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: peer.fd, events: events, revents: 0))
            }
            guard poll(&fds, nfds_t(fds.count), 1000) >= 0 else { continue }
            if fds[0].revents != 0 { break running }
            if fds[1].revents != 0 {
                while case let fd = curing_accept4(listener, nil, nil, Int32(SOCK_CLOEXEC.rawValue)), fd >= 0 {
                    _ = fcntl(fd, F_SETFL, O_NONBLOCK)
                    accepted.add(1, ordering: .relaxed)
                    open.add(1, ordering: .relaxed)
                    let peer = Peer(fd: fd)
                    switch behavior {
                    case .ignore: peer.stalled = true
                    case .stallFirst: peer.stalled = acceptedCount == 1
                    case .banner(let name): peer.output = Array("\(name)\n".utf8)
                    case .source(let bytes, let seed):
                        peer.pattern = PatternStream(seed: seed)
                        peer.patternLeft = bytes
                    default: break
                    }
                    peers[fd] = peer
                }
            }
            for entry in fds.dropFirst(2) where entry.revents != 0 {
                guard let peer = peers[entry.fd] else { continue }
                var keep = true
                if entry.revents & Int16(POLLOUT) != 0 { keep = flush(peer) }
                if keep && entry.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { keep = read(peer, &buffer) }
                if keep && (peer.closeWhenFlushed || peer.pattern != nil) && peer.pending == 0 && peer.patternLeft == 0 { keep = false }
                if !keep {
                    Glibc.close(peer.fd)
                    peers[peer.fd] = nil
                    open.subtract(1, ordering: .relaxed)
                }
            }
        }
        for peer in peers.values {
            Socket.setAbortiveClose(peer.fd)
            Glibc.close(peer.fd)
            open.subtract(1, ordering: .relaxed)
        }
        Glibc.close(listener)
    }

    /// Returns false when the peer is done and should be closed.
    private func read(_ peer: Peer, _ buffer: inout [UInt8]) -> Bool {
        let count = buffer.withUnsafeMutableBytes { recv(peer.fd, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            if errno == ECONNRESET { resets.add(1, ordering: .relaxed) }
            return errno == EAGAIN || errno == EINTR
        }
        if count == 0 {
            switch behavior {
            case .replyOnEOF:
                peer.output += Array("\(peer.hash.digest)\n".utf8)
                peer.closeWhenFlushed = true
                return flush(peer)
            case .echo, .banner, .resetAfter, .proxyProtocol, .stallFirst:
                peer.closeWhenFlushed = true
                return true
            case .ignore, .source:
                return peer.pattern != nil
            }
        }
        peer.received += count
        switch behavior {
        case .echo, .banner, .stallFirst:
            peer.output += buffer[0..<count]
        case .proxyProtocol:
            guard var pending = peer.headerBytes else {
                peer.output += buffer[0..<count]
                break
            }
            pending += buffer[0..<count]
            switch ProxyProtocolHeader.parse(pending) {
            case .incomplete:
                peer.headerBytes = pending
            case .invalid(let reason):
                peer.output += Array("invalid: \(reason)\n".utf8)
                peer.headerBytes = nil
            case .header(let header, let length):
                peer.output += Array("\(header.summary)\n".utf8) + pending[length...]
                peer.headerBytes = nil
            }
            if peer.headerBytes == nil {
                let result = ProxyProtocolHeader.parse(pending)
                headers.withLock { $0.append(result) }
            }
        case .resetAfter(let limit):
            peer.output += buffer[0..<count]
            if peer.received >= limit {
                Socket.setAbortiveClose(peer.fd)
                return false
            }
        case .replyOnEOF:
            buffer.withUnsafeBytes { peer.hash.add(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        case .ignore, .source:
            break
        }
        return flush(peer)
    }

    private func flush(_ peer: Peer) -> Bool {
        while true {
            if peer.pending == 0 {
                guard peer.patternLeft > 0, var pattern = peer.pattern else { break }
                let chunk = min(peer.patternLeft, 65536)
                peer.output = [UInt8](repeating: 0, count: chunk)
                peer.output.withUnsafeMutableBytes { pattern.fill($0) }
                peer.pattern = pattern
                peer.patternLeft -= chunk
                peer.written = 0
            }
            let count = peer.output.withUnsafeBytes { send(peer.fd, $0.baseAddress! + peer.written, peer.pending, Int32(MSG_NOSIGNAL)) }
            if count < 0 { return errno == EAGAIN || errno == EINTR }
            peer.written += count
        }
        peer.output.removeAll(keepingCapacity: true)
        peer.written = 0
        return true
    }
}
