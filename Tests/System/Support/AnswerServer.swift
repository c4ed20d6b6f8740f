import CURing
import Glibc
import RingProxy
import Synchronization

/// A peer for health checks: each connection is read until `reply` has an answer for the bytes so far
/// (nil: read more), which is written before the connection is closed. One thread, one connection at a
/// time (checks are short): enough for an HTTP check endpoint or a database's first answer.
final class AnswerServer: @unchecked Sendable {
    let address: SocketAddress
    private let listener: Int32
    private let reply: @Sendable ([UInt8]) -> [UInt8]?
    private var thread = pthread_t()
    private let served = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// Connections answered so far.
    var answered: Int { served.load(ordering: .relaxed) }

    init(host: String = "127.0.0.1", port: UInt16 = 0, reply: @escaping @Sendable ([UInt8]) -> [UInt8]?) throws {
        listener = try Socket.listen(on: SocketAddress(numericHost: host, port: port)!, backlog: 64)
        address = Socket.localAddress(of: listener)!
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) & ~O_NONBLOCK)  // a blocking accept, woken by stop()
        self.reply = reply
        let context = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { context in
            let server = Unmanaged<AnswerServer>.fromOpaque(context!).takeRetainedValue()
            server.loop()
            return nil
        }, context)
    }

    deinit { stop() }

    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        Glibc.shutdown(listener, Int32(SHUT_RDWR))  // wakes the blocking accept
        pthread_join(thread, nil)
        Glibc.close(listener)
    }

    private func loop() {
        while !stopped.load(ordering: .relaxed) {
            let fd = curing_accept4(listener, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
            guard fd >= 0 else { continue }
            var limit = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while received.count < 65536 {
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { break }
                received += chunk[0..<count]
                if let answer = reply(received) {
                    _ = answer.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    served.add(1, ordering: .relaxed)
                    break
                }
            }
            Glibc.close(fd)
        }
    }
}
