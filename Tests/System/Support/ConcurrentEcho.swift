import Glibc
@testable import RingProxy

/// Drives many connections at once from one thread (a poll(2) loop) against an echo service: each sends
/// its own pattern stream and checks that every byte comes back, in order.
///
/// With the defaults every connection sends `bytes` bytes in 16 KiB writes. The integrity check sets
/// `sizes`, `chunks` and `halfCloseChance` to randomise them (sizes log-uniform, so most streams are small
/// and some are huge), and `until` to keep `connections` streams running, a new one for each that ends.
struct ConcurrentEcho {
    struct Outcome {
        var verified = 0
        var bytesChecked = 0
        var failures: [String] = []
    }

    private struct Stream {
        var fd: Int32 = -1
        var index = 0
        var sender: PatternStream
        var checker: PatternStream
        var size = 0
        var sent = 0
        var received = 0
        var halfClose = false
        var writeShut = false
        var done = false
    }

    let address: SocketAddress
    let connections: Int
    var bytes = 0
    var timeoutSeconds = 60
    /// Random stream sizes (log-uniform), instead of `bytes` each.
    var sizes: ClosedRange<Int>?
    /// Random write sizes, instead of 16 KiB.
    var chunks = 16384...16384
    /// The chance that a stream shuts down its write side once sent, and reads the rest of the echo half-closed.
    var halfCloseChance = 0.0
    /// Keep `connections` streams running until then (monotonic milliseconds), instead of running each once.
    var until: Int64?
    var seed: UInt64 = 1

    func run() -> Outcome {
        var outcome = Outcome()
        var random = FastRandom(seed: seed)
        var started = 0
        var streams: [Stream] = []
        func open() -> Stream? {
            started += 1
            let streamSeed = seed &* 1_000_003 &+ UInt64(started)
            var stream = Stream(index: started - 1, sender: PatternStream(seed: streamSeed), checker: PatternStream(seed: streamSeed))
            stream.size = sizes.map { logUniform($0, &random) } ?? bytes
            stream.halfClose = Double(random.below(1_000_000)) / 1_000_000 < halfCloseChance
            stream.fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let result = address.withSockaddr { connect(stream.fd, $0, $1) }
            if result != 0 && errno != EINPROGRESS {
                outcome.failures.append("connection \(stream.index): connect: \(String(cString: strerror(errno)))")
                Glibc.close(stream.fd)
                return nil
            }
            return stream
        }
        for _ in 0..<connections { if let stream = open() { streams.append(stream) } }
        var outgoing = [UInt8](repeating: 0, count: chunks.upperBound)
        var incoming = [UInt8](repeating: 0, count: 65536)
        var expected = [UInt8](repeating: 0, count: 65536)
        let deadline = monotonicMilliseconds() + Int64(timeoutSeconds) * 1000 + max(0, (until ?? 0) - monotonicMilliseconds())
        while !streams.isEmpty && monotonicMilliseconds() < deadline {
            var fds = streams.map { stream in
                pollfd(fd: stream.fd, events: Int16(POLLIN) | (stream.sent < stream.size ? Int16(POLLOUT) : 0), revents: 0)
            }
            guard poll(&fds, nfds_t(fds.count), 1000) > 0 else { continue }
            for index in fds.indices where fds[index].revents != 0 {
                var stream = streams[index]
                defer { streams[index] = stream }
                if fds[index].revents & Int16(POLLOUT) != 0 && stream.sent < stream.size {
                    // The pattern is generated once per byte: resend exactly what a short send left.
                    let size = min(chunks.lowerBound + random.below(chunks.count), stream.size - stream.sent)
                    var generator = stream.sender
                    outgoing.withUnsafeMutableBytes { generator.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])) }
                    let count = outgoing.withUnsafeBytes { send(stream.fd, $0.baseAddress, size, Int32(MSG_NOSIGNAL)) }
                    if count > 0 {
                        incoming.withUnsafeMutableBytes { stream.sender.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<count])) }
                        stream.sent += count
                    } else if count < 0 && errno != EAGAIN {
                        fail(&stream, "send after \(stream.sent) bytes: \(String(cString: strerror(errno)))", &outcome)
                        continue
                    }
                }
                if stream.halfClose && !stream.writeShut && stream.sent == stream.size {
                    Glibc.shutdown(stream.fd, Int32(SHUT_WR))
                    stream.writeShut = true
                }
                guard fds[index].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
                let count = incoming.withUnsafeMutableBytes { recv(stream.fd, $0.baseAddress, $0.count, 0) }
                if count == 0 {
                    if stream.received == stream.size && stream.writeShut {
                        // The half-closed stream got every byte, then the backend's end of stream.
                        finish(&stream, &outcome)
                    } else {
                        fail(&stream, "end of stream after \(stream.received) of \(stream.size) bytes", &outcome)
                    }
                } else if count < 0 {
                    if errno != EAGAIN { fail(&stream, "recv after \(stream.received) bytes: \(String(cString: strerror(errno)))", &outcome) }
                } else {
                    expected.withUnsafeMutableBytes { stream.checker.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<count])) }
                    if memcmp(incoming, expected, count) != 0 {
                        fail(&stream, "bytes \(stream.received)..<\(stream.received + count) differ from what was sent", &outcome)
                    } else {
                        stream.received += count
                        outcome.bytesChecked += count
                        if stream.received > stream.size {
                            fail(&stream, "received \(stream.received) bytes, sent \(stream.size)", &outcome)
                        } else if stream.received == stream.size && !stream.writeShut {
                            finish(&stream, &outcome)
                        }
                    }
                }
            }
            streams.removeAll { $0.done }
            if let until, monotonicMilliseconds() < until {
                while streams.count < connections, let stream = open() { streams.append(stream) }
            }
        }
        for stream in streams {
            outcome.failures.append("connection \(stream.index): timed out with \(stream.sent) of \(stream.size) sent, \(stream.received) received")
            Glibc.close(stream.fd)
        }
        return outcome
    }

    private func finish(_ stream: inout Stream, _ outcome: inout Outcome) {
        outcome.verified += 1
        stream.done = true
        Glibc.close(stream.fd)
    }

    private func fail(_ stream: inout Stream, _ reason: String, _ outcome: inout Outcome) {
        outcome.failures.append("connection \(stream.index): \(reason)")
        stream.done = true
        Glibc.close(stream.fd)
    }
}

/// A size from `range`, log-uniform: as many streams of 1–10 bytes as of 1–10 MiB.
private func logUniform(_ range: ClosedRange<Int>, _ random: inout FastRandom) -> Int {
    let low = log(Double(max(1, range.lowerBound))), high = log(Double(range.upperBound))
    let fraction = Double(random.below(1 << 30)) / Double(1 << 30)
    return min(range.upperBound, max(range.lowerBound, Int(exp(low + (high - low) * fraction).rounded())))
}
