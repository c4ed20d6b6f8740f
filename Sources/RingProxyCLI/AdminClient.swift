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
        Socket.setTimeouts(fd, seconds: 10)
        guard Socket.connect(fd, to: address) else {
            throw Failure(description: "cannot reach the admin endpoint at \(address): \(String(cString: strerror(errno))) (is ringproxy running with --admin \(address)?)")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\nUser-Agent: ringproxy-ctl\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if !body.isEmpty || method == "PUT" {
            head += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        guard Socket.sendAll(fd, Array((head + "\r\n" + body).utf8)) else {
            throw Failure(description: "the admin endpoint closed the connection: \(String(cString: strerror(errno)))")
        }
        var answer: [UInt8] = []
        while true {
            guard let chunk = Socket.receive(fd) else {
                throw Failure(description: "no answer from the admin endpoint: \(String(cString: strerror(errno)))")
            }
            if chunk.isEmpty { break }
            answer += chunk
            guard answer.count < 64 << 20 else { throw Failure(description: "the admin endpoint's answer is over 64 MiB") }
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n"), let status = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw Failure(description: "not an HTTP answer from \(address): \(text.prefix(120))")
        }
        return Response(status: status, body: String(text[end.upperBound...]))
    }
}
