import Glibc
import RingProxy

/// Drives many connections at once from one thread (a poll(2) loop): each sends `bytes` bytes of its own
/// pattern stream to an echo service and checks that every byte comes back, in order.
struct ConcurrentEcho {
    struct Outcome {
        var verified = 0
        var failures: [String] = []
    }

    private struct Stream {
        var fd: Int32 = -1
        var sender: PatternStream
        var checker: PatternStream
        var sent = 0
        var received = 0
        var done = false
    }

    let address: SocketAddress
    let connections: Int
    let bytes: Int
    /// Bytes handed to one send call at most.
    var chunk = 16384
    var timeoutSeconds = 60

    func run() -> Outcome {
        var outcome = Outcome()
        var streams: [Stream] = []
        for index in 0..<connections {
            var stream = Stream(sender: PatternStream(seed: UInt64(index) &+ 1), checker: PatternStream(seed: UInt64(index) &+ 1))
            stream.fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            let result = address.withSockaddr { connect(stream.fd, $0, $1) }
            if result != 0 && errno != EINPROGRESS {
                outcome.failures.append("connection \(index): connect: \(String(cString: strerror(errno)))")
                Glibc.close(stream.fd)
                stream.done = true
            }
            streams.append(stream)
        }
        var outgoing = [UInt8](repeating: 0, count: chunk)
        var incoming = [UInt8](repeating: 0, count: 65536)
        var expected = [UInt8](repeating: 0, count: 65536)
        let deadline = time(nil) + timeoutSeconds
        while streams.contains(where: { !$0.done }) && time(nil) < deadline {
            var fds: [pollfd] = []
            var owners: [Int] = []
            for (index, stream) in streams.enumerated() where !stream.done {
                var events = Int16(POLLIN)
                if stream.sent < bytes { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: stream.fd, events: events, revents: 0))
                owners.append(index)
            }
            guard poll(&fds, nfds_t(fds.count), 1000) > 0 else { continue }
            for (entry, index) in zip(fds, owners) where entry.revents != 0 {
                var stream = streams[index]
                defer { streams[index] = stream }
                if entry.revents & Int16(POLLOUT) != 0 && stream.sent < bytes {
                    // The pattern is generated once per byte: resend exactly what a short send left.
                    let size = min(chunk, bytes - stream.sent)
                    var generator = stream.sender
                    outgoing.withUnsafeMutableBytes { generator.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])) }
                    let count = outgoing.withUnsafeBytes { send(stream.fd, $0.baseAddress, size, Int32(MSG_NOSIGNAL)) }
                    if count > 0 {
                        incoming.withUnsafeMutableBytes { stream.sender.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<count])) }
                        stream.sent += count
                    } else if count < 0 && errno != EAGAIN {
                        fail(&stream, index, "send after \(stream.sent) bytes: \(String(cString: strerror(errno)))", &outcome)
                        continue
                    }
                }
                if entry.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    let count = incoming.withUnsafeMutableBytes { recv(stream.fd, $0.baseAddress, $0.count, 0) }
                    if count == 0 {
                        fail(&stream, index, "end of stream after \(stream.received) of \(bytes) bytes", &outcome)
                    } else if count < 0 {
                        if errno != EAGAIN { fail(&stream, index, "recv after \(stream.received) bytes: \(String(cString: strerror(errno)))", &outcome) }
                    } else {
                        expected.withUnsafeMutableBytes { stream.checker.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<count])) }
                        if memcmp(incoming, expected, count) != 0 {
                            fail(&stream, index, "bytes \(stream.received)..<\(stream.received + count) differ from what was sent", &outcome)
                        } else {
                            stream.received += count
                            if stream.received > bytes {
                                fail(&stream, index, "received \(stream.received) bytes, sent \(bytes)", &outcome)
                            } else if stream.received == bytes {
                                outcome.verified += 1
                                stream.done = true
                                Glibc.close(stream.fd)
                            }
                        }
                    }
                }
            }
        }
        for (index, stream) in streams.enumerated() where !stream.done {
            outcome.failures.append("connection \(index): timed out with \(stream.sent) sent, \(stream.received) received")
            Glibc.close(stream.fd)
        }
        return outcome
    }

    private func fail(_ stream: inout Stream, _ index: Int, _ reason: String, _ outcome: inout Outcome) {
        outcome.failures.append("connection \(index): \(reason)")
        stream.done = true
        Glibc.close(stream.fd)
    }
}
