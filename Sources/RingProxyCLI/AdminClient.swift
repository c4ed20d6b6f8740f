import Glibc
import RingProxy

/// A small blocking HTTP/1.1 client for the admin endpoint: one request per connection (`Connection:
/// close`), the answer read until the server closes. Enough for `ringproxy ctl`; nothing else uses it.
struct AdminClient {
    let address: SocketAddress
    let token: String?

    struct Response {
        let status: Int
        let body: String
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `host:port`, or a port alone (on 127.0.0.1).
    init(admin: String, token: String?) throws(Failure) {
        let text = admin.allSatisfy(\.isNumber) ? "127.0.0.1:\(admin)" : admin
        guard let (host, port) = SocketAddress.split(text), let address = SocketAddress(numericHost: host, port: port) else {
            throw Failure(description: "--admin: expected host:port with a numeric host (like 127.0.0.1:9901), got '\(admin)'")
        }
        self.address = address
        self.token = token
    }

    func request(_ method: String, _ path: String, body: String = "") throws(Failure) -> Response {
        let fd = Socket.openStream(family: address.family)
        guard fd >= 0 else { throw Failure(description: "cannot open a socket: \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let connected = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        guard connected == 0 else {
            throw Failure(description: "cannot reach the admin endpoint at \(address): \(String(cString: strerror(errno))) (is ringproxy running with --admin \(address)?)")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\nUser-Agent: ringproxy-ctl\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if !body.isEmpty || method == "PUT" {
            head += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        let request = Array((head + "\r\n" + body).utf8)
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw Failure(description: "the admin endpoint closed the connection: \(String(cString: strerror(errno)))") }
            sent += count
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            guard count > 0 else { throw Failure(description: "no answer from the admin endpoint: \(String(cString: strerror(errno)))") }
            answer += chunk[0..<count]
            guard answer.count < 64 << 20 else { throw Failure(description: "the admin endpoint's answer is over 64 MiB") }
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n"), let status = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw Failure(description: "not an HTTP answer from \(address): \(text.prefix(120))")
        }
        return Response(status: status, body: String(text[end.upperBound...]))
    }
}
